// One request and its response, between a client slot and a backend slot: what both sides of the HTTP/1
// proxy share (client.ts reads requests, server.ts reads responses; neither calls the other, and each
// resumes the other through the loop, ctx.resume()).
//
//   takeBackend ──> a pooled connection (IDLE ──> PROXYING) or a new one (the route's connect path)
//   requestDone ──> the request went whole: the client waits (H_WAIT), the backend's deadline runs
//   finishExchange ──> the response went whole: the backend back to its pool or closed (invariant 9),
//                      the client to its next request (H_HEAD) or to H_LINGER
//   upgrade ──> a 101 answered an upgrade: the pair becomes a tunnel (src/tunnel.ts)
//   fail ──> a generated 4xx/5xx and H_LINGER, or, once part of a response went out, a reset
//   replay ──> a pooled connection the backend closed before answering: the request once more, on a new one

import { CTR, FE, SV, feBase, observe, statusClass, svBase } from '../core/counters.js';
import { LEVEL } from '../core/log.js';
import { TERM, termStatus } from '../core/term.js';
import { FL, PROTO, ST } from '../core/types.js';
import { SRV, type Server, chooseServer, connectTerm, holdServer, openBackend, releaseServer, startConnect } from '../route/index.js';
import {
  SPLICE_MODE,
  dropInbox,
  dropOutbox,
  endPair,
  flush,
  outEmpty,
  readCounted,
  recordTerm,
  roomOut,
  sendFin,
  sendNow,
  takeOutbox,
} from '../transport/index.js';
import { E } from '../sys/index.js';
import { LF } from '../toxic/index.js';
import { adopt } from '../tunnel.js';
import { explain, WHY } from './explain.js';
import { copyBytes, primeCopy } from './head.js';
import { HF, PARSER_TYPE } from './parser-t.js';
import { generated, type GeneratedStatus } from './responses.js';
import { H, type H1Context } from './state.js';

// A body with at least this many bytes still to come, and a known length, moves by splice like a tunnel's
// bulk transfers (which switch to splice after one full 64 KiB buffer, for the same reason): below it, two
// splices cost more than a read and a send (docs/benchmarks.md, splice on vs off).
const RAW_MIN = 64 * 1024;

// ---- failures ---------------------------------------------------------------------------------------------

/**
 * Ends client c's exchange for `term`, with `why` (and `err`) for the log's words: by the generated response
 * termStatus(term) when none of a response has gone out yet, or by resetting the client when some has. Its
 * backend, if any, is closed: its framing is now in doubt. Returns false, for callers that return it.
 */
export function fail(ctx: H1Context, c: number, term: number, why: number, err = 0): false {
  const t = ctx.t;
  const status = termStatus(term) as GeneratedStatus;
  const cut = (ctx.h1.hf[c] & H.HEAD_OUT) !== 0;
  // The client's errors (4xx, and 501 for what it asked that the proxy does not do) are info; the backend's
  // and the proxy's own (502, 503, 504) are warn, what an operator at --log-level warn must see.
  const level = status >= 502 ? LEVEL.warn : LEVEL.info;
  if (ctx.log.admits(level, term)) {
    // After part of a response no status can follow: the line says it was cut off, not a status never sent.
    const text = explain(ctx, c, why, err);
    ctx.log.limited(level, term, cut ? `closed ${t.describe(c)}: response cut off after part of it: ${text}` : `${status}: ${text}`);
  }
  if (ctx.alog.on[t.fe[c]]) logFailed(ctx, c, term, cut ? 0 : status);
  const b = t.peer[c];
  if (b >= 0) {
    t.peer[c] = -1;
    ctx.closeSlot(b, false);
  }
  if (cut) {
    // A reset, so that the client cannot take what it got for a whole response.
    endPair(ctx, c, term, true);
    return false;
  }
  recordTerm(t, c, term);
  t.ctr[CTR.GENERATED]++;
  t.ctr[feBase(t.fe[c]) + FE.STATUS + statusClass(status)]++;
  dropOutbox(ctx, c); // whatever was queued for the backend is dropped; the response goes straight out
  const r = generated(status);
  sendNow(ctx, c, r, r.length);
  linger(ctx, c);
  return false;
}

