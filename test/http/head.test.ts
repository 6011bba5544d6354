// Request heads as the proxy will forward them: fields found in llhttp-checked bytes (the Host rules are in
// target.test.ts), hop-by-hop removal (RFC 9110 7.6.1) and X-Forwarded-* that a client cannot forge.
import t, { type Test } from 'tap';
import { copyBytes, HEAD_ERR, HeadInfo, MAX_FIELDS, primeCopy, scanHead, writeHead } from '../../dist/http/head.js';
import { HttpParser, PEV } from '../../dist/http/parser.js';
import { PARSER_TYPE } from '../../dist/http/parser-t.js';

/** Parses `text` as llhttp will see it on the wire and returns the head bytes and the parser. */
function head(text: string, type: number = PARSER_TYPE.REQUEST): { buf: Buffer; p: HttpParser } {
  const buf = Buffer.from(text, 'latin1');
  const p = new HttpParser(type);
  const ev = p.execute(buf);
  if (!(ev & PEV.HEADERS)) throw new Error(`llhttp did not accept the head: ${p.errorName()}`);
  return { buf: buf.subarray(0, p.consumed), p };
}

function fields(buf: Buffer, info: HeadInfo): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < info.count; i++) {
    const [ns, ne, vs, ve] = info.spans.subarray(i * 4, i * 4 + 4);
    out.push([buf.toString('latin1', ns, ne), buf.toString('latin1', vs, ve)]);
  }
  return out;
}

const opts = { forwarded: { clientAddress: '192.0.2.7', proto: 'http' }, upgrading: false, connection: null };

function rewrite(t: Test, text: string, o: Parameters<typeof writeHead>[4] = opts, type: number = PARSER_TYPE.REQUEST): string {
  const { buf } = head(text, type);
  const info = new HeadInfo();
  t.equal(scanHead(buf, 0, buf.length, info), HEAD_ERR.NONE);
  const out = Buffer.alloc(8192);
  const n = writeHead(buf, 0, info, out, o);
  const result = out.toString('latin1', 0, n);
  // What we send must itself be a head llhttp accepts, ending where it should.
  const check = new HttpParser(type);
  const ev = check.execute(out.subarray(0, n));
  t.ok(ev & PEV.HEADERS, 'the rewritten head parses');
  t.equal(check.consumed, n);
  return result;
}

t.test('field spans, with optional whitespace trimmed', async (t) => {
  const { buf } = head('GET /a HTTP/1.1\r\nHost: example.com\r\nX-Pad:   spaced value \t\r\nEmpty:\r\n\r\n');
  const info = new HeadInfo();
  t.equal(scanHead(buf, 0, buf.length, info), HEAD_ERR.NONE);
  t.same(fields(buf, info), [
    ['Host', 'example.com'],
    ['X-Pad', 'spaced value'],
    ['Empty', ''],
  ]);
  t.equal(buf.toString('latin1', 0, info.startLineEnd), 'GET /a HTTP/1.1');
});

t.test('Connection tokens are recognised in any case and spacing: its options are not field names', async (t) => {
  const text = 'POST / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive , X-Secret,UPGRADE\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n';
  const { buf } = head(text);
  const info = new HeadInfo();
  scanHead(buf, 0, buf.length, info);
  t.same(info.connectionNamed, ['x-secret'], 'keep-alive and upgrade are options, X-Secret a name');
  // So an upgrade keeps its Upgrade field although Connection lists UPGRADE, and Expect passes as it came.
  const out = rewrite(t, text.replace('Content-Length: 1', 'Upgrade: h2c\r\nContent-Length: 1'), { ...opts, upgrading: true });
  t.match(out, /\r\nUpgrade: h2c\r\n/);
  t.match(out, /\r\nExpect: 100-Continue\r\n/);
  t.notMatch(out, /x-secret/i);
});

