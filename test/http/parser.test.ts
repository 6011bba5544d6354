// The llhttp binding (node's own llhttp through koffi): the layout self-test, message boundaries at any
// split, pipelining, bodies, and strict refusal of the framings that request smuggling is built from.
import t from 'tap';
import { HttpParser, PEV, parserLayout, versionOk } from '../../dist/http/parser.js';
import { PARSER_TYPE } from '../../dist/http/parser-t.js';

const REQ = PARSER_TYPE.REQUEST;
const RES = PARSER_TYPE.RESPONSE;

/** Feeds `text` in `step`-byte pieces, as reads would deliver it; returns [event, offset-in-text] pairs. */
function feed(p: HttpParser, text: string | Buffer, step = Infinity): [number, number][] {
  const data = Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1');
  const out: [number, number][] = [];
  let base = 0; // start of the bytes not yet parsed
  let avail = Math.min(step, data.length);
  for (let guard = 0; guard < 10 * data.length + 10; guard++) {
    const ev = p.execute(data.subarray(base, avail));
    base += p.consumed;
    if (ev !== PEV.NEED_MORE) out.push([ev, base]);
    if (ev & (PEV.ERROR | PEV.UPGRADE)) return out;
    if (ev === PEV.NEED_MORE || base === avail) {
      if (avail === data.length) {
        // Nothing left to read: one more empty execute lets a bodiless message complete.
        const last = p.execute(data.subarray(base, base));
        if (last !== PEV.NEED_MORE) out.push([last, base]);
        return out;
      }
      avail = Math.min(avail + step, data.length);
    }
  }
  throw new Error('parser made no progress');
}

t.test('the self-test finds the llhttp_t layout of this node', async (t) => {
  const L = parserLayout();
  t.match(L.name, /^llhttp 9/);
  t.equal(process.versions.llhttp?.split('.')[0], '9');
});

t.test('a head split at every byte ends at the same place, with the same fields', async (t) => {
  const head = 'POST /upload?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\n';
  for (const step of [1, 2, 7, head.length]) {
    const p = new HttpParser(REQ);
    const evs = feed(p, head + 'abc', step);
    t.same(evs, [
      [PEV.HEADERS, head.length],
      [PEV.MESSAGE, head.length + 3],
    ], `step ${step}`);
    t.equal(p.method, 3, 'POST');
    t.equal(p.httpMinor, 1);
  }
});

t.test('the head\'s end is found wherever its CRLFs fall, at any split, after empty lines too', async (t) => {
  // Field values of every length mod 4 put the blank line at every alignment the scan's stride can meet.
  let checked = 0;
  for (let a = 0; a < 8; a++) {
    for (let b = 0; b < 8; b++) {
      for (const lead of ['', '\r\n', '\r\n\r\n']) {
        const head = `${lead}GET /${'p'.repeat(a)} HTTP/1.1\r\nHost: h\r\nX: ${'v'.repeat(b)}\r\n\r\n`;
        for (const step of [1, 3, 4, 5, Infinity]) {
          const evs = feed(new HttpParser(REQ), head + 'GET / HTTP/1.1\r\nHost: h\r\n\r\n', step);
          if (!(evs.length === 2 && evs[0][0] === (PEV.HEADERS | PEV.MESSAGE) && evs[0][1] === head.length)) {
            t.fail(`${JSON.stringify(head)} at step ${step}: ${JSON.stringify(evs)}`);
          }
          checked++;
        }
      }
    }
  }
  t.equal(checked, 8 * 8 * 3 * 5, 'every head ended where it does, then the next one');
});

t.test('fields read from llhttp_t memory', async (t) => {
  const p = new HttpParser(REQ);
  t.same(feed(p, 'PUT /a HTTP/1.0\r\nHost: h\r\nContent-Length: 123456789012\r\nConnection: keep-alive\r\n\r\n')[0][0], PEV.HEADERS);
  t.equal(p.method, 4);
  t.equal(p.httpMajor, 1);
  t.equal(p.httpMinor, 0);
  t.equal(p.contentLength, 123456789012, 'a 64-bit Content-Length is read whole');
  t.ok(p.shouldKeepAlive(), 'HTTP/1.0 with Connection: keep-alive');
  const r = new HttpParser(RES);
  t.equal(feed(r, 'HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n')[0][0], PEV.HEADERS);
  t.equal(r.statusCode, 503);
  t.ok(r.chunked);
});

