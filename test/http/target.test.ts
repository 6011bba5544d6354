// The request-target and Host rules (src/http/target.ts) on heads llhttp has accepted: which Host values are
// `uri-host [":" port]`, which target forms go with which method, and when an absolute-form target and Host
// agree. The same rules over real sockets: test/http/cases/host.md and target.md.
import t from 'tap';
import { HEAD_ERR, HeadInfo, scanHead, writeHead } from '../../dist/http/head.js';
import { HttpParser, PEV } from '../../dist/http/parser.js';
import { PARSER_TYPE } from '../../dist/http/parser-t.js';
import { hostEnd, requestHeadError } from '../../dist/http/target.js';

/** requestHeadError for `text` as llhttp parses it, with the HeadInfo it filled. */
function check(text: string): { err: number; info: HeadInfo; buf: Buffer } {
  const buf = Buffer.from(text, 'latin1');
  const p = new HttpParser(PARSER_TYPE.REQUEST);
  if (!(p.execute(buf) & PEV.HEADERS)) throw new Error(`llhttp did not accept ${JSON.stringify(text)}: ${p.errorName()}`);
  const info = new HeadInfo();
  t.equal(scanHead(buf, 0, p.consumed, info), HEAD_ERR.NONE);
  return { err: requestHeadError(buf, 0, info, p.method, p.httpMinor), info, buf };
}

const end = (v: string) => hostEnd(Buffer.from(v, 'latin1'), 0, v.length);

t.test('Host values that are uri-host [":" port]', async (t) => {
  const valid: [string, number][] = [
    ['', 0], // empty: a target without an authority (the request checks an empty host with a port)
    ['example.com', 11],
    ['Example.COM', 11],
    ['a-b.c_d~e', 9],
    ['xn--bcher-kva.example', 21],
    ['example.com.', 12],
    ['example.com:8080', 11],
    ['example.com:', 11], // port = *DIGIT: empty is a port
    ['example.com:065535', 11],
    ['192.0.2.1', 9],
    ['192.0.2.1:80', 9],
    ['[::1]', 5],
    ['[::1]:8080', 5],
    ['[::]', 4],
    ['[2001:DB8::1]', 13],
    ['[2001:db8:0:0:1:0:0:1]', 22],
    ['[1::]', 5],
    ['[::ffff:192.0.2.1]:443', 18],
    ['[v1.fe80::a+en1]', 16],
    ['ex%61mple.com', 13],
    ["a!$&'()*+;=", 11],
  ];
  for (const [v, e] of valid) t.equal(end(v), e, JSON.stringify(v));
});

t.test('Host values that are not', async (t) => {
  const invalid = [
    'a.com,b.com', // a list of hosts
    'a.com, b.com',
    'a b',
    'a/b',
    'a.com/path',
    'a.com?q',
    'a.com#f',
    'user@a.com',
    'user:pw@a.com',
    'a.com:http',
    'a.com:80x',
    'a.com:80:80',
    'a.com:65536',
    'a.com:99999999999',
    'a..com',
    'a\\b',
    'a%4',
    'a%zz',
    '[::1',
    '::1',
    '[::1]x',
  ];
  const literals = ['[1:2:3:4:5:6:7:8:9]', '[1:2:3:4:5:6:7]', '[1::2::3]', '[:::]', '[12345::]', '[::1%25eth0]', '[g::]', '[::256.0.0.1]', '[::01.0.0.1]', '[::1.2.3]', '[v.x]', '[v1.]', 'a]', '[a.com]'];
  for (const v of [...invalid, ...literals]) t.equal(end(v), -1, JSON.stringify(v));
  t.equal(end('[::1]:'), 5, 'an empty port after a literal');
});

t.test('Host in a request: exactly one in HTTP/1.1, at most one in HTTP/1.0, and a valid one', async (t) => {
  const cases: [string, number][] = [
    ['GET / HTTP/1.1\r\nHost: a\r\n\r\n', HEAD_ERR.NONE],
    ['GET / HTTP/1.1\r\nX: y\r\n\r\n', HEAD_ERR.NO_HOST],
    ['GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n', HEAD_ERR.MANY_HOSTS],
    ['GET / HTTP/1.0\r\n\r\n', HEAD_ERR.NONE],
    ['GET / HTTP/1.0\r\nHOST: a\r\nHost: a\r\n\r\n', HEAD_ERR.MANY_HOSTS],
    ['GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n', HEAD_ERR.NONE],
    ['GET / HTTP/1.1\r\nHost:\r\n\r\n', HEAD_ERR.NONE],
    ['GET / HTTP/1.1\r\nHost: :80\r\n\r\n', HEAD_ERR.BAD_HOST],
    ['GET / HTTP/1.1\r\nHost: a,b\r\n\r\n', HEAD_ERR.BAD_HOST],
    ['GET / HTTP/1.0\r\nHost: a b\r\n\r\n', HEAD_ERR.BAD_HOST],
  ];
  for (const [text, want] of cases) t.equal(check(text).err, want, JSON.stringify(text));
});

