// The HTTP/1 proxy's backend side: a backend connection carries one request at a time; its response is
// parsed (llhttp, strict), the head rewritten into the backend's outbox and relayed to the client, the body
// parsed and copied behind it (or moved by count, exchange.ts: maybeRaw), until the response ends.
//
//   CONNECTING --> PROXYING (one request at a time) --reusable--> IDLE (its backend's pool) --taken--> PROXYING
//
// Invariant 9: a backend connection goes back to the pool only when the response ended at a boundary llhttp
// found (not at EOF), llhttp says keep-alive, the request was sent whole, and no byte followed the response
// (exchange.ts: finishExchange). Anything else is closed: a connection whose framing is in doubt is never
// reused. Bytes after a response's end are never taken as part of it.

import { FE, SV, feBase, observe, statusClass, svBase } from '../core/counters.js';
import { TERM } from '../core/term.js';
import { FL, ST } from '../core/types.js';
import { connectDone, connectTerm, connectTimedOut } from '../route/index.js';
import {
  END_EVENTS,
  READ_EVENTS,
  WRITE_EVENTS,
  consumeInbox,
  dropInbox,
  dropOutbox,
  endPair,
  flush,
  inbox,
  noteEvents,
  outEmpty,
  readInbox,
  roomOut,
  stillIdle,
  takeOutbox,
  tlsConnecting,
  unblocked,
} from '../transport/index.js';
import { E } from '../sys/index.js';
import { LF, headHeld, responseHeadCame } from '../toxic/index.js';
import {
  appendOut,
  connectDeadlineOver,
  countRequest,
  connectFailed,
  fail,
  finishExchange,
  maybeRaw,
  primePoolCopy,
  rawStep,
  replay,
  resetClient,
  upgrade,
} from './exchange.js';
import { WHY } from './explain.js';
import { HEAD_ERR, scanHead, writeHead } from './head.js';
import { PEV } from './parser.js';
import { H, type H1Context, TURNS } from './state.js';

// Room kept in an outbox for what a rewritten response head may add (a Connection line) over the original.
const HEAD_SLACK = 64;

export function onEvent(ctx: H1Context, b: number, events: number): void {
  const t = ctx.t;
  noteEvents(t, b, events);
  switch (t.state[b]) {
    case ST.CONNECTING:
      // A TLS backend's handshake moves on reads too.
      if (events & WRITE_EVENTS || (events & READ_EVENTS && tlsConnecting(b))) finishConnect(ctx, b);
      return;
    case ST.IDLE:
      // A pooled connection with something to read (the backend closed it, or sent bytes nobody asked for)
      // is done: it leaves the pool (lazily: its generation changes) and closes. EPOLLOUT alone (acks
      // freeing send-buffer space) says nothing about it, and neither does an EPOLLIN whose bytes were
      // read before the connection went idle (the edge was already queued): a read saying EAGAIN keeps it.
      if (events & END_EVENTS || (events & READ_EVENTS && !stillIdle(ctx, b))) ctx.closeSlot(b, false);
      return;
    case ST.PROXYING: {
      const gen = t.gen[b];
      const c = t.peer[b];
      if (unblocked(t, b, events)) {
        if (c >= 0) ctx.resume(c); // the client's outbox was waiting for this backend
        if (t.gen[b] !== gen) return;
      }
      if (t.flags[b] & FL.READABLE) progress(ctx, b);
      return;
    }
  }
}

/** A ready-queue turn: carry on where backend b stopped early. */
export function resume(ctx: H1Context, b: number): void {
  if (ctx.t.state[b] === ST.PROXYING) progress(ctx, b);
}

/**
 * Backend b's deadline passed: 504 for a backend too slow to connect, to answer or to go on (a cut-off once
 * the client has part of the response), a reset for a client that stopped reading.
 */
export function onTimer(ctx: H1Context, b: number): void {
  const t = ctx.t;
  const c = t.peer[b];
  if (c < 0) return;
  if (t.state[b] === ST.CONNECTING) {
    connectFailed(ctx, b, connectTimedOut(ctx, b));
  } else if (t.state[b] === ST.PROXYING) {
    if (!(ctx.h1.hf[b] & H.RESP_BYTES)) fail(ctx, c, TERM.BACKEND_TIMEOUT, WHY.NO_ANSWER);
    else if (!outEmpty(ctx, b)) resetClient(ctx, c, TERM.CLIENT_TIMEOUT, WHY.NOT_READING, 0);
    else fail(ctx, c, TERM.BACKEND_TIMEOUT, WHY.STALLED);
  }
}

