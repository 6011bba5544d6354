// Termination codes: every client connection accepted is counted once, under the code of the cause that
// decided its end (transport/close.ts), in both protocols and in the PROXY header intake. stats() gives the
// counts by name; accepted == active + the sum of the terminations at every moment.
import t, { type Test } from 'tap';
import http from 'node:http';
import { once } from 'node:events';
import type net from 'node:net';
import { start } from '../../dist/index.js';
import { connect, deadPort, echoServer, peerDone, readBytes, readResponse, serve, waitFor } from '../helpers/net.js';

type Proxy = Awaited<ReturnType<typeof start>>;

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

/** Waits until every connection the proxy accepted has ended, then checks that each was counted once. */
async function settled(t: Test, proxy: Proxy): Promise<Record<string, number>> {
  await waitFor(() => proxy.stats().active === 0, 'every connection to end', 5000);
  const s = proxy.stats();
  t.equal(sum(s.terminations), s.accepted, 'each accepted connection counted under exactly one code');
  return s.terminations;
}

/** Only `want` is non-zero among the codes. */
function only(t: Test, got: Record<string, number>, want: Record<string, number>): void {
  const nonzero = Object.fromEntries(Object.entries(got).filter(([, n]) => n > 0));
  t.same(nonzero, want);
}

async function ended(c: net.Socket): Promise<void> {
  await peerDone(c);
  c.destroy();
}

t.test('every code has a name, and a fresh proxy has counted none', async (t) => {
  const echo = await echoServer();
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${echo.port}`, workers: 1 });
  t.teardown(async () => {
    await proxy.close(0);
    await echo.close();
  });
  const names = Object.keys(proxy.stats().terminations);
  for (const name of ['done', 'client_abort', 'client_reset', 'client_timeout', 'tunnel_timeout', 'malformed', 'backend_refused', 'connect_timeout', 'backend_timeout', 'backend_reset', 'proxy_header', 'table_full', 'stopped']) {
    t.ok(names.includes(name), name);
  }
  t.equal(sum(proxy.stats().terminations), 0);
});

t.test('tunnel: a whole exchange is done, a refused backend and an idle tunnel have their own codes', async (t) => {
  const echo = await echoServer();
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${echo.port}`, workers: 1, logLevel: 'silent' });
  const dead = await deadPort();
  const refusing = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${dead}`, workers: 1, logLevel: 'silent' });
  const quiet = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${echo.port}`, workers: 1, logLevel: 'silent', tunnelTimeoutMs: 200 });
  t.teardown(async () => {
    await Promise.all([proxy.close(0), refusing.close(0), quiet.close(0)]);
    await echo.close();
  });

  for (let i = 0; i < 2; i++) {
    const c = await connect(proxy.port);
    c.write('ping');
    t.equal((await readBytes(c, 4)).toString(), 'ping');
    c.end(); // both FINs forwarded: a normal end
    await ended(c);
  }
  only(t, await settled(t, proxy), { done: 2 });

  for (let i = 0; i < 3; i++) await ended(await connect(refusing.port));
  only(t, await settled(t, refusing), { backend_refused: 3 });

  await ended(await connect(quiet.port));
  only(t, await settled(t, quiet), { tunnel_timeout: 1 });
});

t.test('tunnel: a client that resets is client_reset; a backend that resets is backend_reset', async (t) => {
  const resetting = await serve((s) => s.once('data', () => s.resetAndDestroy()));
  const echo = await echoServer();
  const a = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${resetting.port}`, workers: 1, logLevel: 'silent' });
  t.teardown(async () => {
    await a.close(0);
    await resetting.close();
    await echo.close();
  });
  const c = await connect(a.port);
  c.write('x');
  await ended(c);
  only(t, await settled(t, a), { backend_reset: 1 });

  const b = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${echo.port}`, workers: 1, logLevel: 'silent' });
  t.teardown(() => b.close(0));
  const d = await connect(b.port);
  d.write('y');
  await readBytes(d, 1);
  d.resetAndDestroy();
  only(t, await settled(t, b), { client_reset: 1 });
});

