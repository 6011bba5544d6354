// The HTTP/1 proxy's client side: a client connection carries a sequence of requests; each request head is
// parsed (llhttp, strict), checked, rewritten into the client's outbox and sent with its body to a backend
// connection (exchange.ts: takeBackend); the response comes back through server.ts.
//
//   H_HEAD --valid head, backend found--> H_BODY --request complete--> H_WAIT
//     ^                                                                 │ response complete,
//     └────────────── keep-alive: next request (pipelined bytes first) ─┘ flushed to the client
//   any state --error before a response byte--> generated 4xx/5xx, FIN --> H_LINGER --> closed
//   H_WAIT --101 to an upgrade--> a tunnel (src/tunnel.ts)
//
// Bytes: the client's inbox holds what was read and not yet parsed or forwarded; a request's head is
// rewritten from it into the client's outbox; body bytes are parsed and copied across up to the message
// boundary, so bytes of the next (pipelined) request never reach the backend before their turn.

import { CTR, FE, feBase } from '../core/counters.js';
import { TERM } from '../core/term.js';
import { type ConnTable, LINE_BYTES } from '../core/table.js';
import { FL, PROTO, ST, XPRT } from '../core/types.js';
import {
  consumeInbox,
  discard,
  dropOutbox,
  endPair,
  flush,
  inbox,
  noteEvents,
  outEmpty,
  readInbox,
  roomOut,
  takeOutbox,
  unblocked,
} from '../transport/index.js';
import { matchRoute } from '../route/index.js';
import { E, peerAddress, sockError } from '../sys/index.js';
import {
  answerFault,
  appendOut,
  fail,
  maybeRaw,
  primePoolCopy,
  rawStep,
  requestDone,
  resetClient,
  takeBackend,
} from './exchange.js';
import { REQ, errorStatus, requestFault, requestFaults } from '../toxic/index.js';
import { WHY } from './explain.js';
import { copyBytes, HEAD_ERR, scanHead, writeHead } from './head.js';
import { HttpParser, PEV, versionOk } from './parser.js';
import { HF, METHOD, PARSER_TYPE } from './parser-t.js';
import { H, type H1Context, TURNS } from './state.js';
import { requestHeadError } from './target.js';

/** Idempotent methods (RFC 9110 9.2.2) that may be replayed on a new connection: DELETE, GET, HEAD, PUT,
 * OPTIONS, TRACE, by llhttp_method_t value. */
const IDEMPOTENT = new Set([0, 1, 2, 4, 6, 7]);

/** The log words for each HEAD_ERR requestHeadError() returns, by its value (all answered 400). */
const HEAD_WHY = [WHY.NONE, WHY.TOO_MANY_FIELDS, WHY.NO_HOST, WHY.MANY_HOSTS, WHY.BAD_HOST, WHY.BAD_TARGET, WHY.TARGET_FORM, WHY.HOST_MISMATCH];

/** Client c of an HTTP frontend, just accepted: its first request's head has the header timeout. */
export function open(ctx: H1Context, c: number): void {
  start(ctx, c);
  // HAProxy's `timeout http-request`; not moved by each byte, so a trickled head still gets 408.
  ctx.timers.arm(c, ctx.now + ctx.frontends[ctx.t.fe[c]].headerTimeoutMs);
}

/**
 * Client c's PROXY header came whole (`got` bytes of its inbox): its request follows. The header deadline
 * armed at accept goes on as the first head's.
 */
export function afterHandshake(ctx: H1Context, c: number, got: number): void {
  start(ctx, c);
  // X-Forwarded-For names the client the balancer saw (a LOCAL header: the socket's peer).
  ctx.h1.peerText[c] = ctx.pp.client[c]?.srcAddr ?? null;
  consumeInbox(ctx, c, got);
  progress(ctx, c);
}

function start(ctx: H1Context, c: number): void {
  const t = ctx.t;
  t.proto[c] = PROTO.H1_CLIENT;
  t.state[c] = ST.H_HEAD;
  ctx.h1.hf[c] = 0;
  ctx.h1.peerText[c] = null;
}

export function onEvent(ctx: H1Context, c: number, events: number): void {
  const t = ctx.t;
  noteEvents(t, c, events);
  const gen = t.gen[c];
  if (unblocked(t, c, events)) {
    const b = t.peer[c];
    if (b >= 0) ctx.resume(b); // its outbox was waiting for this client
    else if (t.state[c] === ST.H_LINGER) return;
    if (t.gen[c] !== gen) return;
  }
  if (t.flags[c] & FL.READABLE || t.ilen[c] > 0) progress(ctx, c);
}

