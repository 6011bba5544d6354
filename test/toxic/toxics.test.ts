// Each toxic's effect on real connections through a TCP frontend, timed with tolerances wide enough for a
// loaded CI machine (the exact accuracy is the benchmark's: scripts/toxic-accuracy.mjs). A toxic's
// semantics and units are Toxiproxy's (docs/toxiproxy.md).
import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { connect, echoServer, readBytes, serve, type TestServer } from '../helpers/net.js';
import { type Proxy, portOf, proxyOf } from '../helpers/servers.js';

type Toxic = { type: string; name?: string; stream?: string; toxicity?: number; attributes?: Record<string, number> };

function doc(port: number, toxics: Toxic[]): Record<string, unknown> {
  return {
    frontends: [{ name: 'fe', listen: '127.0.0.1:0', mode: 'tcp', backend: 'be', toxics }],
    backends: [{ name: 'be', servers: [{ address: `127.0.0.1:${port}` }] }],
  };
}

async function setup(t: Test, toxics: Toxic[], server?: TestServer): Promise<{ proxy: Proxy; port: number; up: TestServer }> {
  const up = server ?? (await echoServer());
  t.teardown(() => up.close());
  const proxy = await proxyOf(t, doc(up.port, toxics));
  return { proxy, port: portOf(proxy, 'fe'), up };
}

/** Milliseconds for `bytes` to come back through an echo after writing them. */
async function roundTrip(s: net.Socket, bytes = 5): Promise<number> {
  const t0 = performance.now();
  s.write(Buffer.alloc(bytes, 'x'));
  await readBytes(s, bytes);
  return performance.now() - t0;
}

function closed(s: net.Socket): Promise<{ ms: number; error: string | null; got: number }> {
  const t0 = performance.now();
  let got = 0;
  let error: string | null = null;
  s.on('data', (d) => (got += d.length));
  s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  // The helpers' sockets allow half-open: a FIN ends the stream without closing the socket.
  return new Promise((resolve) => {
    const done = () => resolve({ ms: performance.now() - t0, error, got });
    s.on('end', done);
    s.on('close', done);
  });
}

t.test('latency: each chunk is held, stacked latencies add, and a direction has only its own', async (t) => {
  const { port } = await setup(t, [
    { type: 'latency', attributes: { latency: 100 } },
    { type: 'latency', name: 'more', attributes: { latency: 50 } },
    { type: 'latency', stream: 'upstream', attributes: { latency: 50, jitter: 10 } },
  ]);
  const s = await connect(port);
  for (let i = 0; i < 3; i++) {
    const ms = await roundTrip(s);
    t.ok(ms >= 188, `round trip ${ms.toFixed(1)} ms >= 200 - jitter`);
    t.ok(ms < 600, `and not far beyond (${ms.toFixed(1)} ms)`);
  }
  s.destroy();
});

t.test('latency: pieces that arrive together are not delayed one after another', async (t) => {
  const { port } = await setup(t, [{ type: 'latency', attributes: { latency: 150 } }]);
  const s = await connect(port);
  const t0 = performance.now();
  for (let i = 0; i < 20; i++) {
    s.write(Buffer.alloc(100, i));
    await new Promise((r) => setTimeout(r, 2));
  }
  await readBytes(s, 2000);
  const ms = performance.now() - t0;
  t.ok(ms >= 150 && ms < 150 + 40 + 400, `20 pieces came back within one latency and the time it took to send them (${ms.toFixed(1)} ms)`);
  s.destroy();
});

t.test('toxicity 0 never applies; the connection takes the plain path', async (t) => {
  const { port } = await setup(t, [{ type: 'latency', toxicity: 0, attributes: { latency: 2000 } }]);
  const s = await connect(port);
  const ms = await roundTrip(s);
  t.ok(ms < 1000, `no latency (${ms.toFixed(1)} ms)`);
  s.destroy();
});

t.test('bandwidth: rate in KB/s (1000 bytes) paces a direction', async (t) => {
  const size = 60_000;
  const server = await serve((s) => s.on('data', () => s.end(Buffer.alloc(size, 7))));
  const { port } = await setup(t, [{ type: 'bandwidth', attributes: { rate: 100 } }], server);
  const s = await connect(port);
  const t0 = performance.now();
  s.write('go');
  const r = await closed(s);
  const ms = performance.now() - t0;
  t.equal(r.got, size, 'every byte arrived');
  t.ok(ms >= 580, `60 KB at 100 KB/s took ${ms.toFixed(0)} ms (>= 600 less a slice's rounding)`);
  t.ok(ms < 2500, 'and not far beyond');
});

t.test('slow_close: the FIN is held, the data is not', async (t) => {
  const server = await serve((s) => s.on('data', () => s.end('bye')));
  const { port } = await setup(t, [{ type: 'slow_close', attributes: { delay: 400 } }], server);
  const s = await connect(port);
  const t0 = performance.now();
  s.write('go');
  const data = await readBytes(s, 3);
  const dataMs = performance.now() - t0;
  await once(s, 'end');
  const endMs = performance.now() - t0;
  t.equal(data.toString(), 'bye');
  t.ok(dataMs < 300, `data at once (${dataMs.toFixed(0)} ms)`);
  t.ok(endMs >= 390, `FIN after the delay (${endMs.toFixed(0)} ms)`);
  s.destroy();
});

t.test('timeout: data is dropped, and the connection closed after the timeout', async (t) => {
  let got = 0;
  const server = await serve((s) => s.on('data', (d) => (got += d.length)));
  const { port } = await setup(t, [{ type: 'timeout', stream: 'upstream', attributes: { timeout: 400 } }], server);
  const s = await connect(port);
  s.write('never arrives');
  const r = await closed(s);
  t.ok(r.ms >= 350, `closed after ${r.ms.toFixed(0)} ms`);
  t.equal(got, 0, 'the server saw none of it');
});

