// HTTP mode, behaviour: backend failures (502, 504), timeouts (408), keep-alive on both sides and the
// backend pool, pipelining, bodies both ways (lengths, chunked with trailers, 32 MiB, until close, HEAD,
// 204, 304), hop-by-hop and X-Forwarded-* rewriting, 100-continue, WebSocket upgrades, the retry of an
// idempotent request on a pooled connection that turned out closed, and that the backend never gets a
// request the client was not answered for. Real loopback sockets; the backend is the recording one of
// test/helpers/http-backend.ts (Node's own parser), or the `ws` package for WebSockets.
import t, { type Test } from 'tap';
import http from 'node:http';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { WebSocket, WebSocketServer } from 'ws';
import { start, type StartOptions } from '../../dist/index.js';
import { closed, connect, deadPort, peerDone, serve, sha256, waitFor } from '../helpers/net.js';
import {
  get,
  httpClient,
  defaultHandler,
  recordingBackend,
  type ConnRecord,
  type Handler,
  type HttpClient,
  type RecordedRequest,
  type RecordingBackend,
} from '../helpers/http-backend.js';

const TIMEOUTS: StartOptions = { headerTimeoutMs: 300, backendTimeoutMs: 300 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `p`, or a rejection saying `what` did not happen within `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

/** A proxy in HTTP mode in front of `backend` (a port), stopped at the end of the test. */
async function proxyFor(t: Test, backendPort: number, o: StartOptions = {}) {
  const opts: StartOptions = {
    listen: '127.0.0.1:0',
    backend: `127.0.0.1:${backendPort}`,
    mode: 'http',
    workers: 1,
    logLevel: 'silent',
    headerTimeoutMs: 5000,
    backendTimeoutMs: 5000,
    ...o,
  };
  const proxy = await start(opts);
  t.teardown(() => proxy.close(0));
  return proxy;
}

/** A plain node:http backend for one test, its connections closed at the end; resolves with its port. */
async function nodeBackend(t: Test, handler: http.RequestListener): Promise<number> {
  const srv = http.createServer(handler);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => {
    srv.closeAllConnections();
    srv.close();
  });
  return (srv.address() as AddressInfo).port;
}

// Proxies are shared between tests with the same options (starting one costs more than most tests here):
// each test gets a view of the shared recording backend that holds only what happened since it began.
type Shared = { be: RecordingBackend; port: number };
const shared = new Map<string, Promise<Shared>>();

function sharedProxy(key: string, o: StartOptions): Promise<Shared> {
  let s = shared.get(key);
  if (!s) {
    s = (async () => {
      const be = await recordingBackend();
      t.teardown(() => be.close());
      const proxy = await proxyFor(t, be.port, o);
      return { be, port: proxy.port };
    })();
    shared.set(key, s);
  }
  return s;
}

type ConnView = { socket: ConnRecord['socket']; closed: boolean; parseError: string | null; requests: RecordedRequest[] };
type BackendView = {
  /** The requests received since the test began. */
  readonly requests: RecordedRequest[];
  /** The connections that carried them, or were accepted since, in order of first use; their requests since. */
  readonly connections: ConnView[];
  /** Bytes received since the test began, over all connections. */
  bytes(): number;
  /** The index in `connections` of the connection that carried `q`. */
  connOf(q: RecordedRequest): number;
};

function view(be: RecordingBackend): BackendView {
  const reqMark = be.requests.length;
  const connMark = be.connections.length;
  const total = () => be.connections.reduce((n, x) => n + x.bytes, 0);
  const bytesMark = total();
  const conns = () => {
    const list: ConnRecord[] = [];
    for (const q of be.requests.slice(reqMark)) if (!list.includes(q.conn)) list.push(q.conn);
    for (const c of be.connections.slice(connMark)) if (!list.includes(c)) list.push(c);
    return list;
  };
  return {
    get requests() {
      return be.requests.slice(reqMark);
    },
    get connections() {
      return conns().map((c) => ({
        socket: c.socket,
        closed: c.closed,
        parseError: c.parseError,
        requests: c.requests.filter((q) => q.index >= reqMark),
      }));
    },
    bytes: () => total() - bytesMark,
    connOf: (q) => conns().indexOf(q.conn),
  };
}

/**
 * The shared proxy for `o` (and `pool`, to keep a pool of its own), its backend answering with `handler`
 * for this test.
 */
async function setup(t: Test, handler?: Handler, o: StartOptions = {}, pool = ''): Promise<{ be: BackendView; port: number }> {
  const s = await sharedProxy(`${pool}${JSON.stringify(o)}`, o);
  s.be.setHandler(handler ?? defaultHandler);
  t.teardown(() => s.be.setHandler(defaultHandler));
  return { be: view(s.be), port: s.port };
}

async function client(t: Test, port: number, keepBodies = true): Promise<HttpClient> {
  const c = await httpClient(port, keepBodies);
  t.teardown(() => c.destroy());
  return c;
}

// ---- 5. backend failures ------------------------------------------------------------------------------

t.test('a backend that refuses connections: 502', async (t) => {
  const proxy = await proxyFor(t, await deadPort());
  const c = await client(t, proxy.port);
  c.send(get('/refused'));
  const [r] = await c.responses(1);
  t.equal(r.status, 502);
});

t.test('a backend that resets before responding: 502', async (t) => {
  const { be, port } = await setup(t, () => ({ action: 'reset' }));
  const c = await client(t, port);
  c.send(get('/reset'));
  const [r] = await c.responses(1);
  t.equal(r.status, 502);
  t.ok(be.requests.length >= 1 && be.requests.length <= 2, 'sent, and retried at most once');
});

t.test('a backend that resets after part of the head: 502', async (t) => {
  const { port } = await setup(t, () => ({ raw: 'HTTP/1.1 200 OK\r\nContent-Le', reset: true }));
  const c = await client(t, port);
  c.send(get('/half-head'));
  const [r] = await c.responses(1);
  t.equal(r.status, 502);
});

t.test('a backend that sends garbage: 502', async (t) => {
  const { port } = await setup(t, () => ({ raw: 'this is not HTTP at all\r\n\r\n' }));
  const c = await client(t, port);
  c.send(get('/garbage'));
  const [r] = await c.responses(1);
  t.equal(r.status, 502);
});

t.test('a backend that resets mid-body: the client connection is closed, short of the body', async (t) => {
  const { port } = await setup(t, () => ({
    raw: 'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n' + 'x'.repeat(1000),
    reset: true,
  }));
  const c = await client(t, port);
  c.send(get('/mid-body'));
  await c.closed();
  const rs = c.reader.responses;
  t.ok(rs.length <= 1, 'at most the relayed response');
  if (rs.length === 1) {
    t.equal(rs[0].status, 200, 'the response already under way');
    t.notOk(rs[0].complete, 'and it is incomplete: the client can tell');
  }
});

// ---- 6. backend timeout -------------------------------------------------------------------------------

t.test('a backend that never answers: 504 after backendTimeoutMs', async (t) => {
  const { be, port } = await setup(t, () => ({ action: 'never' }), TIMEOUTS);
  const c = await client(t, port);
  c.send(get('/never'));
  const [r] = await c.responses(1, 5000);
  t.equal(r.status, 504);
  t.equal(be.requests.length, 1, 'the backend did get the request');
});

t.test('a backend that stops in the middle of a response: the client is cut off after backendTimeoutMs', async (t) => {
  // A head that promises 100 bytes, 10 of them, then nothing: HAProxy's timeout server, nginx's
  // proxy_read_timeout. The client has part of the response, so no status can replace it: it is closed.
  const srv = await serve((s) => s.once('data', () => s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789')));
  t.teardown(() => srv.close());
  const proxy = await proxyFor(t, srv.port, { backendTimeoutMs: 300 });
  // Not half-open: Node reports a reset that follows data sometimes as an end, and then must close too
  // (test/cli.test.ts checks that it is a reset, through the kernel).
  const c = net.connect({ port: proxy.port, host: '127.0.0.1', allowHalfOpen: false });
  t.teardown(() => c.destroy());
  let got = '';
  c.on('data', (d: Buffer) => (got += d.toString('latin1')));
  c.write(get('/stall'));
  await within(closed(c), 5000, 'the client to be closed');
  t.match(got, /^HTTP\/1\.1 200 OK\r\n/, 'the response had started');
  t.ok(got.endsWith('\r\n\r\n0123456789'), 'with the 10 bytes the backend sent, and nothing made up after them');
  await waitFor(() => proxy.stats().active === 0, 'the backend connection closed too', 5000);
});

t.test('a backend that trickles its response, each piece within backendTimeoutMs, is not cut off', async (t) => {
  // The deadline bounds each wait, not the whole response: ten pieces 150 ms apart take longer than it.
  const srv = await serve((s) =>
    s.once('data', async () => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n');
      for (let i = 0; i < 10; i++) {
        await sleep(150);
        s.write('0123456789');
      }
    }),
  );
  t.teardown(() => srv.close());
  const proxy = await proxyFor(t, srv.port, { backendTimeoutMs: 400 });
  const c = await client(t, proxy.port);
  c.send(get('/trickle'));
  const [r] = await c.responses(1, 5000);
  t.equal(r.status, 200);
  t.equal(r.body.toString(), '0123456789'.repeat(10), 'all of it, after 1.5 s');
  t.notOk(c.ended(), 'and the connection is still open');
});

t.test('a client that reads none of a large response is closed after backendTimeoutMs', async (t) => {
  // HAProxy's timeout client, nginx's send_timeout: with every buffer on the way full, nothing moves.
  const body = randomBytes(32 << 20);
  const proxy = await proxyFor(t, await nodeBackend(t, (_req, res) => res.end(body)), { backendTimeoutMs: 300 });
  const c = await connect(proxy.port);
  t.teardown(() => c.destroy());
  c.pause(); // never reads
  c.write(get('/big'));
  // accepted is counted a moment before active: wait for the connection to be held, then let go.
  await waitFor(() => proxy.stats().active > 0, 'the proxy to hold the client', 5000);
  await waitFor(() => proxy.stats().active === 0, 'the proxy to let the client go', 5000);
  t.equal(proxy.stats().ioErrors, 1, 'counted');
  t.equal(proxy.stats().buffers, 0, 'and every buffer it held for it given back');
});

// ---- 7. header timeout --------------------------------------------------------------------------------

t.test('a partial head, then nothing: 408 and close; the backend sees nothing', async (t) => {
  const { be, port } = await setup(t, undefined, TIMEOUTS);
  const c = await client(t, port);
  c.send('GET /slow HTTP/1.1\r\nHost: test.local\r\nX-A: ');
  const [r] = await c.responses(1, 5000);
  t.equal(r.status, 408);
  t.match(r.headers['connection'], /close/i);
  await c.closed();
  t.equal(be.bytes(), 0, 'not one byte reached the backend');
});

t.test('a head trickled one byte every 50 ms still gets 408 (the deadline is not reset per byte)', async (t) => {
  const { be, port } = await setup(t, undefined, TIMEOUTS);
  const c = await client(t, port);
  // 400 bytes at 50 ms each would take 20 s: the 408 must come long before the head is complete.
  const head = get('/trickle', `X-Pad: ${'p'.repeat(360)}\r\n`);
  let sent = 0;
  while (sent < head.length && c.reader.responses.length === 0 && !c.ended()) {
    c.socket.write(head[sent++]);
    await sleep(50);
  }
  t.ok(sent < head.length, `answered after ${sent} of ${head.length} bytes`);
  const [r] = await c.responses(1, 1000);
  t.equal(r.status, 408);
  await c.closed();
  t.equal(be.requests.length, 0);
});

t.test('a client that stops in the middle of its request body: 408 after idleTimeoutMs', async (t) => {
  // nginx's client_body_timeout, HAProxy's timeout client: the body's deadline moves on with each read.
  const port = await nodeBackend(t, (req, res) => {
    req.resume();
    req.on('end', () => res.end('whole'));
  });
  const proxy = await proxyFor(t, port, { idleTimeoutMs: 300 });
  const c = await connect(proxy.port);
  t.teardown(() => c.destroy());
  let got = '';
  c.on('data', (d: Buffer) => (got += d.toString('latin1')));
  c.write('POST /up HTTP/1.1\r\nHost: test.local\r\nContent-Length: 100\r\n\r\n0123456789');
  // More of it, a little at a time, each within the deadline: that is progress, not a stall.
  for (let i = 0; i < 4; i++) {
    await sleep(150);
    c.write('0123456789');
  }
  t.equal(got, '', 'nothing yet: the body was moving');
  await within(peerDone(c), 5000, 'the proxy to finish with the client');
  t.match(got, /^HTTP\/1\.1 408 /, '408 once it stopped');
  await waitFor(() => proxy.stats().active === 1, 'the backend connection closed: only the answered client is left', 5000);
  c.destroy();
  await waitFor(() => proxy.stats().active === 0, 'and it too once it closes', 5000);
});

// ---- 8. keep-alive ------------------------------------------------------------------------------------

t.test('HTTP/1.1 keeps the connection by default', async (t) => {
  const { be, port } = await setup(t);
  const c = await client(t, port);
  for (let i = 0; i < 3; i++) {
    c.send(get(`/ka${i}`));
    const rs = await c.responses(i + 1);
    t.equal(rs[i].body.toString(), `GET /ka${i} 0`);
    t.notMatch(rs[i].headers['connection'] ?? '', /close/i);
  }
  t.notOk(c.ended(), 'still open');
  t.equal(be.requests.length, 3);
});

t.test('HTTP/1.0: closed after the response, unless Connection: keep-alive', async (t) => {
  const { be, port } = await setup(t);
  const a = await client(t, port);
  a.send('GET /ten HTTP/1.0\r\n\r\n');
  const [ra] = await a.responses(1);
  t.equal(ra.status, 200);
  await a.closed();

  const b = await client(t, port);
  b.send('GET /ten-ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  const [rb] = await b.responses(1);
  t.equal(rb.status, 200);
  t.match(rb.headers['connection'], /keep-alive/i, 'the proxy says it keeps the HTTP/1.0 connection');
  b.send('GET /ten-ka-2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  const rs = await b.responses(2);
  t.equal(rs[1].body.toString(), 'GET /ten-ka-2 0', 'a second request on it is answered');
  t.equal(be.requests.length, 3);
});

t.test('Connection: close from the client: echoed on the response, then the proxy closes', async (t) => {
  const { port } = await setup(t);
  const c = await client(t, port);
  c.send(get('/bye', 'Connection: close\r\n'));
  const [r] = await c.responses(1);
  t.equal(r.status, 200);
  t.match(r.headers['connection'], /close/i);
  await c.closed();
});

t.test('Connection: close from the backend: that backend connection is not reused, the client one is', async (t) => {
  const { be, port } = await setup(t, (req) => ({ status: 200, body: req.url, close: true }));
  const c = await client(t, port);
  c.send(get('/one'));
  await c.responses(1);
  c.send(get('/two'));
  const rs = await c.responses(2);
  t.equal(rs[1].body.toString(), '/two', 'the client connection carried a second request');
  t.notOk(c.ended());
  t.equal(be.connections.length, 2, 'a new backend connection for the second request');
  t.equal(be.connections[0].requests.length, 1);
  t.equal(be.connections[1].requests.length, 1);
});

// ---- 9. the backend pool ------------------------------------------------------------------------------

t.test('sequential requests from one client share one backend connection', async (t) => {
  const { be, port } = await setup(t, undefined, {}, 'pool');
  const c = await client(t, port);
  for (let i = 0; i < 5; i++) {
    c.send(get(`/seq${i}`));
    await c.responses(i + 1);
  }
  t.equal(be.connections.length, 1);
  t.equal(be.requests.length, 5);
});

t.test('successive clients share one backend connection', async (t) => {
  const { be, port } = await setup(t, undefined, {}, 'pool');
  for (let k = 0; k < 3; k++) {
    const c = await client(t, port);
    for (let i = 0; i < 2; i++) {
      c.send(get(`/client${k}/${i}`));
      await c.responses(i + 1);
    }
    c.socket.end();
    await c.closed();
  }
  t.equal(be.requests.length, 6);
  t.equal(be.connections.length, 1, 'the backend saw one connection');
  t.equal(be.connections[0].requests.length, 6);
});

// ---- 10. pipelining -----------------------------------------------------------------------------------

t.test('pipelined requests in one write are all answered, in order', async (t) => {
  const { be, port } = await setup(t);
  const c = await client(t, port);
  const urls = ['/a', '/b', '/c', '/d', '/e'];
  c.send(urls.map((u) => get(u)).join(''));
  const rs = await c.responses(urls.length);
  t.same(
    rs.map((r) => r.body.toString()),
    urls.map((u) => `GET ${u} 0`),
  );
  t.same(
    be.requests.map((r) => r.url),
    urls,
  );
});

// ---- 11. bodies ---------------------------------------------------------------------------------------

t.test('Content-Length bodies both ways', async (t) => {
  const { be, port } = await setup(t, (req) => ({ status: 201, body: Buffer.concat([Buffer.from('got:'), req.body!]) }));
  const c = await client(t, port);
  c.send('POST /cl HTTP/1.1\r\nHost: test.local\r\nContent-Length: 11\r\n\r\nhello world', ['POST']);
  const [r] = await c.responses(1);
  t.equal(r.status, 201);
  t.equal(r.body.toString(), 'got:hello world');
  t.equal(be.requests[0].body!.toString(), 'hello world');
  t.equal(be.requests[0].headers['content-length'], '11');
});

t.test('chunked bodies with trailers both ways', async (t) => {
  const { be, port } = await setup(t, (req) => ({
    status: 200,
    body: `body:${req.body!.toString()}`,
    framing: 'chunked',
    chunkSize: 4,
    trailers: [['X-Res-Trailer', 'res-value']],
  }));
  const c = await client(t, port);
  c.send(
    'POST /chunked HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n' +
      '5\r\nhello\r\n6;ext=x\r\n world\r\n0\r\nX-Req-Trailer: req-value\r\n\r\n',
    ['POST'],
  );
  const [r] = await c.responses(1);
  t.equal(be.requests[0].body!.toString(), 'hello world', 'request body');
  t.equal(be.requests[0].trailers['x-req-trailer'], 'req-value', 'request trailer');
  t.equal(r.body.toString(), 'body:hello world', 'response body');
  t.equal(r.trailers['x-res-trailer'], 'res-value', 'response trailer');
});

t.test('32 MiB bodies both ways keep their sha256 (Content-Length and chunked)', async (t) => {
  const big = randomBytes(32 << 20);
  const bigSha = sha256(big);
  const { be, port } = await setup(t, (req) =>
    req.url === '/down-chunked'
      ? { status: 200, body: big, framing: 'chunked', chunkSize: 100_000 }
      : req.url === '/down'
        ? { status: 200, body: big }
        : { status: 200, body: req.bodySha },
  );
  const c = await client(t, port, false);

  c.send(`POST /up HTTP/1.1\r\nHost: test.local\r\nContent-Length: ${big.length}\r\n\r\n`, ['POST']);
  for (let o = 0; o < big.length; o += 1 << 20) {
    if (!c.socket.write(big.subarray(o, o + (1 << 20)))) await once(c.socket, 'drain');
  }
  await c.responses(1, 20_000);
  t.equal(be.requests[0].bodyLength, big.length, 'upload: length');
  t.equal(be.requests[0].bodySha, bigSha, 'upload: sha256');

  c.send(`POST /up-chunked HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n`, ['POST']);
  for (let o = 0; o < big.length; o += 1 << 20) {
    const piece = big.subarray(o, o + (1 << 20));
    c.socket.write(`${piece.length.toString(16)}\r\n`);
    if (!c.socket.write(Buffer.concat([piece, Buffer.from('\r\n')]))) await once(c.socket, 'drain');
  }
  c.socket.write('0\r\n\r\n');
  await c.responses(2, 20_000);
  t.equal(be.requests[1].bodyLength, big.length, 'chunked upload: length');
  t.equal(be.requests[1].bodySha, bigSha, 'chunked upload: sha256');

  c.send(get('/down'));
  const down = (await c.responses(3, 20_000))[2];
  t.equal(down.bodyLength, big.length, 'download: length');
  t.equal(down.bodySha, bigSha, 'download: sha256');

  c.send(get('/down-chunked'));
  const downc = (await c.responses(4, 20_000))[3];
  t.equal(downc.bodyLength, big.length, 'chunked download: length');
  t.equal(downc.bodySha, bigSha, 'chunked download: sha256');
});

t.test('a response delimited by the backend closing is relayed whole, then the client connection closes', async (t) => {
  const body = Buffer.alloc(300_000, 'z');
  const { port } = await setup(t, () => ({ status: 200, body, framing: 'eof' }));
  const c = await client(t, port);
  c.send(get('/until-close'));
  await c.closed();
  const rs = c.reader.finalResponses();
  t.equal(rs.length, 1);
  t.equal(rs[0]?.bodyLength, body.length, 'every byte relayed');
  t.equal(rs[0]?.bodySha, sha256(body));
});

t.test('HEAD, 204 and 304 responses carry no body, whatever Content-Length says', async (t) => {
  const { port } = await setup(t, (req) => {
    if (req.url === '/head') return { status: 200, headers: [['Content-Length', '1000']], framing: 'none', body: 'x'.repeat(1000) };
    if (req.url === '/204') return { status: 204, headers: [['Content-Length', '5']], framing: 'none' };
    if (req.url === '/304') return { status: 304, headers: [['Content-Length', '5']], framing: 'none' };
    return { status: 200, body: `after ${req.url}` };
  });
  // buildResponse writes no body for HEAD, 204 and 304 (as a correct backend does): the next request on
  // the connection must be forwarded and its response found right after the head.
  for (const [method, url, status] of [
    ['HEAD', '/head', 200],
    ['GET', '/204', 204],
    ['GET', '/304', 304],
  ] as const) {
    await t.test(`${method} ${url}`, async (t) => {
      const c = await client(t, port);
      c.send(get(url, '', method), [method]);
      const [r] = await c.responses(1);
      t.equal(r.status, status);
      t.equal(r.bodyLength, 0, 'no body');
      if (method === 'HEAD') t.equal(r.headers['content-length'], '1000', 'the HEAD response keeps its Content-Length');
      c.send(get(`/after${url}`));
      const rs = await c.responses(2);
      t.equal(rs[1].body.toString(), `after /after${url}`, 'the next request on the connection is answered');
      t.equal(c.reader.error, null);
    });
  }
});

// ---- 12. header rewriting -----------------------------------------------------------------------------

t.test('hop-by-hop fields are removed; X-Forwarded-* added', async (t) => {
  const { be, port } = await setup(t);
  const c = await client(t, port);
  c.send(
    get(
      '/hop',
      'Connection: keep-alive, X-Hop-Named\r\n' +
        'X-Hop-Named: secret\r\n' +
        'Keep-Alive: timeout=5\r\n' +
        'Proxy-Connection: keep-alive\r\n' +
        'TE: trailers\r\n' +
        'Trailer: X-Whatever\r\n' +
        'Upgrade: h2c\r\n' +
        'X-End-To-End: kept\r\n' +
        'X-Forwarded-For: 203.0.113.7\r\n' +
        'X-Forwarded-Proto: https\r\n' +
        'X-Forwarded-Host: forged.example\r\n',
    ),
  );
  await c.responses(1);
  const h = be.requests[0].headers;
  for (const name of ['x-hop-named', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']) {
    t.notOk(name in h, `${name} removed`);
  }
  t.notMatch(h['connection'] ?? '', /x-hop-named/i, 'Connection not forwarded as sent');
  t.equal(h['x-end-to-end'], 'kept', 'end-to-end fields kept');
  t.equal(h['host'], 'test.local');
  t.equal(h['x-forwarded-for'], '203.0.113.7, 127.0.0.1', 'X-Forwarded-For appended');
  t.equal(h['x-forwarded-proto'], 'http');
  t.equal(h['x-forwarded-host'], 'test.local', "X-Forwarded-Host is the client's Host");
});

t.test('X-Forwarded-For added when the client sent none', async (t) => {
  const { be, port } = await setup(t);
  const c = await client(t, port);
  c.send(get('/xff'));
  await c.responses(1);
  t.equal(be.requests[0].headers['x-forwarded-for'], '127.0.0.1');
  t.equal(be.requests[0].headers['x-forwarded-proto'], 'http');
  t.equal(be.requests[0].headers['x-forwarded-host'], 'test.local');
});

t.test('forwardedHeaders: false adds none and leaves the client fields alone', async (t) => {
  const { be, port } = await setup(t, undefined, { forwardedHeaders: false });
  const c = await client(t, port);
  c.send(get('/nofwd', 'X-Forwarded-Proto: https\r\n'));
  c.send(get('/nofwd2'));
  await c.responses(2);
  t.equal(be.requests[0].headers['x-forwarded-proto'], 'https', "the client's own field passes untouched");
  t.notOk('x-forwarded-for' in be.requests[0].headers);
  t.notOk('x-forwarded-host' in be.requests[0].headers);
  for (const name of ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']) {
    t.notOk(name in be.requests[1].headers, `${name} not added`);
  }
});

t.test('hop-by-hop fields of the response are removed too', async (t) => {
  const { port } = await setup(t, () => ({
    status: 200,
    body: 'ok',
    headers: [
      ['Connection', 'X-Res-Hop'],
      ['X-Res-Hop', 'secret'],
      ['Keep-Alive', 'timeout=5'],
      ['X-Res-Kept', 'yes'],
    ],
  }));
  const c = await client(t, port);
  c.send(get('/res-hop'));
  const [r] = await c.responses(1);
  t.notOk('x-res-hop' in r.headers, 'the field the backend named in Connection is removed');
  t.notOk('keep-alive' in r.headers, 'Keep-Alive is removed');
  t.equal(r.headers['x-res-kept'], 'yes', 'end-to-end fields kept');
});

// ---- 13. 100-continue ---------------------------------------------------------------------------------

t.test('Expect: 100-continue: the 100 reaches the client before it sends the body', async (t) => {
  const { be, port } = await setup(t);
  const c = await client(t, port);
  c.send('PUT /expect HTTP/1.1\r\nHost: test.local\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n', ['PUT']);
  await waitFor(() => c.reader.responses.length > 0 || c.ended(), 'an interim response', 5000);
  t.equal(c.reader.responses[0]?.status, 100, 'the first thing back is 100 Continue');
  t.equal(be.requests.length, 0, 'the request is not complete yet');
  c.socket.write('12345');
  const [r] = await c.responses(1);
  t.equal(r.status, 200);
  t.equal(r.body.toString(), 'PUT /expect 5');
  t.equal(be.requests[0].headers['expect'], '100-continue', 'the backend saw the Expect field');
});

// ---- 14. upgrades -------------------------------------------------------------------------------------

t.test('WebSocket through the proxy (ws client and server): messages echo both ways', async (t) => {
  const server = http.createServer((_, res) => res.end('plain'));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(async () => {
    for (const ws of wss.clients) ws.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const proxy = await proxyFor(t, (server.address() as { port: number }).port);
  const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/chat`);
  t.teardown(() => ws.terminate());
  const received: string[] = [];
  ws.on('message', (d) => received.push(d.toString()));
  await within(
    Promise.race([
      once(ws, 'open'),
      once(ws, 'unexpected-response').then(([, res]) => {
        throw new Error(`upgrade answered ${(res as http.IncomingMessage).statusCode}`);
      }),
    ]),
    5000,
    'the WebSocket to open',
  );
  const msgs = ['one', 'two', 'three', 'x'.repeat(200_000), 'five'];
  for (const m of msgs) ws.send(m);
  await waitFor(() => received.length === msgs.length, 'every echo', 10_000);
  t.same(received, msgs, 'every message echoed, in order');
  const bin = randomBytes(100_000);
  ws.send(bin);
  const [echo] = (await within(once(ws, 'message'), 5000, 'the binary echo')) as [Buffer];
  t.equal(sha256(Buffer.from(echo)), sha256(bin), 'a binary message');
  ws.close();
  await within(once(ws, 'close'), 5000, 'the close handshake');
});

