// Mutated input from both sides, seeded so that a failure can be replayed: valid requests and responses with
// bytes flipped, cut, doubled or spliced with pieces that matter to HTTP framing. What must hold is not one
// answer but the proxy's health: no worker dies, a well-behaved client beside the noise is answered every
// time, every connection ends within its timeouts, and once the noise stops every connection and every
// pool buffer is given back.
import t, { type Test } from 'tap';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { start, type Proxy } from '../../dist/index.js';
import { waitFor } from '../helpers/net.js';

/** mulberry32: a small seeded generator, so a run is the same every time. */
function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return Math.floor((((x ^ (x >>> 14)) >>> 0) / 4294967296) * n);
  };
}

const PIECES = [
  '\r\n',
  '\n',
  '\r',
  ' ',
  ':',
  '\0',
  '\t',
  'Content-Length: 5\r\n',
  'Content-Length: 99999999999999999999\r\n',
  'Content-Length: -1\r\n',
  'Transfer-Encoding: chunked\r\n',
  'Transfer-Encoding: gzip, chunked\r\n',
  'Connection: close\r\n',
  'Host: b\r\n',
  'ffffffffffffffff\r\n',
  'HTTP/1.1',
  'x'.repeat(70000),
];

function mutate(seed: string, r: (n: number) => number): Buffer {
  let b = Buffer.from(seed, 'latin1');
  for (let k = r(5); k >= 0; k--) {
    const at = r(b.length + 1);
    switch (r(5)) {
      case 0:
        if (b.length) b[r(b.length)] = r(256);
        break;
      case 1:
        b = Buffer.concat([b.subarray(0, at), Buffer.from(PIECES[r(PIECES.length)], 'latin1'), b.subarray(at)]);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + r(10)))]);
        break;
      case 3:
        b = Buffer.concat([b, b]);
        break;
      default:
        b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + r(20) }, () => r(256))), b.subarray(at)]);
    }
  }
  return b;
}

/** A proxy in HTTP mode with 1 s timeouts (so every exchange ends soon), stopped at the end of the test. */
async function proxyFor(t: Test, backendPort: number): Promise<Proxy> {
  const proxy = await start({
    listen: '127.0.0.1:0',
    backend: `127.0.0.1:${backendPort}`,
    mode: 'http',
    workers: 2,
    logLevel: 'silent',
    headerTimeoutMs: 1000,
    backendTimeoutMs: 1000,
    idleTimeoutMs: 1000,
  });
  t.teardown(() => proxy.close(0));
  return proxy;
}

/**
 * Opens a connection, writes `bytes` (in two pieces when `split`), half-closes or not, and resolves with what
 * came back once the connection ends; destroys it if it has not ended within `ms`.
 */
function exchange(port: number, bytes: Buffer, split: number, end: boolean, ms: number): Promise<{ got: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: false });
    let got = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      s.destroy();
    }, ms);
    s.on('connect', () => {
      if (split > 0 && split < bytes.length) {
        s.write(bytes.subarray(0, split));
        setTimeout(() => {
          if (s.destroyed) return;
          s.write(bytes.subarray(split));
          if (end) s.end();
        }, 5);
      } else {
        s.write(bytes);
        if (end) s.end();
      }
    });
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ got, timedOut });
    });
  });
}

/** The proxy is back to rest: no connection open, no buffer held. */
async function atRest(proxy: Proxy, what: string): Promise<void> {
  await waitFor(() => proxy.stats().active === 0 && proxy.stats().buffers === 0, what, 5000);
}

const REQUESTS = [
  'GET / HTTP/1.1\r\nHost: a\r\n\r\n',
  'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello',
  'POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
  'GET /old HTTP/1.0\r\n\r\n',
  'PUT /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok',
  'GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n',
];