/**
 * A deadline passed: 408 for a head too slow or a body stalled (504 if the backend took none of it), a
 * quiet close for a client that sent nothing, a close for a lingering one.
 */
export function onTimer(ctx: H1Context, c: number): void {
  const t = ctx.t;
  switch (t.state[c]) {
    case ST.H_LINGER:
      endPair(ctx, c, TERM.DONE, false);
      return;
    case ST.H_HEAD:
      // Nothing sent (a new connection, or a kept-alive one gone idle): close quietly, as HAProxy's
      // http-ignore-probes and nginx's keepalive_timeout do; a partial head: 408.
      if (t.ilen[c] === 0) endPair(ctx, c, TERM.CLIENT_IDLE, false);
      else fail(ctx, c, TERM.CLIENT_TIMEOUT, WHY.HEAD_LATE);
      return;
    case ST.H_BODY:
      // Nothing of the body for idle-timeout (nginx's client_body_timeout, HAProxy's timeout client), or
      // the backend took none of it that long (the outbox is still full).
      if (outEmpty(ctx, c)) fail(ctx, c, TERM.CLIENT_TIMEOUT, WHY.BODY_IDLE);
      else fail(ctx, c, TERM.BACKEND_TIMEOUT, WHY.BODY_NOT_TAKEN);
      return;
  }
}

/** Runs client c as far as it can go: the ready queue's turn, and every event's. */
export function progress(ctx: H1Context, c: number): void {
  const t = ctx.t;
  const gen = t.gen[c];
  for (let turns = 0; t.gen[c] === gen; turns++) {
    if (turns === TURNS) {
      ctx.enqueue(c);
      return;
    }
    let more: boolean;
    switch (t.state[c]) {
      case ST.H_HEAD:
        more = headStep(ctx, c, gen);
        break;
      case ST.H_BODY:
        more = bodyStep(ctx, c);
        break;
      case ST.H_WAIT:
        waitStep(ctx, c);
        return;
      case ST.H_LINGER:
        // Read and drop until the client closes, so that our response is not destroyed by a RST that
        // closing with unread input would send.
        if (discard(ctx, c) !== -E.EAGAIN) endPair(ctx, c, TERM.DONE, false);
        return;
      default:
        return;
    }
    if (!more) return;
  }
}

/** H_HEAD: parse what is in the inbox, else read. True to go on (the state may have changed). */
function headStep(ctx: H1Context, c: number, gen: number): boolean {
  const t = ctx.t;
  if (t.ilen[c] > 0 && ctx.faults.plan(t.fe[c]).http && !requestMayGo(ctx, c)) return false;
  if (t.ilen[c] > 0 && parseHead(ctx, c)) return true;
  if (t.gen[c] !== gen || t.state[c] !== ST.H_HEAD) return true;
  if (!(t.flags[c] & FL.READABLE)) return false;
  const before = t.ilen[c];
  const n = readInbox(ctx, c);
  if (n > 0) {
    // The first byte of a head: its deadline replaces the idle one (the first request's was armed at
    // accept and keeps running: it is not reset by each byte, so a trickled head still gets 408).
    if (before === 0 && ctx.h1.hf[c] & H.KEPT) {
      ctx.h1.hf[c] &= ~H.KEPT;
      ctx.timers.arm(c, ctx.now + ctx.frontends[t.fe[c]].headerTimeoutMs);
    }
    return true;
  }
  if (n === -E.EAGAIN) return false;
  if (n === -E.ENOBUFS) return fail(ctx, c, TERM.HEAD_TOO_LARGE, WHY.HEAD_OVER_BUFFER);
  // EOF or an error between requests is a normal end; inside a head, the client gave up.
  endPair(ctx, c, t.ilen[c] > 0 ? TERM.CLIENT_ABORT : n < 0 ? TERM.CLIENT_RESET : TERM.DONE, false);
  return false;
}

/**
 * HTTP faults (src/toxic/http.ts) on client c's next request, once its request line is in: false when it
 * waits (http_request_delay; its head deadline moved past the wait) or was dropped (http_request_drop).
 */
function requestMayGo(ctx: H1Context, c: number): boolean {
  const r = requestFault(ctx, c, inbox(ctx, c), ctx.t.ilen[c]);
  if (r === REQ.GO) return true;
  if (r === REQ.DROP) endPair(ctx, c, TERM.TOXIC, false);
  else ctx.timers.arm(c, Math.ceil(ctx.faults.reqAt[c]) + ctx.frontends[ctx.t.fe[c]].headerTimeoutMs);
  return false;
}