/**
 * http_error (src/toxic/http.ts): client c's request is answered with `answer` (status `status`, with
 * Connection: close) instead of going to a backend, counted as a generated response ended by a toxic.
 */
export function answerFault(ctx: H1Context, c: number, answer: Buffer, status: number): false {
  const t = ctx.t;
  recordTerm(t, c, TERM.TOXIC);
  t.ctr[CTR.GENERATED]++;
  t.ctr[feBase(t.fe[c]) + FE.STATUS + statusClass(status)]++;
  if (ctx.alog.on[t.fe[c]]) {
    ctx.alog.status[c] = status;
    ctx.alog.write(t, c, TERM.TOXIC, ctx.hrNow);
  }
  sendNow(ctx, c, answer, answer.length);
  linger(ctx, c);
  return false;
}

/** The access log's record of c's request, ended by `term`; `status` the response generated for it (0: none). */
function logFailed(ctx: H1Context, c: number, term: number, status: number): void {
  const a = ctx.alog;
  const t = ctx.t;
  if (!a.open[c]) {
    // Refused before it was a request (a malformed or oversized head): no line, and the record starts now.
    t.since[c] = ctx.hrNow;
    a.begin(t, c);
  }
  if (status !== 0) a.status[c] = status;
  a.write(t, c, term, ctx.hrNow);
}

/** Closes client c and its backend with a reset, for `term`: logged at `level` with the words of `why`. */
export function resetClient(ctx: H1Context, c: number, term: number, why: number, err: number, level: number = LEVEL.info): void {
  if (ctx.log.admits(level, term)) ctx.log.limited(level, term, `closed ${ctx.t.describe(c)}: ${explain(ctx, c, why, err)}`);
  endPair(ctx, c, term, true);
}

/** Sends FIN and keeps reading (and dropping) until the client closes, for at most the header timeout. */
function linger(ctx: H1Context, c: number): void {
  const t = ctx.t;
  dropInbox(ctx, c);
  ctx.h1.dropRetryCopy(c, ctx.bufs); // the request was answered: nothing is left to replay
  sendFin(ctx, c);
  t.state[c] = ST.H_LINGER;
  ctx.timers.arm(c, ctx.now + ctx.frontends[t.fe[c]].headerTimeoutMs);
  if (t.flags[c] & FL.READABLE) ctx.enqueue(c);
}

// ---- the backend connection -------------------------------------------------------------------------------

/**
 * A backend connection for client c's request, to a server of the backend its route chose (h1.backend[c]):
 * from that server's pool unless `fresh`, else a new one. -1 after fail().
 */
export function takeBackend(ctx: H1Context, c: number, fresh: boolean): number {
  const srv = chooseServer(ctx, c, ctx.backends[ctx.h1.backend[c]], -1);
  if (srv === null) {
    fail(ctx, c, TERM.NO_SERVER, WHY.NO_SERVER);
    return -1;
  }
  return connectTo(ctx, c, srv, fresh);
}

/** A connection to server srv for client c: a pooled one unless `fresh`, else a new one. -1 after fail(). */
function connectTo(ctx: H1Context, c: number, srv: Server, fresh: boolean): number {
  const t = ctx.t;
  if (!fresh) {
    const b = srv.takeIdle(t);
    if (b >= 0) {
      t.state[b] = ST.PROXYING;
      t.fe[b] = t.fe[c];
      t.peer[c] = b;
      t.peer[b] = c;
      holdServer(ctx, b);
      pair(ctx, c, b);
      countRequest(ctx, b);
      if (ctx.alog.on[t.fe[c]]) ctx.alog.tc[c] = 0; // no connect: a pooled connection
      ctx.h1.hf[b] |= H.POOLED;
      t.ctr[CTR.REUSED]++;
      return b;
    }
  }
  const b = openBackend(ctx, c, srv, PROTO.H1_SERVER);
  if (b < 0) {
    fail(ctx, c, -b, -b === TERM.TABLE_FULL ? WHY.NO_SLOT : WHY.CONNECT);
    return -1;
  }
  pair(ctx, c, b);
  ctx.timers.arm(b, ctx.now + ctx.frontends[t.fe[c]].backendTimeoutMs);
  const r = startConnect(ctx, b);
  if (r === 0) {
    t.state[b] = ST.PROXYING; // unix sockets connect at once
    countRequest(ctx, b);
    connectDeadlineOver(ctx, c, b);
  } else if (r !== -E.EINPROGRESS) {
    connectFailed(ctx, b, connectTerm(r));
    return -1;
  }
  return b;
}