t.test('pipelined requests come out one message at a time, in order', async (t) => {
  const a = 'GET /1 HTTP/1.1\r\nHost: h\r\n\r\n';
  const b = 'POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi';
  const c = 'GET /3 HTTP/1.1\r\nHost: h\r\n\r\n';
  const p = new HttpParser(REQ);
  const evs = feed(p, a + b + c);
  const ends = evs.filter(([e]) => e & PEV.MESSAGE).map(([, at]) => at);
  t.same(ends, [a.length, a.length + b.length, a.length + b.length + c.length]);
  t.equal(evs.filter(([e]) => e & PEV.HEADERS).length, 3);
});

t.test('chunked body with extensions and trailers ends where it should', async (t) => {
  const msg = 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: yes\r\n\r\n';
  const p = new HttpParser(REQ);
  const evs = feed(p, msg + 'GET / HTTP/1.1\r\nHost: h\r\n\r\n', 3);
  t.same(evs[1], [PEV.MESSAGE, msg.length]);
});

t.test('responses: HEAD and 204/304 carry no body; no length means until close', async (t) => {
  const head = new HttpParser(RES);
  head.noBody = true;
  const h = 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n';
  t.same(feed(head, h), [[PEV.HEADERS | PEV.MESSAGE, h.length]], 'a response to HEAD ends with its head');
  for (const status of ['204 No Content', '304 Not Modified']) {
    const p = new HttpParser(RES);
    const m = `HTTP/1.1 ${status}\r\nContent-Length: 5\r\n\r\n`;
    const ends = feed(p, m).filter(([e]) => e & PEV.MESSAGE).map(([, at]) => at);
    t.same(ends, [m.length], `${status} ends with its head`);
  }
  const eof = new HttpParser(RES);
  const e = 'HTTP/1.1 200 OK\r\n\r\nbody until close';
  t.same(feed(eof, e)[0], [PEV.HEADERS, e.length - 16]);
  t.ok(eof.messageNeedsEof());
  t.equal(eof.finish(), PEV.MESSAGE, 'EOF completes it');
});

t.test('upgrade requests stop after the head (the tunnel waits for a 101)', async (t) => {
  const p = new HttpParser(REQ);
  const m = 'GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
  const evs = feed(p, m + '\x81\x05hello');
  t.ok(p.upgrade);
  const last = evs[evs.length - 1];
  t.ok(last[0] & PEV.UPGRADE);
  t.equal(last[1], m.length, 'bytes after the head are not parsed as HTTP');
});

