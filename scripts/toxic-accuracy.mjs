// How close the toxics come to what they were asked for: latency per chunk, and bandwidth over a second
// or more. One process runs the backend, the client and the proxy (ffi-proxy's library, one worker), all on
// loopback; the proxy is measured against itself without the toxic in the same run, so what the client and
// backend add cancels out.
//
//   node scripts/toxic-accuracy.mjs [--samples 200] [--json FILE]
//
// Latency: the backend sends a small chunk every 20 ms, stamped with the time it was written; the client
// computes, for each chunk, its arrival minus its stamp, through a proxy with a downstream latency toxic of
// L ms (jitter 0), and through the same proxy without it. The error per chunk is the toxic's arrival time
// less L less the plain proxy's median. Bandwidth: the backend writes as fast as the proxy takes it for
// about 2 s of the rate; the client counts bytes from its connect to the last byte, and the error is the measured
// rate against the rate asked (KB = 1000 bytes).
import net from 'node:net';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { start } from '../dist/index.js';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? def : process.argv[i + 1];
};
const SAMPLES = Number(arg('samples', 200));

async function listen(onConn) {
  const server = net.createServer(onConn);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

async function proxyTo(port, toxics) {
  const p = await start({
    workers: 1,
    logLevel: 'silent',
    config: {
      frontends: [{ name: 'fe', listen: '127.0.0.1:0', mode: 'tcp', backend: 'be', toxics }],
      backends: [{ name: 'be', servers: [{ address: `127.0.0.1:${port}` }] }],
    },
  });
  return { proxy: p, port: p.listening()[0].address.port };
}

const pct = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

/** Per chunk: arrival - stamp, in ms, for SAMPLES chunks through `port`. */
async function chunkDelays(port) {
  const c = net.connect(port, '127.0.0.1');
  c.setNoDelay(true);
  await once(c, 'connect');
  const out = [];
  let buf = '';
  return new Promise((resolve) => {
    c.on('data', (d) => {
      const now = performance.now();
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        out.push(now - Number(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
      if (out.length >= SAMPLES) {
        c.destroy();
        resolve(out.slice(5)); // the first few warm the path up
      }
    });
    c.write('go');
  });
}

async function latency(results) {
  const server = await listen((s) => {
    s.setNoDelay(true);
    const timer = setInterval(() => s.write(`${performance.now()}\n`), 20);
    s.on('close', () => clearInterval(timer));
    s.on('error', () => {});
  });
  const port = server.address().port;
  const plain = await proxyTo(port, []);
  const base = pct(await chunkDelays(plain.port), 0.5);
  await plain.proxy.close(0);
  for (const L of [5, 20, 100]) {
    const p = await proxyTo(port, [{ type: 'latency', attributes: { latency: L, jitter: 0 } }]);
    const err = (await chunkDelays(p.port)).map((x) => x - L - base);
    await p.proxy.close(0);
    const row = { latencyMs: L, samples: err.length, p50: pct(err, 0.5), p99: pct(err, 0.99), max: Math.max(...err), min: Math.min(...err), within1ms: err.filter((e) => Math.abs(e) <= 1).length / err.length };
    results.latency.push(row);
    console.log(`latency ${L} ms: error p50 ${row.p50.toFixed(3)} ms, p99 ${row.p99.toFixed(3)} ms, min ${row.min.toFixed(3)}, max ${row.max.toFixed(3)}; ${(100 * row.within1ms).toFixed(1)}% of chunks within 1 ms (plain proxy's median ${base.toFixed(3)} ms taken off)`);
  }
  server.close();
}

async function bandwidth(results) {
  for (const rate of [100, 1000, 10000]) {
    const total = rate * 1000 * 2; // about 2 s
    const server = await listen((s) => {
      s.on('error', () => {});
      s.end(Buffer.alloc(total, 1));
    });
    const p = await proxyTo(server.address().port, [{ type: 'bandwidth', attributes: { rate } }]);
    const c = net.connect(p.port, '127.0.0.1');
    await once(c, 'connect');
    const first = performance.now();
    let last = 0;
    let got = 0;
    c.on('data', (d) => {
      const now = performance.now();
      got += d.length;
      last = now;
    });
    await once(c, 'end');
    c.destroy();
    await p.proxy.close(0);
    server.close();
    // Every slice is paid for before it leaves (Toxiproxy's rule), the first too: from the connect to the
    // last byte is the whole transfer's time.
    const measured = got / (last - first); // bytes per ms = KB/s
    const row = { rateKBs: rate, bytes: got, seconds: (last - first) / 1000, measuredKBs: measured, errorPct: (100 * (measured - rate)) / rate };
    results.bandwidth.push(row);
    console.log(`bandwidth ${rate} KB/s: ${got} bytes, measured ${measured.toFixed(1)} KB/s over ${row.seconds.toFixed(2)} s: error ${row.errorPct.toFixed(2)}%`);
  }
}

const results = { latency: [], bandwidth: [] };
await latency(results);
await bandwidth(results);
const out = arg('json', null);
if (out) writeFileSync(out, JSON.stringify(results, null, 2));