/** Backend b is client c's now: its response parser, told whether a body can follow (not for HEAD). */
function pair(ctx: H1Context, c: number, b: number): void {
  const h = ctx.h1;
  const t = ctx.t;
  if (ctx.alog.on[t.fe[c]]) ctx.alog.srv[c] = t.srv[b];
  h.hf[b] = H.IN_HEAD;
  h.rawLeft[b] = 0;
  h.parser(b, PARSER_TYPE.RESPONSE).noBody = (h.hf[c] & H.HEAD_REQ) !== 0;
}

/** A request goes to backend b's server: counted once its connection is there (a failed connect sends none). */
export function countRequest(ctx: H1Context, b: number): void {
  ctx.t.ctr[svBase(ctx.t.srv[b]) + SV.REQUESTS]++;
}

/** The connect deadline is over: the response deadline runs from the request's end (already, or later). */
export function connectDeadlineOver(ctx: H1Context, c: number, b: number): void {
  if (c >= 0 && ctx.h1.hf[c] & H.REQ_DONE) ctx.timers.arm(b, ctx.now + ctx.frontends[ctx.t.fe[b]].backendTimeoutMs);
  else ctx.timers.disarm(b);
}

/**
 * Backend b's connect failed, or took too long (`term`): the request, still whole in the client's outbox,
 * goes to another server while the backend's retries last; else the client gets 502 (refused), 503
 * (unreachable) or 504 (too slow).
 */
export function connectFailed(ctx: H1Context, b: number, term: number): void {
  const t = ctx.t;
  const c = t.peer[b];
  if (c < 0) {
    ctx.closeSlot(b, false);
    return;
  }
  const srv = ctx.servers[t.srv[b]]!;
  const be = ctx.backends[ctx.h1.backend[c]];
  const next = chooseServer(ctx, c, be, srv.id);
  if (next === null) {
    fail(ctx, c, term, term === TERM.CONNECT_TIMEOUT ? WHY.CONNECT_LATE : WHY.CONNECT);
    return;
  }
  if (ctx.log.admits(LEVEL.info, 'connect-retry')) {
    ctx.log.limited(LEVEL.info, 'connect-retry', `${explain(ctx, c, term === TERM.CONNECT_TIMEOUT ? WHY.CONNECT_LATE : WHY.CONNECT, 0)}; trying ${next.name}`);
  }
  t.peer[c] = -1;
  ctx.closeSlot(b, false);
  const nb = connectTo(ctx, c, next, false);
  // A pooled connection (or one made at once) can take the request now; a new one will at its connect.
  if (nb >= 0 && t.state[nb] === ST.PROXYING) {
    connectDeadlineOver(ctx, c, nb);
    ctx.resume(c);
  }
}

// ---- the exchange -----------------------------------------------------------------------------------------