t.test('request-target forms against the method (RFC 9112 3.2)', async (t) => {
  const H = 'Host: a.example\r\n\r\n';
  const cases: [string, number][] = [
    [`GET /p?q HTTP/1.1\r\n${H}`, HEAD_ERR.NONE],
    [`GET //p HTTP/1.1\r\n${H}`, HEAD_ERR.NONE],
    [`OPTIONS * HTTP/1.1\r\n${H}`, HEAD_ERR.NONE],
    [`GET * HTTP/1.1\r\n${H}`, HEAD_ERR.TARGET_FORM],
    [`POST * HTTP/1.1\r\n${H}`, HEAD_ERR.TARGET_FORM],
    [`GET http://a.example/p HTTP/1.1\r\n${H}`, HEAD_ERR.NONE],
    [`GET HTTPS://a.example HTTP/1.1\r\n${H}`, HEAD_ERR.NONE],
    [`GET http://a.example?q HTTP/1.1\r\n${H}`, HEAD_ERR.NONE],
    [`GET ftp://a.example/ HTTP/1.1\r\n${H}`, HEAD_ERR.BAD_TARGET],
    [`GET http:///p HTTP/1.1\r\n${H}`, HEAD_ERR.BAD_TARGET],
    [`GET http:// HTTP/1.1\r\n${H}`, HEAD_ERR.BAD_TARGET],
    [`GET http://u@a.example/ HTTP/1.1\r\n${H}`, HEAD_ERR.BAD_TARGET],
    [`GET http://a.example:x/ HTTP/1.1\r\n${H}`, HEAD_ERR.BAD_TARGET],
    [`GET http://a,b/ HTTP/1.1\r\n${H}`, HEAD_ERR.BAD_TARGET],
    [`GET /p#f HTTP/1.1\r\n${H}`, HEAD_ERR.BAD_TARGET],
    [`CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n`, HEAD_ERR.NONE],
    [`CONNECT [::1]:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n`, HEAD_ERR.NONE],
    [`CONNECT a.example HTTP/1.1\r\n${H}`, HEAD_ERR.TARGET_FORM],
    [`CONNECT a.example: HTTP/1.1\r\n${H}`, HEAD_ERR.TARGET_FORM],
    [`CONNECT :443 HTTP/1.1\r\n${H}`, HEAD_ERR.TARGET_FORM],
    [`CONNECT /p HTTP/1.1\r\n${H}`, HEAD_ERR.TARGET_FORM],
    [`CONNECT http://a.example/ HTTP/1.1\r\n${H}`, HEAD_ERR.TARGET_FORM],
  ];
  for (const [text, want] of cases) t.equal(check(text).err, want, JSON.stringify(text));
});

t.test('an absolute-form target and Host must name the same host and port', async (t) => {
  const cases: [string, string, number][] = [
    ['http://a.example/', 'a.example', HEAD_ERR.NONE],
    ['http://A.Example/', 'a.EXAMPLE', HEAD_ERR.NONE],
    ['http://a.example:80/', 'a.example', HEAD_ERR.NONE], // the scheme's default port
    ['http://a.example/', 'a.example:80', HEAD_ERR.NONE],
    ['http://a.example:/', 'a.example:80', HEAD_ERR.NONE],
    ['https://a.example/', 'a.example:443', HEAD_ERR.NONE],
    ['http://[::1]:8080/', '[::1]:8080', HEAD_ERR.NONE],
    ['http://a.example/', 'b.example', HEAD_ERR.HOST_MISMATCH],
    ['http://a.example/', 'a.example.evil', HEAD_ERR.HOST_MISMATCH],
    ['http://a.example:8080/', 'a.example', HEAD_ERR.HOST_MISMATCH],
    ['https://a.example/', 'a.example:80', HEAD_ERR.HOST_MISMATCH],
    ['http://a.example/', '', HEAD_ERR.HOST_MISMATCH],
    ['http://a.example/', 'a.example, b.example', HEAD_ERR.BAD_HOST],
  ];
  for (const [target, host, want] of cases) {
    t.equal(check(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\n\r\n`).err, want, `${target} with Host: ${host}`);
  }
});

t.test('spans for routing: the path, and the host the request is routed by and named with', async (t) => {
  let r = check('GET http://a.example:8080/p?q HTTP/1.1\r\nHost: a.example:8080\r\n\r\n');
  t.equal(r.buf.toString('latin1', r.info.pathStart, r.info.targetEnd), '/p?q');
  t.equal(r.buf.toString('latin1', r.info.hostStart, r.info.hostEnd), 'a.example:8080', 'Host');
  r = check('OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n');
  t.equal(r.info.pathStart, -1, 'no path in *');
  r = check('GET http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n');
  t.equal(r.info.pathStart, -1, 'no path in an absolute-form target without one');
  // HTTP/1.0 may come without Host: the authority is the request's host, and X-Forwarded-Host names it.
  r = check('GET http://b.example:81/x HTTP/1.0\r\n\r\n');
  t.equal(r.err, HEAD_ERR.NONE);
  t.equal(r.buf.toString('latin1', r.info.hostStart, r.info.hostEnd), 'b.example:81', 'the authority');
  const out = Buffer.alloc(1024);
  const n = writeHead(r.buf, 0, r.info, out, { forwarded: { clientAddress: '192.0.2.7', proto: 'http' }, upgrading: false, connection: null });
  t.match(out.toString('latin1', 0, n), /\r\nX-Forwarded-Host: b\.example:81\r\n\r\n$/);
  r = check('GET /x HTTP/1.0\r\n\r\n');
  t.equal(r.info.hostStart, -1, 'origin-form without Host: no host');
});