t.test('HTTP: a closed keep-alive client is done, a malformed request and a refused backend have their codes', async (t) => {
  const backend = http.createServer((_req, res) => res.end('ok'));
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  const { port: bport } = backend.address() as net.AddressInfo;
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${bport}`, mode: 'http', workers: 1, logLevel: 'silent' });
  const dead = await deadPort();
  const refusing = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${dead}`, mode: 'http', workers: 1, logLevel: 'silent' });
  t.teardown(async () => {
    await Promise.all([proxy.close(0), refusing.close(0)]);
    backend.close();
    backend.closeAllConnections();
  });

  const c = await connect(proxy.port);
  for (let i = 0; i < 2; i++) {
    c.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    t.match((await readResponse(c)).raw, /^HTTP\/1\.1 200 /);
  }
  c.end();
  await ended(c);
  const bad = await connect(proxy.port);
  bad.write('GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n');
  t.match((await readResponse(bad)).raw, /^HTTP\/1\.1 400 /);
  bad.end(); // the proxy lingers after a 400 until the client closes: still counted as malformed
  await ended(bad);
  only(t, await settled(t, proxy), { done: 1, malformed: 1 });

  const r = await connect(refusing.port);
  r.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  t.match((await readResponse(r)).raw, /^HTTP\/1\.1 502 /);
  r.end();
  await ended(r);
  only(t, await settled(t, refusing), { backend_refused: 1 });
  t.equal(refusing.stats().connectErrors, 1);
});

t.test('HTTP: a head that does not come in time is client_timeout; a client that sends nothing, client_idle', async (t) => {
  const backend = http.createServer((_req, res) => res.end('ok'));
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  const { port: bport } = backend.address() as net.AddressInfo;
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${bport}`, mode: 'http', workers: 1, logLevel: 'silent', headerTimeoutMs: 200 });
  t.teardown(async () => {
    await proxy.close(0);
    backend.close();
  });
  const slow = await connect(proxy.port);
  slow.write('GET / HTTP/1.1\r\n');
  t.match((await readResponse(slow)).raw, /^HTTP\/1\.1 408 /);
  slow.end();
  await ended(slow);
  await ended(await connect(proxy.port));
  only(t, await settled(t, proxy), { client_timeout: 1, client_idle: 1 });
});

t.test('the PROXY header intake: a malformed header is proxy_header, a client gone before it client_abort', async (t) => {
  const echo = await echoServer();
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${echo.port}`, workers: 1, logLevel: 'silent', acceptProxy: true });
  t.teardown(async () => {
    await proxy.close(0);
    await echo.close();
  });
  const bad = await connect(proxy.port);
  bad.write('GET / HTTP/1.1\r\n\r\n');
  await ended(bad);
  const gone = await connect(proxy.port);
  gone.write('PROXY TCP4 ');
  gone.end();
  await ended(gone);
  const good = await connect(proxy.port);
  good.write('PROXY TCP4 192.0.2.1 192.0.2.2 1000 2000\r\nhello');
  t.equal((await readBytes(good, 5)).toString(), 'hello');
  good.end();
  await ended(good);
  only(t, await settled(t, proxy), { proxy_header: 1, client_abort: 1, done: 1 });
  t.equal(proxy.stats().proxyRefused, 1);
});

t.test('connections cut by a stop are counted as stopped', async (t) => {
  const echo = await echoServer();
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${echo.port}`, workers: 1, logLevel: 'silent' });
  t.teardown(() => echo.close());
  const c = await connect(proxy.port);
  c.write('hi');
  await readBytes(c, 2);
  const s = proxy.stats();
  t.equal(s.active, 1);
  await proxy.close(0);
  const after = proxy.stats();
  t.equal(after.terminations.stopped, 1);
  t.equal(after.active, 0);
  c.destroy();
});
