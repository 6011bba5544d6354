// Parse cost per typical request head: ffi-proxy's llhttp binding (src/http/parser.ts: llhttp in the node
// binary through koffi, two callbacks per message, fields read from llhttp_t memory) beside Node's own
// HTTP parser (the C++ binding over the same llhttp that http.Server uses, from node's _http_common).
//
//   npm run build && node scripts/parser-bench.mjs [--rounds 5] [--n 200000]
//
// Both parse the same 12-header browser-style head, reusing one parser. Node's builds the header list as
// JS strings and calls back once per message; ours stops at the head's end and reads method, version,
// Content-Length and flags from memory, leaving header values as bytes. Prints ns per head, best of rounds.

import { createRequire } from 'node:module';
import { HttpParser, PEV } from '../dist/http/parser.js';

const require = createRequire(import.meta.url);
const { HTTPParser } = require('_http_common');

const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const ROUNDS = arg('rounds', 5);
const N = arg('n', 200_000);

const head = Buffer.from(
  'GET /products/42/reviews?page=2&sort=new HTTP/1.1\r\n' +
    'Host: shop.example.com\r\n' +
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n' +
    'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n' +
    'Accept-Language: en-US,en;q=0.5\r\n' +
    'Accept-Encoding: gzip, deflate, br\r\n' +
    'Referer: https://shop.example.com/products/42\r\n' +
    'Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n' +
    'Connection: keep-alive\r\n' +
    'Upgrade-Insecure-Requests: 1\r\n' +
    'Sec-Fetch-Dest: document\r\n' +
    'Sec-Fetch-Mode: navigate\r\n' +
    'Priority: u=0, i\r\n\r\n',
);

function ours() {
  const p = new HttpParser(1);
  let messages = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    let ev = p.execute(head);
    if (ev & PEV.HEADERS && !(ev & PEV.MESSAGE)) ev = p.execute(head.subarray(p.consumed));
    if (ev & PEV.MESSAGE) messages++;
  }
  const ns = Number(process.hrtime.bigint() - t0) / N;
  if (messages !== N) throw new Error(`ours: ${messages} of ${N} messages`);
  return ns;
}

function node() {
  const p = new HTTPParser();
  let messages = 0;
  p[HTTPParser.kOnHeadersComplete] = () => 0;
  p[HTTPParser.kOnMessageComplete] = () => {
    messages++;
  };
  p.initialize(HTTPParser.REQUEST, {}, 0, 0);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const r = p.execute(head);
    if (r instanceof Error) throw r;
  }
  const ns = Number(process.hrtime.bigint() - t0) / N;
  if (messages !== N) throw new Error(`node: ${messages} of ${N} messages`);
  return ns;
}

const best = { ours: Infinity, node: Infinity };
for (let r = 0; r < ROUNDS; r++) {
  best.ours = Math.min(best.ours, ours());
  best.node = Math.min(best.node, node());
}
console.log(`request head: ${head.length} bytes, 12 headers; best of ${ROUNDS} rounds x ${N} heads`);
console.log(`ffi-proxy llhttp binding: ${best.ours.toFixed(0)} ns/head`);
console.log(`node's HTTPParser:        ${best.node.toFixed(0)} ns/head`);
console.log(`ratio (ours / node's):    ${(best.ours / best.node).toFixed(2)}`);