t.test('an upgrade answered 200 instead of 101 is a normal response, not a tunnel', async (t) => {
  const { be, port } = await setup(t, (req) =>
    req.url === '/ws' ? { status: 200, body: 'no tunnel for you' } : { status: 200, body: `normal ${req.url}` },
  );
  const c = await client(t, port);
  c.send('GET /ws HTTP/1.1\r\nHost: test.local\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
  const [r] = await c.responses(1);
  t.equal(r.status, 200);
  t.equal(r.body.toString(), 'no tunnel for you');
  t.equal(be.requests[0].headers['upgrade'], 'websocket', 'the backend saw the Upgrade request');
  if (/close/i.test(r.headers['connection'] ?? '')) {
    await c.closed();
    t.pass('closed after a Connection: close response');
  } else {
    // The connection is still HTTP: a following request is parsed and answered as one.
    c.send(get('/after'));
    const rs = await c.responses(2);
    t.equal(rs[1].body.toString(), 'normal /after');
    t.equal(be.requests[1].headers['x-forwarded-for'], '127.0.0.1', 'it went through the HTTP path (X-Forwarded-For added), not a tunnel');
    t.same(
      be.requests.map((q) => q.url),
      ['/ws', '/after'],
    );
  }
  t.same(
    be.connections.map((x) => x.parseError),
    be.connections.map(() => null),
    'nothing but HTTP reached the backend',
  );
});

t.test('a 101 from the backend opens a raw tunnel', async (t) => {
  const { be, port } = await setup(t, () => ({
    status: 101,
    headers: [
      ['Connection', 'Upgrade'],
      ['Upgrade', 'echo'],
    ],
    delayMs: 100,
  }));
  const c = await connect(port);
  t.teardown(() => c.destroy());
  let got = Buffer.alloc(0);
  c.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
  c.write('GET /echo HTTP/1.1\r\nHost: test.local\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
  await waitFor(() => /^HTTP\/1\.1 101 /.test(got.toString('latin1')) && got.includes('\r\n\r\n'), 'the 101', 5000);
  const headEnd = got.indexOf('\r\n\r\n') + 4;
  t.match(got.subarray(0, headEnd).toString('latin1'), /upgrade: echo/i, 'the 101 keeps Upgrade');
  c.write('tunnel bytes');
  await waitFor(() => got.length >= headEnd + 12, 'the echo', 5000);
  t.equal(got.subarray(headEnd).toString(), 'tunnel bytes', 'raw bytes flow both ways after the 101');
  t.equal(be.requests.length, 1);
  t.equal(be.requests[0].headers['upgrade'], 'echo');
});

t.test('a tunnel in which nothing moves for --tunnel-timeout is closed', async (t) => {
  const { port } = await setup(
    t,
    () => ({ status: 101, headers: [['Connection', 'Upgrade'], ['Upgrade', 'echo']] }),
    { tunnelTimeoutMs: 400 },
  );
  // One tunnel quiet from its 101 on; one with traffic for three deadlines first.
  for (const messages of [0, 8]) {
    const c = await connect(port);
    t.teardown(() => c.destroy());
    let got = Buffer.alloc(0);
    c.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
    const done = peerDone(c);
    c.write('GET /echo HTTP/1.1\r\nHost: test.local\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
    await waitFor(() => got.includes('\r\n\r\n'), 'the 101', 5000);
    const headEnd = got.indexOf('\r\n\r\n') + 4;
    let ended = false;
    void done.then(() => (ended = true));
    // When bytes last moved, as the client saw it: the proxy saw it no later.
    let lastMove = Date.now();
    for (let i = 0; i < messages && !ended; i++) {
      c.write('x');
      await waitFor(() => got.length === headEnd + i + 1, 'the echo', 5000);
      lastMove = Date.now();
      await sleep(150);
    }
    t.notOk(ended, `open through ${messages} messages 150 ms apart`);
    t.equal(await within(done, 5000, 'the close'), 'end', 'closed with FIN once quiet');
    t.ok(Date.now() - lastMove >= 350, "not before the deadline (400 ms from the last bytes, less the echo on its way back)");
  }
});

// ---- 15. retry on a pooled connection that turned out closed -----------------------------------------

t.test('an idempotent request on a pooled connection the backend had closed is retried once', async (t) => {
  // The backend closes the connection without a response when the second request arrives on it (FIN, or
  // a reset): what the proxy sees when the backend's idle close crosses the reuse of a pooled connection.
  for (const action of ['close', 'reset'] as const) {
    await t.test(`backend ${action === 'close' ? 'FIN' : 'RST'}`, async (t) => {
      let hit = 0;
      const { be, port } = await setup(t, (req) =>
        req.url === '/second' && hit++ === 0 ? { action } : { status: 200, body: `ok ${req.url}` },
      );
      const c = await client(t, port);
      c.send(get('/first'));
      await c.responses(1);
      c.send(get('/second'));
      const rs = await c.responses(2);
      t.equal(rs[1].status, 200, 'the client got a normal answer');
      t.equal(rs[1].body.toString(), 'ok /second');
      t.equal(be.connections.length, 2, 'retried on a new connection');
      const [first, second, again] = be.requests;
      t.same(
        be.requests.map((q) => q.url),
        ['/first', '/second', '/second'],
      );
      t.equal(be.connOf(second), be.connOf(first), 'the first try went over the pooled connection');
      t.not(be.connOf(again), be.connOf(second), 'the retry over another');
    });
  }
});

t.test('a pooled connection closed by the backend while idle: the next request still gets 200', async (t) => {
  const { be, port } = await setup(t, (req) => ({ status: 200, body: `ok ${req.url}` }));
  const c = await client(t, port);
  c.send(get('/first'));
  await c.responses(1);
  be.connections[0].socket.end(); // the backend's idle timeout
  await waitFor(() => be.connections[0].closed, 'the backend side to close', 5000);
  c.send(get('/after-idle-close'));
  const rs = await c.responses(2);
  t.equal(rs[1].status, 200);
  t.equal(rs[1].body.toString(), 'ok /after-idle-close');
  t.equal(be.connections.length, 2);
});

t.test('a POST on a pooled connection that turned out closed is not retried: 502', async (t) => {
  let hit = 0;
  const { be, port } = await setup(t, (req) =>
    req.url === '/not-idempotent' && hit++ === 0 ? { action: 'close' } : { status: 200, body: `ok ${req.url}` },
  );
  const c = await client(t, port);
  c.send(get('/first'));
  await c.responses(1);
  c.send('POST /not-idempotent HTTP/1.1\r\nHost: test.local\r\nContent-Length: 3\r\n\r\nabc', ['POST']);
  const rs = await c.responses(2);
  t.equal(rs[1].status, 502);
  t.equal(be.requests.filter((q) => q.url === '/not-idempotent').length, 1, 'sent once only');
});

t.test('a request answered 504 on a pooled connection keeps no copy of itself while the client lingers', async (t) => {
  // The copy kept for a replay is a buffer of the pool (invariant 5 in docs/architecture.md): once the request
  // is answered it must go back, not stay with the client for as long as the proxy waits for its close.
  const be = await recordingBackend();
  t.teardown(() => be.close());
  be.setHandler((req) => (req.url === '/never' ? { action: 'never' } : { status: 200, body: 'ok' }));
  const proxy = await proxyFor(t, be.port, { backendTimeoutMs: 300, headerTimeoutMs: 10000 });
  const c = await client(t, proxy.port);
  c.send(get('/first'));
  await c.responses(1); // the backend connection is pooled now, and /never goes over it
  c.send(get('/never'));
  const rs = await c.responses(2, 5000);
  t.equal(rs[1].status, 504);
  await waitFor(() => proxy.stats().buffers === 0, 'every buffer back in the pool', 3000);
  t.equal(proxy.stats().active, 1, 'while the client, answered, is still held open');
});

// ---- 16. the backend never gets more than the client was answered for --------------------------------

t.test('a body that holds a request is a body; the backend sees only declared requests', async (t) => {
  const { be, port } = await setup(t);
  const c = await client(t, port);
  const hidden = 'GET /hidden HTTP/1.1\r\nHost: test.local\r\n\r\n';
  c.send(
    get('/a') +
      `POST /b HTTP/1.1\r\nHost: test.local\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}` +
      'POST /c HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n' +
      `${hidden.length.toString(16)}\r\n${hidden}\r\n0\r\n\r\n` +
      get('/d'),
    ['GET', 'POST', 'POST', 'GET'],
  );
  const rs = await c.responses(4);
  t.same(
    rs.map((r) => r.body.toString()),
    ['GET /a 0', `POST /b ${hidden.length}`, `POST /c ${hidden.length}`, 'GET /d 0'],
  );
  t.same(
    be.requests.map((q) => q.url),
    ['/a', '/b', '/c', '/d'],
  );
  t.equal(be.requests[1].body!.toString(), hidden);
  t.equal(be.requests[2].body!.toString(), hidden);
});

t.test('a malformed request in a pipeline: the backend gets only what was answered before it', async (t) => {
  const { be, port } = await setup(t);
  const c = await client(t, port);
  c.send(get('/1') + get('/2') + 'GET /3 HTTP/1.1\r\nHost: test.local\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab' + get('/4'));
  await c.closed();
  const statuses = c.reader.finalResponses().map((r) => r.status);
  t.same(statuses, [200, 200, 400]);
  await sleep(50);
  t.same(
    be.requests.map((q) => q.url),
    ['/1', '/2'],
  );
  t.equal(
    be.requests.length,
    statuses.filter((s) => s === 200).length,
    'as many backend requests as answered ones',
  );
});

t.test('a backend error on one request does not send the next one twice', async (t) => {
  const { be, port } = await setup(t, (req) =>
    req.url === '/bad' ? { raw: 'garbage\r\n\r\n', close: true } : { status: 200, body: req.url },
  );
  const c = await client(t, port);
  c.send(get('/ok1'));
  await c.responses(1);
  c.send(get('/bad'));
  const rs = await c.responses(2);
  t.equal(rs[1].status, 502);
  // A generated 502 says Connection: close and the proxy closes after it; its FIN may not be here yet.
  if (!c.ended() && rs[1].shouldKeepAlive) {
    c.send(get('/ok2'));
    const rs2 = await c.responses(3);
    t.equal(rs2[2].body.toString(), '/ok2');
  }
  await sleep(50);
  const counts = new Map<string, number>();
  for (const q of be.requests) counts.set(q.url, (counts.get(q.url) ?? 0) + 1);
  t.equal(counts.get('/bad'), 1, 'a request answered with garbage is not retried');
  t.ok((counts.get('/ok2') ?? 0) <= 1);
});