t.test('hop-by-hop fields and the fields Connection names are not forwarded', async (t) => {
  const out = rewrite(
    t,
    'GET /p?q=1 HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\n' +
      'Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Secret: 1\r\n' +
      'Accept: */*\r\nCookie: a=b\r\n\r\n',
  );
  t.equal(
    out,
    'GET /p?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nCookie: a=b\r\n' +
      'X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\n\r\n',
  );
});

t.test('X-Forwarded-For is appended to; Proto and Host cannot be forged by the client', async (t) => {
  const out = rewrite(
    t,
    'GET / HTTP/1.1\r\nHost: real.example\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n' +
      'x-forwarded-for: 10.0.0.2, 10.0.0.3\r\nX-Forwarded-Host: forged.example\r\n\r\n',
  );
  t.match(out, /\r\nX-Forwarded-For: 10\.0\.0\.1, 10\.0\.0\.2, 10\.0\.0\.3, 192\.0\.2\.7\r\n/);
  t.match(out, /\r\nX-Forwarded-Proto: http\r\n/);
  t.notMatch(out, /https|forged/);
  t.match(out, /\r\nX-Forwarded-Host: real\.example\r\n/);
  t.equal(out.match(/x-forwarded-for/gi)?.length, 1, 'one X-Forwarded-For line');
});

t.test('with forwarded headers off, the client\'s X-Forwarded-* pass untouched and none are added', async (t) => {
  const out = rewrite(t, 'GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n', { ...opts, forwarded: null });
  t.equal(out, 'GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n');
});

t.test('an upgrade keeps Upgrade and says Connection: upgrade', async (t) => {
  const out = rewrite(t, 'GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n', {
    ...opts,
    upgrading: true,
  });
  t.match(out, /\r\nUpgrade: websocket\r\n/);
  t.match(out, /\r\nConnection: upgrade\r\n/);
  t.equal(out.match(/connection:/gi)?.length, 1);
});

t.test(`more than ${MAX_FIELDS} field lines: TOO_MANY_FIELDS (431)`, async (t) => {
  let text = 'GET / HTTP/1.1\r\nHost: h\r\n';
  for (let i = 0; i < MAX_FIELDS; i++) text += `X-${i}: v\r\n`;
  const { buf } = head(text + '\r\n');
  t.equal(scanHead(buf, 0, buf.length, new HeadInfo()), HEAD_ERR.TOO_MANY_FIELDS);
});

t.test('an output buffer too small for the head gives -1, never a truncated head', async (t) => {
  const { buf } = head('GET / HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n');
  const info = new HeadInfo();
  scanHead(buf, 0, buf.length, info);
  for (const size of [0, 10, 40, 60]) {
    t.equal(writeHead(buf, 0, info, Buffer.alloc(size), opts), -1, `${size} bytes`);
  }
});