t.test('mutated requests: the workers live, a well-behaved client beside them is always answered', async (t) => {
  const backend = http.createServer((req, res) => {
    let n = 0;
    req.on('data', (d: Buffer) => (n += d.length));
    req.on('end', () => res.end(`${req.method} ${req.url} ${n}`));
  });
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  t.teardown(() => backend.close());
  const proxy = await proxyFor(t, (backend.address() as net.AddressInfo).port);

  const r = rng(20261126);
  const jobs = Array.from({ length: 1200 }, () => {
    const bytes = mutate(REQUESTS[r(REQUESTS.length)], r);
    return { bytes, split: r(3) === 0 ? r(bytes.length + 1) : 0, end: r(2) === 0 };
  });
  let done = 0;
  let timedOut = 0;
  const lanes = Array.from({ length: 24 }, async (_, lane) => {
    for (let i = lane; i < jobs.length; i += 24) {
      const j = jobs[i];
      // The header timeout (1 s) and the backend timeout (1 s) bound every exchange: 4 s is a stall.
      const res = await exchange(proxy.port, j.bytes, j.split, j.end, 4000);
      done++;
      if (res.timedOut) timedOut++;
    }
  });
  let noise = true;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  let control = 0;
  const wrong: string[] = [];
  const controlLoop = (async () => {
    while (noise) {
      const reply = await new Promise<string>((resolve) => {
        const q = http.request(
          { host: '127.0.0.1', port: proxy.port, method: 'POST', path: '/control', agent, headers: { 'content-length': 3 } },
          (res) => {
            let b = '';
            res.on('data', (d: Buffer) => (b += d));
            res.on('end', () => resolve(`${res.statusCode} ${b}`));
          },
        );
        q.on('error', (e) => resolve(`error ${e.message}`));
        q.end('abc');
      });
      control++;
      if (reply !== '200 POST /control 3') wrong.push(reply);
    }
  })();
  await Promise.all(lanes);
  noise = false;
  await controlLoop;
  agent.destroy();

  t.equal(done, jobs.length, 'every mutated exchange ended');
  t.equal(timedOut, 0, 'none had to be cut off by the test');
  t.ok(control > 50, `the control client went on all along (${control} requests)`);
  t.same(wrong.slice(0, 5), [], 'every control request answered 200 with its body');
  t.same(
    proxy.workerStats().map((w) => w.restarts),
    [0, 0],
    'no worker died',
  );
  backend.closeAllConnections(); // the pooled backend connections close, and the proxy lets them go
  await atRest(proxy, 'every connection closed and every buffer back in the pool');
  t.ok(proxy.stats().generated > 0, 'the noise was answered with generated errors');
});

const RESPONSES = [
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'HTTP/1.1 204 No Content\r\n\r\n',
  'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  'HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n',
  'HTTP/1.0 200 OK\r\n\r\nuntil close',
  'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n',
];

t.test('mutated responses: the workers live, every client gets a response or a close', async (t) => {
  const r = rng(11262026);
  const open = new Set<net.Socket>();
  const backend = net.createServer((s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
    s.on('data', () => {
      const reply = mutate(RESPONSES[r(RESPONSES.length)], r);
      switch (r(8)) {
        case 0:
          s.destroy();
          break;
        case 1:
          s.end(reply.subarray(0, r(reply.length + 1)));
          break;
        case 2:
          s.end(reply);
          break;
        default:
          s.write(reply);
      }
    });
  });
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  t.teardown(() => backend.close());
  const proxy = await proxyFor(t, (backend.address() as net.AddressInfo).port);

  const head = Buffer.from('GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n', 'latin1');
  let done = 0;
  let timedOut = 0;
  const notHttp: string[] = [];
  const lanes = Array.from({ length: 24 }, async () => {
    for (let i = 0; i < 40; i++) {
      // The client half-closes after its two requests: the proxy answers what it can, then closes.
      const res = await exchange(proxy.port, head, 0, true, 4000);
      done++;
      if (res.timedOut) timedOut++;
      if (res.got.length > 0 && !/^HTTP\/1\.[01] \d{3} /.test(res.got)) notHttp.push(res.got.slice(0, 40));
    }
  });
  await Promise.all(lanes);

  t.equal(done, 24 * 40, 'every exchange ended');
  t.equal(timedOut, 0, 'none had to be cut off by the test');
  t.same(notHttp.slice(0, 5), [], 'whatever a client got starts with a status line');
  t.same(
    proxy.workerStats().map((w) => w.restarts),
    [0, 0],
    'no worker died',
  );
  for (const s of open) s.destroy(); // the pooled backend connections close, and the proxy lets them go
  await atRest(proxy, 'every connection closed and every buffer back in the pool');
});
