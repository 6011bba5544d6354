// The PROXY protocol at both edges of a running proxy: --accept-proxy takes the header a load balancer puts
// in front of each client (split at any byte, v1 or v2), refuses what is malformed or late without a byte
// reaching the backend, and --send-proxy v1|v2 starts every backend connection with the client's header.
// Real sockets both sides; the headers the backend receives are checked byte for byte.
import t from 'tap';
import net from 'node:net';
import { start } from '../../dist/index.js';
import { PP, ProxyHeader, encodeV2, parseProxyHeader } from '../../dist/transport/proxy-protocol.js';
import { closed, connect, peerDone, readResponse, serve, waitFor, type TestServer } from '../helpers/net.js';

/** A TCP backend that keeps every byte each connection sent, and answers "ok" once that connection ends. */
async function recorder(): Promise<TestServer & { got: Buffer[] }> {
  const got: Buffer[] = [];
  const srv = await serve((s) => {
    const i = got.push(Buffer.alloc(0)) - 1;
    s.on('data', (d: Buffer) => (got[i] = Buffer.concat([got[i], d])));
    s.on('end', () => s.end('ok'));
  });
  return Object.assign(srv, { got });
}

/** Sends `parts` with a pause between them, half-closes, and resolves with what came back before close. */
async function exchange(port: number, parts: (string | Buffer)[], gapMs = 5): Promise<string> {
  const c = await connect(port);
  let reply = '';
  c.on('data', (d) => (reply += d));
  const done = closed(c);
  for (const p of parts) {
    c.write(p);
    await new Promise((r) => setTimeout(r, gapMs));
  }
  c.end();
  await done;
  return reply;
}

const V1 = 'PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n';

/** A v2 header for 203.0.113.7:51000 -> 192.0.2.1:443, with one TLV (PP2_TYPE_AUTHORITY "example.com"). */
function v2WithTlv(): Buffer {
  const base = Buffer.alloc(64);
  const n = encodeV2(base, 0, 'ipv4', '203.0.113.7', 51000, '192.0.2.1', 443);
  const tlv = Buffer.concat([Buffer.from([0x02, 0x00, 11]), Buffer.from('example.com')]);
  const h = Buffer.concat([base.subarray(0, n), tlv]);
  h.writeUInt16BE(h.length - 16, 14);
  return h;
}

function parsed(t: { equal(a: unknown, b: unknown, m: string): void }, b: Buffer): ProxyHeader {
  const h = new ProxyHeader();
  t.equal(parseProxyHeader(b, 0, b.length, h), PP.OK, `a valid header reached the backend: ${h.error}`);
  return h;
}

