// HTTP faults on an HTTP frontend (docs/toxiproxy.md, "HTTP faults"): answered without the backend, a
// request dropped or held, a response head held, a response cut. Real clients and a real backend.
import t, { type Test } from 'tap';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { type Proxy, portOf, proxyOf } from '../helpers/servers.js';

type Toxic = { type: string; name?: string; toxicity?: number; attributes?: Record<string, number | string> };

async function backend(t: Test): Promise<{ port: number; hits: string[] }> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    res.setHeader('Content-Type', 'text/plain');
    res.end(req.url === '/big' ? Buffer.alloc(5000, 'b') : `backend ${req.url}`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, hits };
}

async function setup(t: Test, toxics: Toxic[]): Promise<{ proxy: Proxy; port: number; hits: string[] }> {
  const be = await backend(t);
  const proxy = await proxyOf(t, {
    frontends: [{ name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'be', toxics }],
    backends: [{ name: 'be', servers: [{ address: `127.0.0.1:${be.port}` }] }],
  });
  return { proxy, port: portOf(proxy, 'web'), hits: be.hits };
}

async function get(port: number, path: string): Promise<{ status: number; body: string; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  const body = await res.text();
  return { status: res.status, body, ms: performance.now() - t0 };
}

/** A raw request; what came back before the connection ended, and how it ended. */
function raw(port: number, path: string): Promise<{ text: string; ms: number }> {
  const t0 = performance.now();
  const s = net.connect(port, '127.0.0.1');
  s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  const chunks: Buffer[] = [];
  s.on('data', (d) => chunks.push(d));
  s.on('error', () => {});
  return new Promise((resolve) => s.on('close', () => resolve({ text: Buffer.concat(chunks).toString('latin1'), ms: performance.now() - t0 })));
}

t.test('http_error answers matching requests itself; the others reach the backend', async (t) => {
  const { port, hits } = await setup(t, [{ type: 'http_error', attributes: { status: 503, body: 'injected outage', path: '/api' } }]);
  const a = await get(port, '/api/users');
  t.equal(a.status, 503);
  t.equal(a.body, 'injected outage');
  const b = await get(port, '/home');
  t.equal(b.status, 200);
  t.equal(b.body, 'backend /home');
  t.same(hits, ['/home'], 'the answered request never reached the backend');
});

t.test('toxicity 0 never answers; a status out of range answers 500', async (t) => {
  const { port } = await setup(t, [
    { type: 'http_error', name: 'never', toxicity: 0, attributes: { status: 418, path: '' } },
    { type: 'http_error', name: 'odd', attributes: { status: 42, path: '/odd' } },
  ]);
  t.equal((await get(port, '/x')).status, 200);
  t.equal((await get(port, '/odd')).status, 500);
});

t.test('http_request_drop closes the connection without an answer', async (t) => {
  const { port, hits } = await setup(t, [{ type: 'http_request_drop', attributes: { path: '/drop' } }]);
  const r = await raw(port, '/drop/me');
  t.equal(r.text, '', 'no response');
  t.same(hits, []);
  t.equal((await get(port, '/keep')).status, 200);
});

t.test('http_request_delay holds matching requests', async (t) => {
  const { port } = await setup(t, [{ type: 'http_request_delay', attributes: { delay: 300, path: '/slow' } }]);
  const slow = await get(port, '/slow');
  t.equal(slow.status, 200);
  t.ok(slow.ms >= 290, `held ${slow.ms.toFixed(0)} ms`);
  const fast = await get(port, '/fast');
  t.ok(fast.ms < 250, `the others are not (${fast.ms.toFixed(0)} ms)`);
});

t.test('http_head_delay holds the response head', async (t) => {
  const { port, hits } = await setup(t, [{ type: 'http_head_delay', attributes: { delay: 300, path: '' } }]);
  const r = await get(port, '/a');
  t.equal(r.body, 'backend /a');
  t.ok(r.ms >= 290, `held ${r.ms.toFixed(0)} ms`);
  t.same(hits, ['/a'], 'the backend had the request at once');
});

t.test('http_body_limit cuts the response after N bytes of body, then closes', async (t) => {
  const { port } = await setup(t, [{ type: 'http_body_limit', attributes: { bytes: 100, path: '/big' } }]);
  const r = await raw(port, '/big');
  const [head, body] = r.text.split('\r\n\r\n');
  t.match(head, /^HTTP\/1\.1 200 /);
  t.match(head, /Content-Length: 5000/i, 'the head says the whole length');
  t.equal(body.length, 100, 'exactly 100 bytes of body came');
  const small = await raw(port, '/small');
  t.match(small.text, /backend \/small$/, 'a response that is not matched is whole');
});