function finishConnect(ctx: H1Context, b: number): void {
  const r = connectDone(ctx, b);
  if (r === -E.EINPROGRESS) return;
  if (r !== 0) {
    connectFailed(ctx, b, connectTerm(r));
    return;
  }
  ctx.t.state[b] = ST.PROXYING;
  const c = ctx.t.peer[b];
  if (c >= 0) countRequest(ctx, b);
  connectDeadlineOver(ctx, c, b);
  if (c >= 0) ctx.resume(c); // the request waits in the client's outbox
}

function progress(ctx: H1Context, b: number): void {
  const t = ctx.t;
  const h = ctx.h1;
  const gen = t.gen[b];
  for (let turns = 0; t.gen[b] === gen && t.state[b] === ST.PROXYING; turns++) {
    if (turns === TURNS) {
      ctx.enqueue(b);
      return;
    }
    const c = t.peer[b];
    if (c < 0) return;
    // Parse what is in the inbox into the outbox before writing, so that a head and the body bytes that
    // came with it leave in one send. A head is only parsed into an empty outbox (writeHead starts at 0).
    if (t.ilen[b] > 0 && !(h.hf[b] & H.RES_DONE) && (outEmpty(ctx, b) || !(h.hf[b] & H.IN_HEAD))) {
      if (parseResponse(ctx, b, c)) continue;
      if (t.gen[b] !== gen) return;
    }
    if (!outEmpty(ctx, b)) {
      if (t.flags[c] & FL.W_BLOCKED) return;
      if (ctx.faults.headAt.length > 0 && ctx.faults.headAt[c] > 0 && headHeld(ctx, c, b)) return;
      const f = ctx.faults.lflags.length > 0 && ctx.faults.lflags[c] & LF.CUT ? flushCut(ctx, b, c) : flush(ctx, b, c);
      if (f === CUT_DONE) {
        endPair(ctx, c, TERM.TOXIC, false);
        return;
      }
      if (f < 0) {
        resetClient(ctx, c, TERM.CLIENT_RESET, WHY.WRITE_CLIENT, f);
        return;
      }
      if (f === 0) return;
      continue;
    }
    if (h.hf[b] & H.RES_DONE) {
      finishExchange(ctx, c, b);
      return;
    }
    if (!(t.flags[b] & FL.READABLE) || !readStep(ctx, b, c)) return;
  }
}

// flushCut()'s answer when the cut was reached: the client is to be closed.
const CUT_DONE = 2;

/**
 * flush() for a response that http_body_limit cuts (src/toxic/http.ts): at most what is left before the cut
 * is written; CUT_DONE once the cut is reached with bytes of the response held back.
 */
function flushCut(ctx: H1Context, b: number, c: number): number {
  const t = ctx.t;
  const fx = ctx.faults;
  if (t.pipe[b] >= 0) return flush(ctx, b, c); // never: a response to cut is copied (exchange.ts: maybeRaw)
  const held = t.bufLen[b] - t.bufOff[b];
  const cut = held > fx.bodyLeft[c];
  if (cut) t.bufLen[b] = t.bufOff[b] + fx.bodyLeft[c];
  const before = t.bufLen[b] - t.bufOff[b];
  const f = before === 0 ? 1 : flush(ctx, b, c);
  if (f < 0) return f;
  fx.bodyLeft[c] -= f === 1 ? before : before - (t.bufLen[b] - t.bufOff[b]);
  if (f === 1 && before === 0) dropOutbox(ctx, b);
  return cut && f === 1 ? CUT_DONE : f;
}