t.test('TCP mode, --accept-proxy --send-proxy v1', async (t) => {
  const be = await recorder();
  const proxy = await start({
    listen: '127.0.0.1:0',
    backend: `127.0.0.1:${be.port}`,
    workers: 1,
    logLevel: 'silent',
    acceptProxy: true,
    sendProxy: 'v1',
    headerTimeoutMs: 1000,
  });
  t.teardown(async () => {
    await proxy.close(0);
    await be.close();
  });

  t.test('a v1 header sent a byte at a time: the backend gets the client it names, then the stream', async (t) => {
    const reply = await exchange(proxy.port, [...V1.split(''), 'hello ', 'world'], 2);
    t.equal(reply, 'ok');
    await waitFor(() => be.got.length === 1 && be.got[0].toString().endsWith('world'), 'the stream at the backend');
    t.equal(be.got[0].toString(), V1 + 'hello world', 'the same client and proxy addresses, then exactly the payload');
  });

  t.test('a v2 header with a TLV and the payload in one packet', async (t) => {
    const reply = await exchange(proxy.port, [Buffer.concat([v2WithTlv(), Buffer.from('payload')])]);
    t.equal(reply, 'ok');
    await waitFor(() => be.got.length === 2 && be.got[1].toString().endsWith('payload'), 'the stream at the backend');
    t.equal(be.got[1].toString(), V1 + 'payload', 'the v2 header named the same client; v1 went on');
  });

  t.test('a v2 LOCAL header (a health check): the socket addresses go on', async (t) => {
    const local = Buffer.alloc(16);
    encodeV2(local, 0, null, '', 0, '', 0);
    const c = await connect(proxy.port);
    const port = c.localPort!;
    let reply = '';
    c.on('data', (d) => (reply += d));
    const done = closed(c);
    c.end(Buffer.concat([local, Buffer.from('ping')]));
    await done;
    t.equal(reply, 'ok');
    await waitFor(() => be.got.length === 3 && be.got[2].toString().endsWith('ping'), 'the stream at the backend');
    t.equal(be.got[2].toString(), `PROXY TCP4 127.0.0.1 127.0.0.1 ${port} ${proxy.port}\r\nping`);
  });

  t.test('malformed or missing headers: closed, counted, and nothing reaches the backend', async (t) => {
    const cases: [string, string | Buffer][] = [
      ['plain HTTP, no header', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'],
      ['a port with a leading zero', 'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n'],
      ['an octet over 255', 'PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n'],
      ['two spaces', 'PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n'],
      ['LF without CR', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'],
      ['IPv6 addresses under TCP4', 'PROXY TCP4 ::1 ::1 1 2\r\n'],
      ['no CRLF within 107 bytes', 'PROXY UNKNOWN ' + 'x'.repeat(120)],
      ['v2 with version 1', Buffer.concat([v2WithTlv().subarray(0, 12), Buffer.from([0x11, 0x11, 0, 12]), Buffer.alloc(12)])],
      ['v2 with a length over the cap', Buffer.concat([v2WithTlv().subarray(0, 12), Buffer.from([0x21, 0x11, 0xff, 0xff])])],
    ];
    const before = be.got.length;
    let refused = proxy.stats().proxyRefused;
    for (const [what, bytes] of cases) {
      const c = await connect(proxy.port);
      let reply = '';
      c.on('data', (d) => (reply += d));
      const done = peerDone(c);
      c.write(bytes);
      await done;
      c.destroy();
      t.equal(reply, '', `${what}: no answer`);
      t.equal(proxy.stats().proxyRefused, ++refused, `${what}: counted`);
    }
    t.equal(be.got.length, before, 'the backend saw no connection');
    await waitFor(() => proxy.stats().active === 0, 'every refused client closed');
  });

  t.test('a header not complete within --header-timeout: closed at the deadline', async (t) => {
    const before = be.got.length;
    const refused = proxy.stats().proxyRefused;
    const c = await connect(proxy.port);
    const done = peerDone(c);
    c.write('PROXY TCP4 203.0.113.7 ');
    const at = Date.now();
    await done;
    c.destroy();
    t.ok(Date.now() - at >= 800, 'not before the deadline');
    t.equal(proxy.stats().proxyRefused, refused + 1, 'counted');
    t.equal(be.got.length, before, 'the backend saw no connection');
  });

  t.test('other connections are unharmed by a refused one', async (t) => {
    const bad = connect(proxy.port).then(async (c) => {
      const done = peerDone(c);
      c.write('garbage\r\n');
      await done;
      c.destroy();
    });
    const reply = await exchange(proxy.port, [V1 + 'fine']);
    await bad;
    t.equal(reply, 'ok');
  });
});

t.test('TCP mode, --send-proxy v2 alone: the client socket addresses, as v2', async (t) => {
  const be = await recorder();
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${be.port}`, workers: 1, logLevel: 'silent', sendProxy: 'v2' });
  t.teardown(async () => {
    await proxy.close(0);
    await be.close();
  });
  const c = await connect(proxy.port);
  const port = c.localPort!;
  c.resume(); // read (and drop) the "ok", so the socket sees the end and closes
  const done = closed(c);
  c.end('data after the header');
  await done;
  await waitFor(() => be.got.length === 1 && be.got[0].toString().endsWith('header'), 'the stream at the backend');
  const h = parsed(t, be.got[0]);
  t.equal(h.version, 2);
  t.same(
    [h.family, h.srcAddr, h.srcPort, h.dstAddr, h.dstPort],
    ['ipv4', '127.0.0.1', port, '127.0.0.1', proxy.port],
    'the client as the proxy saw it, and the address it connected to',
  );
  t.equal(be.got[0].subarray(h.consumed).toString(), 'data after the header');
});

/**
 * A raw HTTP backend that accepts a PROXY v1 line at the start of each connection, records it, and answers
 * each request with its own head as the body.
 */
async function httpRecorder(): Promise<TestServer & { headers: string[]; requests: string[] }> {
  const headers: string[] = [];
  const requests: string[] = [];
  const srv = await serve((s) => {
    let buf = '';
    let first = true;
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (first) {
        const eol = buf.indexOf('\r\n');
        if (eol < 0) return;
        headers.push(buf.slice(0, eol + 2));
        buf = buf.slice(eol + 2);
        first = false;
      }
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end + 4);
        buf = buf.slice(end + 4);
        requests.push(head);
        s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${head.length}\r\n\r\n${head}`);
      }
    });
    s.on('end', () => s.end());
  });
  return Object.assign(srv, { headers, requests });
}

/** The body of the next response on `c`. */
const response = async (c: net.Socket): Promise<string> => (await readResponse(c)).body;

t.test('HTTP mode, --accept-proxy --send-proxy v1', async (t) => {
  const be = await httpRecorder();
  const proxy = await start({
    listen: '127.0.0.1:0',
    backend: `127.0.0.1:${be.port}`,
    mode: 'http',
    workers: 1,
    logLevel: 'silent',
    acceptProxy: true,
    sendProxy: 'v1',
  });
  t.teardown(async () => {
    await proxy.close(0);
    await be.close();
  });

  t.test('X-Forwarded-For names the client of the header; each backend connection starts with it', async (t) => {
    const c = await connect(proxy.port);
    t.teardown(() => c.destroy());
    c.write('PROXY TCP6 2001:db8::7 2001:db8::1 51000 80\r\nGET /one HTTP/1.1\r\nHost: a\r\n\r\n');
    const one = await response(c);
    t.match(one, /^GET \/one HTTP\/1.1\r\n/);
    t.match(one, /\r\nX-Forwarded-For: 2001:db8::7\r\n/i, 'the address from the header');
    c.write('GET /two HTTP/1.1\r\nHost: a\r\n\r\n');
    const two = await response(c);
    t.match(two, /\r\nX-Forwarded-For: 2001:db8::7\r\n/i, 'kept for the connection');
    t.same(be.headers, ['PROXY TCP6 2001:db8::7 2001:db8::1 51000 80\r\n', 'PROXY TCP6 2001:db8::7 2001:db8::1 51000 80\r\n'], 'a header on each backend connection: none is shared');
    t.equal(proxy.stats().reused, 0, 'no backend connection was reused');
  });

  t.test('a client without a header: closed with no answer, and no request reaches the backend', async (t) => {
    const before = be.requests.length;
    const c = await connect(proxy.port);
    let reply = '';
    c.on('data', (d) => (reply += d));
    const done = peerDone(c);
    c.write('GET /sneaky HTTP/1.1\r\nHost: a\r\n\r\n');
    await done;
    c.destroy();
    t.equal(reply, '');
    t.equal(be.requests.length, before);
    t.equal(proxy.stats().proxyRefused, 1);
  });
});