export function requestDone(ctx: H1Context, c: number): void {
  const t = ctx.t;
  ctx.h1.hf[c] |= H.REQ_DONE;
  t.state[c] = ST.H_WAIT;
  ctx.timers.disarm(c); // a body's inactivity deadline, if it had one
  const b = t.peer[c];
  if (b < 0 || t.state[b] !== ST.PROXYING) return;
  // The backend has backend-timeout to start answering (nginx's proxy_read_timeout, HAProxy's timeout
  // server). A backend still connecting keeps its connect deadline; connectDeadlineOver() starts this one.
  ctx.timers.arm(b, ctx.now + ctx.frontends[t.fe[c]].backendTimeoutMs);
  if (!outEmpty(ctx, c)) {
    const f = flush(ctx, c, b);
    if (f < 0) fail(ctx, c, TERM.BACKEND_RESET, WHY.WRITE_BACKEND, f);
  }
}

/** The response went out whole: the backend to its pool (or closed), the client to its next request. */
export function finishExchange(ctx: H1Context, c: number, b: number): void {
  const t = ctx.t;
  const h = ctx.h1;
  const srv = ctx.servers[t.srv[b]]!;
  observe(t.ctr, feBase(t.fe[c]) + FE.DURATION, (ctx.hrNow - t.since[c]) / 1000);
  if (ctx.alog.on[t.fe[c]]) ctx.alog.write(t, c, TERM.DONE, ctx.hrNow);
  // With send-proxy a connection's PROXY header names one client, so it is never shared (HAProxy marks such
  // connections private too): it closes after its response.
  const reusable =
    (h.hf[b] & H.REUSABLE) !== 0 && (h.hf[c] & H.REQ_DONE) !== 0 && srv.backend !== null && srv.backend.sendProxy === 0;
  t.peer[c] = -1;
  t.peer[b] = -1;
  releaseServer(ctx, b);
  ctx.timers.disarm(b);
  if (reusable && !ctx.draining && ctx.serverState[srv.id] === SRV.UP && srv.putIdle(t, b)) {
    t.state[b] = ST.IDLE;
    t.flags[b] &= ~(FL.READABLE | FL.W_BLOCKED);
    dropInbox(ctx, b);
  } else {
    ctx.closeSlot(b, false);
  }
  if (h.hf[c] & H.CLOSE_AFTER || ctx.draining) {
    linger(ctx, c);
    return;
  }
  const f = ctx.frontends[t.fe[c]];
  t.state[c] = ST.H_HEAD;
  if (t.ilen[c] > 0) {
    h.parsers[c]!.reset();
    h.hf[c] = 0;
    ctx.timers.arm(c, ctx.now + f.headerTimeoutMs); // a pipelined request is waiting
  } else {
    h.dropParser(c); // idle: the next head takes one again
    h.hf[c] = H.KEPT;
    ctx.timers.arm(c, ctx.now + f.idleTimeoutMs); // nginx's keepalive_timeout
  }
  if (t.ilen[c] > 0 || t.flags[c] & FL.READABLE) ctx.enqueue(c);
}

/** A 101 answered c's upgrade: the pair becomes a tunnel, with the bytes read past the heads going first. */
export function upgrade(ctx: H1Context, c: number, b: number): void {
  if (!earlyBytes(ctx, c, b) || !earlyBytes(ctx, c, c)) return;
  // The tunnel holds no HTTP state.
  ctx.h1.release(c, ctx.bufs);
  ctx.h1.release(b, ctx.bufs);
  adopt(ctx, c, b);
}

/** Moves what slot s read past its head into its outbox, behind what waits there. False when c was closed. */
function earlyBytes(ctx: H1Context, c: number, s: number): boolean {
  const t = ctx.t;
  if (t.ilen[s] === 0) return true;
  if (roomOut(ctx, s) < t.ilen[s]) {
    resetClient(ctx, c, TERM.INTERNAL, WHY.EARLY_BYTES, 0);
    return false;
  }
  appendOut(ctx, s, ctx.bufs.get(t.inb[s]), 0, t.ilen[s]);
  dropInbox(ctx, s);
  return true;
}

/**
 * The pooled connection c's request went to was closed by the backend before a byte of the response: send
 * the kept copy once more on a new connection. The copy is used up, so a second failure is a 502.
 */