/** H_BODY: move the body on, parsed, into the outbox and to the backend. True to go on. */
function bodyStep(ctx: H1Context, c: number): boolean {
  const t = ctx.t;
  const h = ctx.h1;
  const b = t.peer[c];
  // Parse what body bytes are here into the outbox first (behind the head, if it has not left yet): a body
  // that is malformed in the bytes that came with its head is refused before the backend sees anything of
  // the request.
  if (t.ilen[c] > 0 && forwardBody(ctx, c)) return true;
  if (t.state[c] !== ST.H_BODY) return true;
  if (!outEmpty(ctx, c)) {
    if (b < 0 || t.state[b] !== ST.PROXYING || t.flags[b] & FL.W_BLOCKED) return false;
    const f = flush(ctx, c, b);
    if (f < 0) return fail(ctx, c, TERM.BACKEND_RESET, WHY.WRITE_BACKEND, f);
    return f > 0; // room again: move inbox bytes before reading more
  }
  if (!(t.flags[c] & FL.READABLE)) return false;
  const idle = ctx.frontends[t.fe[c]].idleTimeoutMs;
  if (h.hf[c] & H.RAW) {
    // The rest of a large Content-Length body, by count, client -> pipe -> backend (maybeRaw).
    const r = rawStep(ctx, c);
    if (r > 0) {
      h.sent[c] += r;
      if (!(h.hf[c] & H.RAW)) requestDone(ctx, c);
      else ctx.timers.arm(c, ctx.now + idle);
      return true;
    }
    if (r !== -E.EAGAIN) gaveUp(ctx, c, r);
    return false;
  }
  const n = readInbox(ctx, c);
  if (n > 0) {
    ctx.timers.arm(c, ctx.now + idle);
    return true;
  }
  // A full inbox waits for the backend (backpressure).
  if (n !== -E.EAGAIN && n !== -E.ENOBUFS) gaveUp(ctx, c, n);
  return false;
}

/** The client closed (r 0) or failed (r < 0) in the middle of its request body. */
function gaveUp(ctx: H1Context, c: number, r: number): void {
  if (r === 0) endPair(ctx, c, TERM.CLIENT_ABORT, false);
  else resetClient(ctx, c, TERM.CLIENT_RESET, WHY.READ_CLIENT, r);
}

/** H_WAIT: flush what is left of the request; pipelined bytes wait in the inbox for their turn. */
function waitStep(ctx: H1Context, c: number): void {
  const t = ctx.t;
  const b = t.peer[c];
  // A FIN while waiting is a half-close, which HTTP allows: the response still goes out (HAProxy's
  // abortonclose is off by default). A reset is not: the client is gone, and its request is abandoned.
  if (t.flags[c] & FL.PEER_DONE) {
    const err = sockError(t.fd[c]);
    if (err !== 0) {
      resetClient(ctx, c, TERM.CLIENT_RESET, WHY.READ_CLIENT, err > 0 ? -err : err);
      return;
    }
  }
  if (!outEmpty(ctx, c) && b >= 0 && t.state[b] === ST.PROXYING && !(t.flags[b] & FL.W_BLOCKED)) {
    const f = flush(ctx, c, b);
    if (f < 0) fail(ctx, c, TERM.BACKEND_RESET, WHY.WRITE_BACKEND, f);
  }
}

/** Parses the client's inbox for a head. True when it moved the state on (the caller loops). */
function parseHead(ctx: H1Context, c: number): boolean {
  const t = ctx.t;
  const h = ctx.h1;
  // A head starts here: the client's parser comes from the spares if it has none (a new or idle client).
  const p = h.parsers[c] ?? h.parser(c, PARSER_TYPE.REQUEST);
  // The parser has seen none of the inbox yet while in H_HEAD: bytes reach it once, when a head starts.
  const ev = p.execute(inbox(ctx, c), t.ilen[c], ctx.bufs.address(t.inb[c]));
  if (ev & PEV.ERROR) return fail(ctx, c, TERM.MALFORMED, WHY.BAD_REQUEST);
  if (!(ev & PEV.HEADERS)) {
    // Incomplete: the whole inbox went into the parser; keep it (the head is forwarded from it later).
    if (t.ilen[c] > ctx.frontends[t.fe[c]].maxHeaderSize) return fail(ctx, c, TERM.HEAD_TOO_LARGE, WHY.HEAD_OVER_LIMIT);
    // llhttp keeps its state: feed only new bytes next time. Reset and re-feed is simpler and safe since
    // heads are small; mark the parser as fresh again.
    p.reset();
    return false;
  }
  return startRequest(ctx, c, p, ev);
}