t.test('timeout 0: data is dropped and the connection stays open; taking the toxic away closes it', async (t) => {
  let got = 0;
  const server = await serve((s) => s.on('data', (d) => (got += d.length)));
  const { proxy, port, up } = await setup(t, [{ type: 'timeout', stream: 'upstream', attributes: { timeout: 0 } }], server);
  const s = await connect(port);
  const r = closed(s);
  s.write('dropped');
  await new Promise((res) => setTimeout(res, 400));
  t.equal(got, 0, 'nothing reached the server');
  t.equal(s.destroyed, false, 'still open');
  await proxy.reload(doc(up.port, []));
  const end = await r;
  t.ok(end.ms >= 0, 'closed once the toxic was taken away (as Toxiproxy does)');
});

t.test('reset_peer: the client is reset after the timeout from its first data', async (t) => {
  const { port } = await setup(t, [{ type: 'reset_peer', stream: 'upstream', attributes: { timeout: 300 } }]);
  const s = await connect(port);
  await new Promise((res) => setTimeout(res, 200));
  s.write('x');
  const r = await closed(s);
  t.equal(r.error, 'ECONNRESET');
  t.ok(r.ms >= 280, `reset ${r.ms.toFixed(0)} ms after the data`);
  t.equal(r.got, 0, 'its data was dropped');
});

t.test('slicer: a write arrives in small pieces, whole', async (t) => {
  const payload = Buffer.from(Array.from({ length: 400 }, (_, i) => i % 251));
  const server = await serve((s) => s.on('data', () => s.write(payload)));
  const { port } = await setup(t, [{ type: 'slicer', attributes: { average_size: 20, size_variation: 10, delay: 5000 } }], server);
  const s = await connect(port);
  let reads = 0;
  s.on('data', () => reads++);
  s.write('go');
  const got = await readBytes(s, payload.length);
  t.same(got, payload, 'every byte, in order');
  t.ok(reads >= 8, `in ${reads} reads`);
  s.destroy();
});

t.test('limit_data: exactly N bytes pass, then the connection closes', async (t) => {
  const server = await serve((s) => s.on('data', () => s.write(Buffer.alloc(5000, 1))));
  const { port } = await setup(t, [{ type: 'limit_data', attributes: { bytes: 1234 } }], server);
  const s = await connect(port);
  s.write('go');
  const r = await closed(s);
  t.equal(r.got, 1234);
});

t.test('noop passes bytes through; half-close is kept', async (t) => {
  const server = await serve((s) => {
    const chunks: Buffer[] = [];
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => s.end(Buffer.concat(chunks)));
  });
  const { port } = await setup(t, [{ type: 'noop' }, { type: 'latency', stream: 'upstream', attributes: { latency: 30 } }], server);
  const s = await connect(port);
  s.end('request, then FIN');
  const r = await closed(s);
  t.equal(r.got, 'request, then FIN'.length, 'the reply came after the client had sent FIN');
});

t.test('hostile attributes neither crash nor corrupt', async (t) => {
  const { proxy, port } = await setup(t, [
    { type: 'slicer', attributes: { average_size: 0, size_variation: 100, delay: -5 } },
    { type: 'latency', name: 'neg', attributes: { latency: -100, jitter: -3 } },
    { type: 'bandwidth', attributes: { rate: Number.MAX_SAFE_INTEGER } },
    { type: 'slow_close', stream: 'upstream', attributes: { delay: -1 } },
  ]);
  const s = await connect(port);
  const payload = Buffer.alloc(3000, 9);
  s.write(payload);
  t.same(await readBytes(s, payload.length), payload);
  s.destroy();
  t.ok(proxy.stats(), 'the proxy still answers');
});

t.test('toxics added, changed and removed apply to live connections at once', async (t) => {
  const { proxy, port, up } = await setup(t, []);
  const s = await connect(port);
  t.ok((await roundTrip(s)) < 150, 'no toxic: fast');
  await proxy.reload(doc(up.port, [{ type: 'latency', attributes: { latency: 300 } }]));
  t.ok((await roundTrip(s)) >= 290, 'latency added: held');
  await proxy.reload(doc(up.port, [{ type: 'latency', attributes: { latency: 100 } }]));
  const changed = await roundTrip(s);
  t.ok(changed >= 95 && changed < 290, `latency changed: ${changed.toFixed(0)} ms`);
  // Removed while a piece is held: it leaves at once.
  await proxy.reload(doc(up.port, [{ type: 'latency', attributes: { latency: 5000 } }]));
  const t0 = performance.now();
  const back = readBytes(s, 4);
  s.write('held');
  await new Promise((r) => setTimeout(r, 100));
  await proxy.reload(doc(up.port, []));
  await back;
  t.ok(performance.now() - t0 < 2000, 'the held piece left when its toxic was removed');
  t.ok((await roundTrip(s)) < 150, 'and the connection is fast again');
  s.destroy();
});

t.test('1000 connections through a toxic proxy', async (t) => {
  const { port } = await setup(t, [{ type: 'latency', attributes: { latency: 20, jitter: 5 } }]);
  const payload = Buffer.alloc(100, 3);
  let ok = 0;
  const one = async () => {
    const s = await connect(port);
    s.write(payload);
    const b = await readBytes(s, payload.length);
    if (b.equals(payload)) ok++;
    s.destroy();
  };
  for (let i = 0; i < 1000; i += 250) await Promise.all(Array.from({ length: 250 }, one));
  t.equal(ok, 1000);
});