export function replay(ctx: H1Context, c: number, b: number): void {
  const t = ctx.t;
  const h = ctx.h1;
  if (ctx.log.level >= LEVEL.debug) ctx.log.debug(`pooled backend connection ${t.describe(b)} was closed; replaying the request on a new one`);
  t.peer[c] = -1;
  ctx.closeSlot(b, false);
  const r = h.retry[c];
  h.retry[c] = -1;
  dropOutbox(ctx, c);
  t.buf[c] = r; // the copy becomes the outbox
  t.bufOff[c] = 0;
  t.bufLen[c] = h.retryLen[c];
  if (takeBackend(ctx, c, true) < 0) return;
  requestDone(ctx, c);
}

// ---- bodies and copies ------------------------------------------------------------------------------------

/**
 * With the inbox empty in the middle of a Content-Length body and at least RAW_MIN bytes to come, moves
 * the rest by count: llhttp has already checked the framing (the length), so the bytes need no parser.
 * llhttp's content_length is what is left of the body at this point. Both ways: `s` is a backend (its
 * response body) or a client (its request body); the parser is reset before its next message.
 */
export function maybeRaw(ctx: H1Context, s: number): void {
  const t = ctx.t;
  const h = ctx.h1;
  if (ctx.frontends[t.fe[s]].spliceMode === SPLICE_MODE.OFF || t.ilen[s] > 0) return;
  // A response to be cut after some bytes (http_body_limit) is copied, so that the cut can be counted.
  const peer = t.peer[s];
  if (peer >= 0 && ctx.faults.lflags.length > 0 && ctx.faults.lflags[peer] & LF.CUT) return;
  const p = h.parsers[s]!;
  if ((p.flags & (HF.CONTENT_LENGTH | HF.CHUNKED)) !== HF.CONTENT_LENGTH || p.contentLength < RAW_MIN) return;
  h.rawLeft[s] = p.contentLength;
  h.hf[s] |= H.RAW;
}

/**
 * One step of a RAW body: up to a pipe's worth (never past the body's end) from slot s into its outbox.
 * Bytes moved (> 0), -EAGAIN, 0 at EOF, or -errno. When the count reaches 0 (H.RAW cleared) the message
 * has ended exactly where its Content-Length said.
 */
export function rawStep(ctx: H1Context, s: number): number {
  const h = ctx.h1;
  const n = readCounted(ctx, s, h.rawLeft[s]);
  if (n <= 0) return n;
  h.rawLeft[s] -= n;
  if (h.rawLeft[s] === 0) h.hf[s] &= ~H.RAW; // the body ended at its length; the caller ends the message
  return n;
}

/** Copies src[from..to) (src is s's inbox) to the end of s's outbox. */
export function appendOut(ctx: H1Context, s: number, src: Buffer, from: number, to: number): void {
  const t = ctx.t;
  const out = takeOutbox(ctx, s);
  primePoolCopy(ctx, t.inb[s], t.buf[s]);
  copyBytes(src, from, to, out, t.bufLen[s]);
  t.bufLen[s] += to - from;
}

/** The copies about to go from pool buffer i to pool buffer o: tell copyBytes where both are (head.ts). */
export function primePoolCopy(ctx: H1Context, i: number, o: number): void {
  const bufs = ctx.bufs;
  primeCopy(bufs.get(i), bufs.slabOffset(i), bufs.get(o), bufs.slabOffset(o), bufs.sharedSlab(i, o));
}

/**
 * DRAIN, slot by slot: an idle keep-alive client (between requests, nothing read) is closed now, and so is
 * a pooled backend connection; a client mid-request finishes it and is closed after its response.
 */
export function drainSlot(ctx: H1Context, s: number): void {
  const t = ctx.t;
  if (t.proto[s] === PROTO.H1_CLIENT && t.state[s] === ST.H_HEAD && t.ilen[s] === 0) endPair(ctx, s, TERM.STOPPED, false);
  else if (t.proto[s] === PROTO.H1_SERVER && t.state[s] === ST.IDLE) ctx.closeSlot(s, false);
}