/** The proxy's rules beyond llhttp's, for the complete head inbox[0..headEnd). False after fail(). */
function acceptable(ctx: H1Context, c: number, p: HttpParser, headEnd: number): boolean {
  const f = ctx.frontends[ctx.t.fe[c]];
  const info = ctx.h1.info;
  if (headEnd > f.maxHeaderSize) return fail(ctx, c, TERM.HEAD_TOO_LARGE, WHY.HEAD_OVER_LIMIT);
  if (!versionOk(p)) return fail(ctx, c, TERM.MALFORMED, WHY.BAD_VERSION);
  const buf = inbox(ctx, c);
  if (scanHead(buf, 0, headEnd, info) === HEAD_ERR.TOO_MANY_FIELDS) return fail(ctx, c, TERM.HEAD_TOO_LARGE, WHY.TOO_MANY_FIELDS);
  const err = requestHeadError(buf, 0, info, p.method, p.httpMinor);
  if (err !== HEAD_ERR.NONE) return fail(ctx, c, TERM.MALFORMED, HEAD_WHY[err]);
  // A well-formed CONNECT (authority-form, checked above) is one the proxy does not do.
  if (p.method === METHOD.CONNECT) return fail(ctx, c, TERM.NOT_IMPLEMENTED, WHY.CONNECT_METHOD);
  if (info.transferEncodings > 0 && !(info.transferEncodings === 1 && info.chunkedOnly)) {
    return fail(ctx, c, TERM.NOT_IMPLEMENTED, WHY.CODING);
  }
  if (f.maxBodySize > 0 && p.flags & HF.CONTENT_LENGTH && p.contentLength > f.maxBodySize) {
    return fail(ctx, c, TERM.BODY_TOO_LARGE, WHY.LENGTH_OVER);
  }
  return true;
}

/** Keeps the request line (up to its CR) in the table's line column for the admin endpoint and the access log. */
function keepLine(t: ConnTable, c: number, head: Uint8Array, end: number): void {
  const at = c * LINE_BYTES;
  let i = 0;
  for (; i < end && head[i] !== 13; i++) if (i < LINE_BYTES) t.line[at + i] = head[i];
  t.lineLen[c] = i < 0xffff ? i : 0xffff;
}

function startRequest(ctx: H1Context, c: number, p: HttpParser, ev: number): boolean {
  const t = ctx.t;
  const h = ctx.h1;
  if (!acceptable(ctx, c, p, p.headEnd)) return false;
  ctx.timers.disarm(c);
  t.ctr[CTR.REQUESTS]++;
  t.ctr[feBase(t.fe[c]) + FE.REQUESTS]++;
  t.since[c] = ctx.hrNow;
  keepLine(t, c, inbox(ctx, c), p.headEnd);
  if (ctx.alog.on[t.fe[c]]) {
    ctx.alog.begin(t, c);
    ctx.alog.requestLine(c, inbox(ctx, c), p.headEnd);
  }
  let hf = 0;
  if (!p.shouldKeepAlive()) hf |= H.CLOSE_AFTER;
  else if (p.httpMinor === 0) hf |= H.KA10;
  if (p.upgrade) hf |= H.UPGRADING;
  if (p.method === METHOD.HEAD) hf |= H.HEAD_REQ;
  h.hf[c] = hf;
  h.sent[c] = 0;
  if (ctx.faults.plan(t.fe[c]).http) {
    const answer = requestFaults(ctx, c, inbox(ctx, c), p.headEnd);
    if (answer !== null) return answerFault(ctx, c, answer, errorStatus);
  }
  route(ctx, c);
  const n = forwardHead(ctx, c, p);
  if (n < 0) return false;
  const b = takeBackend(ctx, c, false);
  if (b < 0) return false; // fail() answered already
  if (h.hf[b] & H.POOLED && ev & PEV.MESSAGE && IDEMPOTENT.has(p.method)) keepCopy(ctx, c, n);
  if (ev & PEV.MESSAGE || ev & PEV.UPGRADE) requestDone(ctx, c);
  else {
    t.state[c] = ST.H_BODY;
    ctx.timers.arm(c, ctx.now + ctx.frontends[t.fe[c]].idleTimeoutMs); // the body's inactivity deadline
    maybeRaw(ctx, c); // a large Content-Length body with none of it read yet moves by splice
  }
  return true;
}

/**
 * Which backend c's request goes to: the first of its frontend's routes that its host and path match, else
 * the frontend's backend; and the prefix that route strips (for writeHead), if it strips one. The host is
 * the one the backend is sent (info.hostStart: Host, which an absolute-form target's authority agrees with,
 * or that authority in an HTTP/1.0 request without Host).
 */