t.test('responses: hop-by-hop fields dropped on the way back, the proxy\'s own Connection line added', async (t) => {
  const res =
    'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Internal\r\nKeep-Alive: timeout=5\r\n' +
    'X-Internal: secret\r\nServer: backend\r\n\r\n';
  const plain = rewrite(t, res, { forwarded: null, upgrading: false, connection: null }, PARSER_TYPE.RESPONSE);
  t.equal(plain, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: backend\r\n\r\n');
  const closing = rewrite(t, res, { forwarded: null, upgrading: false, connection: 'close' }, PARSER_TYPE.RESPONSE);
  t.equal(closing, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: backend\r\nConnection: close\r\n\r\n');
  const ka = rewrite(t, res, { forwarded: null, upgrading: false, connection: 'keep-alive' }, PARSER_TYPE.RESPONSE);
  t.match(ka, /\r\nConnection: keep-alive\r\n\r\n$/, 'an HTTP/1.0 client kept alive is told so');
  t.notMatch(ka, /X-Forwarded/, 'responses get no X-Forwarded-*');
});

t.test('a 101 answering an upgrade keeps Upgrade', async (t) => {
  const out = rewrite(
    t,
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n',
    { forwarded: null, upgrading: true, connection: 'close' },
    PARSER_TYPE.RESPONSE,
  );
  t.equal(out, 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\nConnection: upgrade\r\n\r\n');
});

t.test('copyBytes copies the same bytes by each of its paths: short, within one slab, across buffers', async (t) => {
  const slab = new ArrayBuffer(1 << 16);
  const whole = new Uint8Array(slab);
  const src = Buffer.from(slab, 0, 4096);
  const sameSlab = Buffer.from(slab, 8192, 4096);
  const elsewhere = Buffer.alloc(4096);
  for (let i = 0; i < src.length; i++) src[i] = (i * 7 + 3) & 0xff;
  const check = (out: Buffer, s: number, n: number, at: number, what: string) => {
    t.ok(out.subarray(at, at + n).equals(src.subarray(s, s + n)), what);
    t.equal(out[at - 1], 0, `${what}: nothing before`);
    t.equal(out[at + n], 0, `${what}: nothing after`);
  };
  for (const len of [0, 1, 8, 9, 16, 17, 300, 4000]) {
    // Alternating the two outputs makes every copy a new pair for copyBytes' cache.
    for (const out of [sameSlab, elsewhere, sameSlab, elsewhere]) {
      out.fill(0);
      copyBytes(src, 50, 50 + len, out, 20);
      check(out, 50, len, 20, `${len} bytes ${out === sameSlab ? 'within the slab' : 'across'}`);
    }
  }
  // The same pair twice in a row (the cache hit), then told by the caller (primeCopy), rightly each way.
  sameSlab.fill(0);
  copyBytes(src, 100, 400, sameSlab, 10);
  copyBytes(src, 500, 700, sameSlab, 400);
  check(sameSlab, 500, 200, 400, 'a second copy of the same pair');
  primeCopy(src, src.byteOffset, sameSlab, sameSlab.byteOffset, whole);
  sameSlab.fill(0);
  copyBytes(src, 60, 160, sameSlab, 30);
  check(sameSlab, 60, 100, 30, 'primed: one slab');
  // After a primed view, an unprimed pair in another ArrayBuffer gets a view of its own buffer.
  const other = new ArrayBuffer(1 << 14);
  const otherSrc = Buffer.from(other, 0, 4096);
  const otherOut = Buffer.from(other, 8192, 4096);
  otherSrc.set(src);
  copyBytes(otherSrc, 70, 170, otherOut, 40);
  check(otherOut, 70, 100, 40, 'unprimed, after a primed slab: its own buffer');
  primeCopy(src, 0, elsewhere, 0, null);
  elsewhere.fill(0);
  copyBytes(src, 60, 160, elsewhere, 30);
  check(elsewhere, 60, 100, 30, 'primed: two buffers');
  // A whole array (the proxy's own lines) is set as it is.
  const line = Buffer.from('X-Forwarded-Proto: http\r\n');
  elsewhere.fill(0);
  copyBytes(line, 0, line.length, elsewhere, 5);
  t.equal(elsewhere.toString('latin1', 5, 5 + line.length), line.toString('latin1'), 'a whole array');
  t.equal(elsewhere[4], 0);
  t.equal(elsewhere[5 + line.length], 0);
  t.equal(src[50], (50 * 7 + 3) & 0xff, 'the source is untouched');
});

t.test('X-Forwarded lines follow the client and proto of each request (their bytes are kept between calls)', async (t) => {
  const text = 'GET / HTTP/1.1\r\nHost: h.example\r\n\r\n';
  for (const [client, proto] of [['192.0.2.7', 'http'], ['2001:db8::1', 'http'], ['192.0.2.7', 'https'], ['192.0.2.7', 'http']]) {
    const out = rewrite(t, text, { forwarded: { clientAddress: client, proto }, upgrading: false, connection: null });
    t.match(out, `\r\nX-Forwarded-For: ${client}\r\nX-Forwarded-Proto: ${proto}\r\nX-Forwarded-Host: h.example\r\n\r\n`);
  }
  const noHost = rewrite(t, 'GET / HTTP/1.0\r\n\r\n', opts);
  t.equal(noHost, 'GET / HTTP/1.0\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n\r\n', 'no Host: no X-Forwarded-Host');
});