// Each of these must be refused: they are the framings request smuggling is built from (RFC 9112 6.1, 6.3,
// 7.1; 2.2 for bare CR/LF; 5.2 for obs-fold) or are not HTTP/1.x at all.
const refused: [string, string][] = [
  ['Content-Length with Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ['two different Content-Lengths', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde'],
  ['Content-Length list', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4, 4\r\n\r\nabcd'],
  ['Content-Length not a number', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4x\r\n\r\nabcd'],
  ['negative Content-Length', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n'],
  ['Transfer-Encoding not ending in chunked', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n'],
  ['bad chunk size', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
  ['chunk size overflow', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n'],
  ['bare LF after the request line', 'GET / HTTP/1.1\nHost: h\r\n\r\n'],
  ['bare LF between headers', 'GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n'],
  ['bare CR in a header value', 'GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n'],
  ['obs-fold', 'GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n  b\r\n\r\n'],
  ['space before the colon', 'GET / HTTP/1.1\r\nHost : h\r\n\r\n'],
  ['NUL in a header value', 'GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n'],
  ['invalid token in a header name', 'GET / HTTP/1.1\r\nHost: h\r\nX(y): 1\r\n\r\n'],
  ['unknown version', 'GET / HTTP/1.7\r\nHost: h\r\n\r\n'],
  ['lowercase method', 'get / HTTP/1.1\r\nHost: h\r\n\r\n'],
  ['chunked body missing its CRLF', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX0\r\n\r\n'],
];

t.test('strict mode refuses the smuggling families with a named error', async (t) => {
  for (const [name, raw] of refused) {
    const p = new HttpParser(REQ);
    const evs = feed(p, raw);
    const last = evs[evs.length - 1];
    t.ok(last && last[0] === PEV.ERROR, `${name}: refused`);
    t.match(p.errorName(), /^HPE_/, `${name}: ${p.errorName()} (${p.errorReason()})`);
    t.notOk(evs.some(([e]) => e & PEV.MESSAGE), `${name}: no message was completed`);
  }
});

t.test('a response with both Content-Length and Transfer-Encoding is refused too', async (t) => {
  const p = new HttpParser(RES);
  const evs = feed(p, 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
  t.equal(evs[evs.length - 1][0], PEV.ERROR);
});

t.test('HTTP/0.9 and 2.0 parse, but versionOk() refuses them; 1.0 and 1.1 pass', async (t) => {
  const cases: [string, boolean][] = [
    ['GET /\r\n\r\n', false],
    ['GET / HTTP/2.0\r\nHost: h\r\n\r\n', false],
    ['GET / HTTP/1.0\r\n\r\n', true],
    ['GET / HTTP/1.1\r\nHost: h\r\n\r\n', true],
  ];
  for (const [raw, ok] of cases) {
    const p = new HttpParser(REQ);
    const evs = feed(p, raw);
    t.ok(evs[0][0] & PEV.HEADERS, `${JSON.stringify(raw)} parses`);
    t.equal(versionOk(p), ok, `${JSON.stringify(raw)}: HTTP/${p.httpMajor}.${p.httpMinor}`);
  }
});

t.test('shouldKeepAlive() and messageNeedsEof(), read from memory, agree with llhttp\'s own functions', async (t) => {
  let compared = 0;
  for (const version of ['1.0', '1.1']) {
    for (const conn of ['', 'Connection: close\r\n', 'Connection: keep-alive\r\n', 'Connection: Upgrade, close\r\n']) {
      for (const framing of ['', 'Content-Length: 3\r\n', 'Transfer-Encoding: chunked\r\n', 'Transfer-Encoding: gzip\r\n', 'Transfer-Encoding: gzip, chunked\r\n']) {
        for (const status of ['100 Continue', '200 OK', '204 No Content', '304 Not Modified', '404 Not Found']) {
          for (const noBody of [false, true]) {
            const p = new HttpParser(RES);
            p.noBody = noBody;
            const m = `HTTP/${version} ${status}\r\n${conn}${framing}\r\n`;
            const ev = p.execute(Buffer.from(m, 'latin1'));
            if (ev & PEV.ERROR) continue; // a combination strict llhttp refuses (e.g. 1.0 with chunked)
            const what = JSON.stringify({ m, noBody });
            t.equal(p.shouldKeepAlive(), p.llhttpShouldKeepAlive(), `keep-alive: ${what}`);
            t.equal(p.messageNeedsEof(), p.llhttpMessageNeedsEof(), `needs EOF: ${what}`);
            compared++;
          }
        }
      }
    }
    for (const conn of ['', 'Connection: close\r\n', 'Connection: keep-alive\r\n']) {
      for (const framing of ['', 'Content-Length: 3\r\n', 'Transfer-Encoding: chunked\r\n']) {
        const p = new HttpParser(REQ);
        const m = `POST / HTTP/${version}\r\nHost: h\r\n${conn}${framing}\r\n`;
        if (p.execute(Buffer.from(m, 'latin1')) & PEV.ERROR) continue;
        t.equal(p.shouldKeepAlive(), p.llhttpShouldKeepAlive(), `request keep-alive: ${JSON.stringify(m)}`);
        t.equal(p.messageNeedsEof(), p.llhttpMessageNeedsEof(), `request needs EOF: ${JSON.stringify(m)}`);
        compared++;
      }
    }
  }
  t.ok(compared > 150, `${compared} messages compared`);
});