function route(ctx: H1Context, c: number): void {
  const f = ctx.frontends[ctx.t.fe[c]];
  const h = ctx.h1;
  const o = h.requestOpts;
  h.backend[c] = f.backend;
  o.cutLen = 0;
  if (f.routes.length === 0) return;
  const info = h.info;
  const ps = info.pathStart;
  const r = matchRoute(f.routes, inbox(ctx, c), info.hostStart, info.hostEnd, ps, info.targetEnd);
  if (r === null) return;
  h.backend[c] = r.backend;
  if (r.strip > 0) {
    o.cutAt = ps;
    o.cutLen = r.strip;
  }
}

/** Writes the request head, rewritten, into c's outbox and consumes it: its length, or -1 after fail(). */
function forwardHead(ctx: H1Context, c: number, p: HttpParser): number {
  const t = ctx.t;
  const h = ctx.h1;
  if (h.peerText[c] === null) {
    const a = peerAddress(t.fd[c]);
    h.peerText[c] = a && a.family !== 'unix' ? a.host : 'unknown';
  }
  const out = takeOutbox(ctx, c);
  const o = h.requestOpts;
  o.forwarded = ctx.frontends[t.fe[c]].forwardedHeaders ? h.forwarded : null;
  if (o.forwarded !== null) {
    o.forwarded.clientAddress = h.peerText[c]!;
    o.forwarded.proto = t.xprt[c] === XPRT.TLS ? 'https' : 'http';
  }
  o.upgrading = (h.hf[c] & H.UPGRADING) !== 0;
  // Keep the backend connection alive for HTTP/1.0 requests too (HTTP/1.1 needs nothing said).
  o.connection = p.httpMinor === 0 ? 'keep-alive' : null;
  primePoolCopy(ctx, t.inb[c], t.buf[c]);
  const n = writeHead(inbox(ctx, c), 0, h.info, out, o);
  if (n < 0) {
    fail(ctx, c, TERM.HEAD_TOO_LARGE, WHY.HEAD_REWRITE);
    return -1;
  }
  t.bufLen[c] = n;
  consumeInbox(ctx, c, p.headEnd);
  return n;
}

/**
 * A pooled connection may have been closed by the backend a moment ago: keep the request (the n bytes of
 * c's outbox) to replay it once on a new connection if so (nginx's proxy_next_upstream, HAProxy's retry-on
 * conn-failure). The copy is a third buffer for c only while its backend holds none (it goes at the
 * backend's first response byte), so the pool, two buffers per slot, is never used up here (invariant 5);
 * the check is a guard, and without a copy a pooled connection found closed is answered 502.
 */
function keepCopy(ctx: H1Context, c: number, n: number): void {
  const bufs = ctx.bufs;
  const r = bufs.acquire();
  if (r < 0) return;
  primePoolCopy(ctx, ctx.t.buf[c], r);
  copyBytes(bufs.get(ctx.t.buf[c]), 0, n, bufs.get(r), 0);
  ctx.h1.retry[c] = r;
  ctx.h1.retryLen[c] = n;
}

/**
 * Parses as many inbox bytes as the outbox has room for and copies them (up to the message's end) into it.
 * True when it moved bytes or ended the request; false when the outbox is full or the request failed.
 */
function forwardBody(ctx: H1Context, c: number): boolean {
  const t = ctx.t;
  const h = ctx.h1;
  const p = h.parsers[c]!;
  const n = Math.min(roomOut(ctx, c), t.ilen[c]);
  if (n === 0) {
    if (t.bufLen[c] === 0) dropOutbox(ctx, c);
    return false;
  }
  const buf = inbox(ctx, c);
  const ev = p.execute(buf, n, ctx.bufs.address(t.inb[c]));
  if (ev & PEV.ERROR) return fail(ctx, c, TERM.MALFORMED, WHY.BAD_BODY);
  const k = p.consumed;
  h.sent[c] += k;
  const max = ctx.frontends[t.fe[c]].maxBodySize;
  if (max > 0 && h.sent[c] > max) return fail(ctx, c, TERM.BODY_TOO_LARGE, WHY.BODY_OVER);
  appendOut(ctx, c, buf, 0, k);
  consumeInbox(ctx, c, k);
  if (ev & PEV.MESSAGE) requestDone(ctx, c);
  else maybeRaw(ctx, c);
  return k > 0 || (ev & PEV.MESSAGE) !== 0;
}