/** Reads more of the response. True when bytes came (the caller goes on), false to stop. */
function readStep(ctx: H1Context, b: number, c: number): boolean {
  const t = ctx.t;
  const h = ctx.h1;
  const deadline = ctx.frontends[t.fe[b]].backendTimeoutMs;
  if (h.hf[b] & H.RAW) {
    const r = rawStep(ctx, b);
    if (r > 0) {
      // Ended at its length: reusable as decided at the head (the parser is reset for the next one).
      if (!(h.hf[b] & H.RAW)) h.hf[b] |= H.RES_DONE;
      ctx.timers.arm(b, ctx.now + deadline);
      return true;
    }
    if (r !== -E.EAGAIN) fail(ctx, c, TERM.BACKEND_RESET, r === 0 ? WHY.BACKEND_CLOSED : WHY.READ_BACKEND, r);
    return false;
  }
  const n = readInbox(ctx, b);
  if (n > 0) {
    // Once a response has started, backend-timeout bounds each wait for more of it: a backend that
    // stalls mid-response, or a client that stops reading it (no room, so no read), is cut off then.
    ctx.timers.arm(b, ctx.now + deadline);
    if (!(h.hf[b] & H.RESP_BYTES)) {
      h.hf[b] |= H.RESP_BYTES;
      h.dropRetryCopy(c, ctx.bufs);
      const ms = ctx.hrNow - t.since[c];
      observe(t.ctr, svBase(t.srv[b]) + SV.FIRST_BYTE, ms / 1000);
      if (ctx.alog.on[t.fe[c]]) ctx.alog.tr[c] = ms;
    }
    return true;
  }
  if (n === -E.EAGAIN) return false;
  if (n === -E.ENOBUFS) return fail(ctx, c, TERM.BACKEND_INVALID, WHY.RESP_OVER_BUFFER);
  if ((n === 0 || n === -E.ECONNRESET) && !(h.hf[b] & H.RESP_BYTES) && h.retry[c] >= 0) {
    replay(ctx, c, b);
    return false;
  }
  if (n === 0) {
    const rp = h.parsers[b]!;
    if (!(h.hf[b] & H.IN_HEAD) && rp.messageNeedsEof() && rp.finish() & PEV.MESSAGE) {
      h.hf[b] = (h.hf[b] | H.RES_DONE) & ~H.REUSABLE; // ended by close: not reusable
      return true;
    }
    return fail(ctx, c, TERM.BACKEND_RESET, WHY.BACKEND_CLOSED);
  }
  return fail(ctx, c, TERM.BACKEND_RESET, WHY.READ_BACKEND, n);
}

/** Parses the backend's inbox: the head (rewritten into the outbox) or body bytes (copied). */
function parseResponse(ctx: H1Context, b: number, c: number): boolean {
  const t = ctx.t;
  const h = ctx.h1;
  const rp = h.parsers[b]!;
  const buf = inbox(ctx, b);
  if (h.hf[b] & H.IN_HEAD) {
    // One execute for the head and the body bytes that fit in the outbox behind the rewritten head (which
    // is at most the head plus a Connection line). An incomplete head is parsed again from its start when
    // more has come.
    const limit = Math.min(t.ilen[b], buf.length - HEAD_SLACK);
    const ev = rp.executeThrough(buf, limit, ctx.bufs.address(t.inb[b]));
    if (ev & PEV.ERROR) return fail(ctx, c, TERM.BACKEND_INVALID, WHY.BAD_RESPONSE);
    if (!(ev & PEV.HEADERS)) {
      if (t.ilen[b] > ctx.frontends[t.fe[b]].maxHeaderSize) fail(ctx, c, TERM.BACKEND_INVALID, WHY.RESP_HEAD_LARGE);
      else rp.reset();
      return false;
    }
    return responseHead(ctx, b, c, rp.headEnd, rp.consumed, ev);
  }
  const n = Math.min(t.ilen[b], roomOut(ctx, b));
  if (n === 0) return false; // the outbox is full: it is written first
  const ev = rp.execute(buf, n, ctx.bufs.address(t.inb[b]));
  if (ev & PEV.ERROR) return fail(ctx, c, TERM.BACKEND_INVALID, WHY.BAD_RESPONSE_BODY);
  const k = rp.consumed;
  appendOut(ctx, b, buf, 0, k);
  consumeInbox(ctx, b, k);
  if (ev & PEV.MESSAGE) responseEnded(ctx, b);
  else maybeRaw(ctx, b);
  return k > 0 || (ev & PEV.MESSAGE) !== 0;
}

/**
 * The response head inbox[0..headEnd) is complete and llhttp parsed up to `parsed` (the head, and the body
 * bytes that came with it, up to the message's end): relay the head rewritten, then those body bytes.
 */
function responseHead(ctx: H1Context, b: number, c: number, headEnd: number, parsed: number, ev: number): boolean {
  const t = ctx.t;
  const h = ctx.h1;
  const rp = h.parsers[b]!;
  const buf = inbox(ctx, b);
  const status = rp.statusCode;
  if (scanHead(buf, 0, headEnd, h.info) !== HEAD_ERR.NONE) return fail(ctx, c, TERM.BACKEND_INVALID, WHY.RESP_FIELDS);
  const upgraded = status === 101 && (h.hf[c] & H.UPGRADING) !== 0;
  if (status === 101 && !upgraded) return fail(ctx, c, TERM.BACKEND_INVALID, WHY.UNASKED_101);
  const interim = status < 200 && !upgraded;
  if (!interim) {
    const k = statusClass(status);
    t.ctr[feBase(t.fe[c]) + FE.STATUS + k]++;
    t.ctr[svBase(t.srv[b]) + SV.STATUS + k]++;
    if (ctx.alog.on[t.fe[c]]) ctx.alog.status[c] = status;
    if (!upgraded) finalHead(ctx, b, c);
  }
  const closeAfter = (h.hf[c] & H.CLOSE_AFTER) !== 0;
  const out = takeOutbox(ctx, b);
  const o = h.responseOpts;
  o.upgrading = upgraded;
  o.connection = interim ? null : closeAfter ? 'close' : h.hf[c] & H.KA10 ? 'keep-alive' : null;
  primePoolCopy(ctx, t.inb[b], t.buf[b]);
  const n = writeHead(buf, 0, h.info, out, o);
  if (n < 0) return fail(ctx, c, TERM.BACKEND_INVALID, WHY.RESP_REWRITE);
  // writeHead writes from offset 0 of `out`: the outbox was empty (progress() flushes it before it parses
  // anything more).
  t.bufLen[b] = n;
  h.hf[c] |= H.HEAD_OUT;
  if (!interim && ctx.faults.plan(t.fe[c]).http) responseHeadCame(ctx, c, n);
  // The body bytes llhttp parsed with the head go right behind it (the outbox has room: see HEAD_SLACK).
  if (parsed > headEnd) appendOut(ctx, b, buf, headEnd, parsed);
  consumeInbox(ctx, b, parsed);
  h.hf[b] &= ~H.IN_HEAD;
  if (upgraded) {
    upgrade(ctx, c, b);
    return false;
  }
  if (interim) {
    rp.reset(); // the final response is a new message for llhttp, and its head comes next
    h.hf[b] |= H.IN_HEAD;
    return true;
  }
  // A head with no body to follow (204, 304, HEAD, Content-Length: 0) ended its message in that execute.
  if (ev & PEV.MESSAGE) responseEnded(ctx, b);
  else maybeRaw(ctx, b);
  return true;
}

/** A final response head: whether the client connection ends after it, and whether b may be reused. */
function finalHead(ctx: H1Context, b: number, c: number): void {
  const h = ctx.h1;
  const rp = h.parsers[b]!;
  // A response delimited by the backend's close cannot be delimited for the client either. (A backend that
  // only says Connection: close loses its connection, not the client's.)
  const eof = rp.messageNeedsEof();
  if (eof) h.hf[c] |= H.CLOSE_AFTER;
  // An upgrade request answered without 101 ends the client connection after it: the client may already
  // have sent bytes of the protocol it asked for, which must not be read as a next request, and it must
  // expect the close anyway.
  if (h.hf[c] & H.UPGRADING) h.hf[c] |= H.CLOSE_AFTER;
  // A response that comes before the request has been read whole (a backend refusing an upload early): the
  // rest of that body would be read as the next request, so the client connection ends here. And while
  // draining, every response says Connection: close, as HAProxy does on a soft stop.
  if (!(h.hf[c] & H.REQ_DONE) || ctx.draining) h.hf[c] |= H.CLOSE_AFTER;
  if (!eof && rp.shouldKeepAlive()) h.hf[b] |= H.REUSABLE;
}

function responseEnded(ctx: H1Context, b: number): void {
  const h = ctx.h1;
  h.hf[b] |= H.RES_DONE;
  // Bytes after the end of the response: the backend is out of step; never reuse it.
  if (ctx.t.ilen[b] > 0) {
    h.hf[b] &= ~H.REUSABLE;
    dropInbox(ctx, b);
  }
}
