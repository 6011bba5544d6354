// HTTP mode: each client connection carries a sequence of requests; each request is parsed (llhttp, strict),
// checked, its head rewritten, and sent with its body to a backend connection taken from the worker's
// keep-alive pool (or newly connected); the response is parsed, its head rewritten and relayed; then the
// backend goes back to the pool if its framing is certain, and the client reads its next request.
//
//   client:  H_HEAD --valid head, backend found--> H_BODY --request complete--> H_WAIT
//              ^                                                                 │ response complete,
//              └────────────── keep-alive: next request (pipelined bytes first) ─┘ flushed to the client
//            any state --error before a response byte--> generated 4xx/5xx, FIN --> H_LINGER --> closed
//            H_WAIT --101 to an upgrade--> PROXYING + FL.TUNNEL (bytes moved by tcp.ts from then on)
//
//   backend: CONNECTING --> PROXYING (one request at a time) --reusable--> IDLE (pool) --taken--> PROXYING
//
// Bytes: a slot's inbox (`inb`) holds what was read from its fd and not yet parsed or forwarded; its outbox
// (the table's buf columns, as in TCP mode) holds what goes to its peer. A request's head is rewritten from
// the client's inbox into the client's outbox; body bytes are parsed and copied across up to the message
// boundary, so bytes of the next (pipelined) request never reach the backend before their turn, and bytes
// after a response's end are never taken as part of it.
//
// Invariant 9 (docs/http.md): a backend connection goes back to the pool only when the response ended at a
// boundary llhttp found (not at EOF), llhttp says keep-alive, the request was sent whole, and no byte
// followed the response. Anything else is closed: a connection whose framing is in doubt is never reused.

import { LEVEL } from '../log.js';
import { copyBytes, HEAD_ERR, HeadInfo, type HeadOptions, primeCopy, requestHeadError, scanHead, writeHead } from '../http/head.js';
import { HttpParser, PEV, versionOk } from '../http/parser.js';
import { HF, METHOD, PARSER_TYPE } from '../http/parser-t.js';
import { generated, type GeneratedStatus } from '../http/responses.js';
import {
  E,
  EPOLL,
  MSG,
  SHUT,
  SOCK,
  close,
  connect,
  epollAdd,
  errnoName,
  peerAddress,
  recv,
  recvAt,
  send,
  setNoDelay,
  shutdown,
  SPLICE_F,
  sockError,
  socket,
  splice,
} from '../sys/index.js';
import { CONN_EVENTS, SPLICE_MODE, type WorkerLoop } from './loop.js';
import { refuse, sendHeader, takeHeader } from './proxied.js';
import * as tcp from './tcp.js';
import { CTR, FL, KIND, ST } from './types.js';

export type HttpOptions = {
  headerTimeoutMs: number;
  /** A keep-alive client that sends nothing this long after a response is closed. */
  idleTimeoutMs: number;
  backendTimeoutMs: number;
  maxHeaderSize: number;
  /** 0 = no limit. */
  maxBodySize: number;
  forwardedHeaders: boolean;
};

// Per-slot HTTP bits (HttpState.hf), beside the table's FL flags.
const H = {
  CLOSE_AFTER: 1 << 0, // client: close once this response is written
  REQ_DONE: 1 << 1, // client: the current request went to the backend whole
  RES_DONE: 1 << 2, // backend: the final response ended; finish once the outbox is flushed
  HEAD_OUT: 1 << 3, // client: bytes of a response went to it, so no generated response can follow
  KA10: 1 << 4, // client: HTTP/1.0 with keep-alive: answer with Connection: keep-alive
  REUSABLE: 1 << 5, // backend: the response allows the connection to be reused
  UPGRADING: 1 << 6, // client: this request asks to upgrade
  HEAD_REQ: 1 << 7, // client: this request is HEAD (its response has no body)
  RESP_BYTES: 1 << 8, // backend: a byte of the response arrived
  IN_HEAD: 1 << 9, // backend: parsing a response head (before HEADERS)
  POOLED: 1 << 10, // backend: taken from the pool for this request (it may have been closed meanwhile)
  KEPT: 1 << 11, // client: kept alive after a response, waiting for its next request (idle deadline)
  RAW: 1 << 12, // backend: the rest of a Content-Length body moves by count (splice), not through llhttp
  PP_WAIT: 1 << 13, // client: --accept-proxy, its PROXY header is not complete yet (proxied.ts)
} as const;

// A response body with at least this many bytes still to come, and a known length, moves by splice like
// TCP mode's bulk transfers (tcp.ts switches to splice after one full 64 KiB buffer, for the same reason):
// below it, two splices cost more than a read and a send (docs/benchmarks.md, splice on vs off).
const RAW_MIN = 64 * 1024;

// Room kept in an outbox for what a rewritten response head may add (a Connection line) over the original.
const HEAD_SLACK = 64;

/** Idempotent methods (RFC 9110 9.2.2) that may be replayed on a new connection: DELETE, GET, HEAD, PUT,
 * OPTIONS, TRACE, by llhttp_method_t value. */
const IDEMPOTENT = new Set([0, 1, 2, 4, 6, 7]);


const EVENTS_READ = EPOLL.IN | EPOLL.RDHUP | EPOLL.HUP | EPOLL.ERR;
const EVENTS_WRITE = EPOLL.OUT | EPOLL.HUP | EPOLL.ERR;
const EVENTS_END = EPOLL.RDHUP | EPOLL.HUP | EPOLL.ERR;

// Idle keep-alive backend connections kept per worker, as nginx's `keepalive 64` in the benchmark: more
// only hold backend resources without serving anyone.
const MAX_IDLE_BACKENDS = 64;

/** The worker's HTTP state beside the shared table: parsers, inboxes, timers, the backend pool. */
export class HttpState {
  readonly o: HttpOptions;
  readonly parsers: (HttpParser | null)[];
  readonly inb: Int32Array; // inbox pool buffer, or -1
  readonly ilen: Int32Array; // bytes in the inbox
  readonly hf: Uint16Array; // H.* bits
  readonly sent: Float64Array; // client: body bytes of the current request forwarded (for maxBodySize)
  readonly rawLeft: Float64Array; // backend: body bytes still to move by count (H.RAW)
  readonly peerText: (string | null)[]; // client: its address, for X-Forwarded-For
  readonly retry: Int32Array; // client: pool buffer with a copy of the request sent on a pooled connection
  readonly retryLen: Int32Array;
  readonly info = new HeadInfo();
  // writeHead's options, one object each way, filled in per message (no allocation per request).
  readonly forwarded = { clientAddress: '', proto: 'http' };
  readonly requestOpts: HeadOptions = { forwarded: null, upgrading: false, connection: null };
  readonly responseOpts: HeadOptions = { forwarded: null, upgrading: false, connection: null };
  readonly idle: Int32Array; // pool of idle backend slots (a stack)
  readonly idleGen: Uint32Array;
  idleCount = 0;
  readonly scratch: Buffer; // for lingering reads that are thrown away
  readonly reserve: number; // slots kept for backend connections (backendReserve)
  // Parsers no slot holds, by type: at most as many as messages were once read at the same time.
  readonly spareRequest: HttpParser[] = [];
  readonly spareResponse: HttpParser[] = [];

  constructor(capacity: number, o: HttpOptions) {
    this.o = o;
    this.parsers = new Array(capacity).fill(null);
    this.inb = new Int32Array(capacity).fill(-1);
    this.ilen = new Int32Array(capacity);
    this.hf = new Uint16Array(capacity);
    this.sent = new Float64Array(capacity);
    this.rawLeft = new Float64Array(capacity);
    this.peerText = new Array(capacity).fill(null);
    this.retry = new Int32Array(capacity).fill(-1);
    this.retryLen = new Int32Array(capacity);
    this.idle = new Int32Array(MAX_IDLE_BACKENDS);
    this.idleGen = new Uint32Array(MAX_IDLE_BACKENDS);
    this.scratch = Buffer.allocUnsafeSlow(16384);
    this.reserve = backendReserve(capacity);
    if (o.forwardedHeaders) this.requestOpts.forwarded = this.forwarded;
  }

  /** Frees what slot s holds here (parser, inbox, retry copy). Called by WorkerLoop.closeSlot(). */
  release(s: number, bufs: { release(i: number): void }): void {
    this.dropParser(s);
    if (this.inb[s] >= 0) {
      bufs.release(this.inb[s]);
      this.inb[s] = -1;
    }
    this.ilen[s] = 0;
    dropRetryCopy(this, s, bufs);
  }

  /** Puts slot s's parser (if any) back among the spares. */
  dropParser(s: number): void {
    const p = this.parsers[s];
    if (p === null) return;
    this.parsers[s] = null;
    (p.type === PARSER_TYPE.REQUEST ? this.spareRequest : this.spareResponse).push(p);
  }
}

function dropRetryCopy(h: HttpState, c: number, bufs: { release(i: number): void }): void {
  if (h.retry[c] >= 0) {
    bufs.release(h.retry[c]);
    h.retry[c] = -1;
  }
}

/**
 * Slot s's parser of `type`, reset, taken from the worker's spares when s has none: a parser is held only
 * while a message is being read, so an idle keep-alive client costs no parser (docs/scaling.md).
 */
function parser(w: WorkerLoop, s: number, type: number): HttpParser {
  const h = w.http!;
  let p = h.parsers[s];
  if (p === null || p.type !== type) {
    h.dropParser(s);
    p = (type === PARSER_TYPE.REQUEST ? h.spareRequest : h.spareResponse).pop() ?? new HttpParser(type);
    h.parsers[s] = p;
  }
  p.reset();
  return p;
}

// ---- accept and dispatch ------------------------------------------------------------------------------

/**
 * Slots an HTTP worker keeps for backend connections: clients alone (idle keep-alive ones, say) never fill
 * its table, so a request from a client it holds finds a slot for its backend unless this many requests
 * are in flight at once. An eighth of the table, at least 1, at most 1024 (the backend pool keeps 64).
 */
export function backendReserve(capacity: number): number {
  return Math.max(1, Math.min(1024, Math.floor(capacity / 8)));
}

export function onAccept(w: WorkerLoop, fd: number): void {
  const t = w.t;
  if (t.free < 1 + w.http!.reserve) {
    t.ctr[CTR.REFUSED_FULL]++;
    t.ctr[CTR.GENERATED]++;
    w.log.limited(
      LEVEL.warn,
      'full',
      `connection table full (${t.capacity} slots, ${w.http!.reserve} of them kept for backend connections): answered 503`,
    );
    const r = generated(503, true);
    send(fd, r, r.length, MSG.NOSIGNAL | MSG.DONTWAIT);
    close(fd); // never had a slot
    return;
  }
  setNoDelay(fd);
  const c = t.acquire(KIND.CLIENT, ST.H_HEAD, fd);
  t.ctr[CTR.ACTIVE]++;
  const h = w.http!;
  h.hf[c] = w.pp !== null && w.pp.o.accept ? H.PP_WAIT : 0;
  h.ilen[c] = 0;
  h.peerText[c] = null;
  if (epollAdd(w.epfd, fd, CONN_EVENTS, c, t.gen[c]) < 0) {
    closeClient(w, c, 'epoll_ctl ADD client');
    return;
  }
  // The first request's head must arrive within the header timeout (HAProxy's `timeout http-request`).
  w.timers.arm(c, w.now + h.o.headerTimeoutMs);
}

export function onEvent(w: WorkerLoop, s: number, events: number): void {
  const t = w.t;
  if (t.flags[s] & FL.TUNNEL) {
    tcp.onEvent(w, s, events);
    return;
  }
  if (events & EVENTS_READ) t.flags[s] |= events & EVENTS_END ? FL.READABLE | FL.PEER_DONE : FL.READABLE;
  const gen = t.gen[s];
  if (t.kind[s] === KIND.CLIENT) {
    if (events & EVENTS_WRITE && t.flags[s] & FL.W_BLOCKED) {
      t.flags[s] &= ~FL.W_BLOCKED;
      const b = t.peer[s];
      if (b >= 0) backendProgress(w, b); // its outbox was waiting for this client
      else if (t.state[s] === ST.H_LINGER) return;
      if (t.gen[s] !== gen) return;
    }
    if (t.flags[s] & FL.READABLE || w.http!.ilen[s] > 0) clientProgress(w, s);
    return;
  }
  // backend
  switch (t.state[s]) {
    case ST.CONNECTING:
      if (events & EVENTS_WRITE) finishConnect(w, s);
      return;
    case ST.IDLE:
      // A pooled connection with something to read (the backend closed it, or sent bytes nobody asked for)
      // is done: it leaves the pool (lazily: its generation changes) and closes. EPOLLOUT alone (acks
      // freeing send-buffer space) says nothing about it, and neither does an EPOLLIN whose bytes were
      // read before the connection went idle (the edge was already queued): a read saying EAGAIN keeps it.
      if (events & EVENTS_END) w.closeSlot(s);
      else if (events & EVENTS_READ) {
        const n = recv(t.fd[s], w.http!.scratch, 1);
        if (n === -E.EAGAIN) t.flags[s] &= ~FL.READABLE;
        else w.closeSlot(s);
      }
      return;
    case ST.PROXYING: {
      const c = t.peer[s];
      if (events & EVENTS_WRITE && t.flags[s] & FL.W_BLOCKED) {
        t.flags[s] &= ~FL.W_BLOCKED;
        if (c >= 0) clientProgress(w, c);
        if (t.gen[s] !== gen) return;
      }
      if (t.flags[s] & FL.READABLE) backendProgress(w, s);
      return;
    }
  }
}

/** A ready-queue turn (the loop's runReady): carry on where a slot stopped early. */
export function resume(w: WorkerLoop, s: number): void {
  const t = w.t;
  if (t.flags[s] & FL.TUNNEL) {
    if (t.state[s] === ST.PROXYING) tcp.pump(w, s);
  } else if (t.kind[s] === KIND.CLIENT) {
    clientProgress(w, s);
  } else if (t.state[s] === ST.PROXYING) {
    backendProgress(w, s);
  }
}

/**
 * DRAIN: idle keep-alive clients (between requests, nothing read) are closed now, and the pool's backend
 * connections too; clients mid-request finish it and are closed after its response (responseHead).
 */
export function onDrain(w: WorkerLoop): void {
  const t = w.t;
  const h = w.http!;
  for (let s = 0; s < t.capacity; s++) {
    if (t.kind[s] === KIND.CLIENT && t.state[s] === ST.H_HEAD && h.ilen[s] === 0 && !(t.flags[s] & FL.TUNNEL)) {
      closeClient(w, s, null);
    } else if (t.kind[s] === KIND.BACKEND && t.state[s] === ST.IDLE) {
      w.closeSlot(s);
    }
  }
  h.idleCount = 0;
}

/**
 * A deadline passed: 408 for a head too slow or a body stalled, 504 for a backend too slow to answer or to
 * go on (a cut-off once the client has part of the response), close for a lingering client or one that
 * stopped reading.
 */
export function onTimer(w: WorkerLoop, s: number): void {
  const t = w.t;
  const h = w.http!;
  if (t.kind[s] === KIND.CLIENT) {
    if (t.state[s] === ST.H_LINGER) {
      closeClient(w, s, null);
    } else if (t.state[s] === ST.H_HEAD && h.hf[s] & H.PP_WAIT) {
      refuse(w, s, `not complete within ${h.o.headerTimeoutMs} ms`);
      closeClient(w, s, null);
    } else if (t.state[s] === ST.H_HEAD) {
      // Nothing sent (a new connection, or a kept-alive one gone idle): close quietly, as HAProxy's
      // http-ignore-probes and nginx's keepalive_timeout do; a partial head: 408.
      if (h.ilen[s] === 0) closeClient(w, s, null);
      else fail(w, s, 408, `request head not complete within ${h.o.headerTimeoutMs} ms`);
    } else if (t.state[s] === ST.H_BODY) {
      // Nothing of the body for idle-timeout (nginx's client_body_timeout, HAProxy's timeout client), or
      // the backend took none of it that long (the outbox is still full).
      if (outEmpty(w, s)) fail(w, s, 408, `request body: nothing for ${h.o.idleTimeoutMs} ms`);
      else fail(w, s, 504, `backend ${w.backendText} took none of the request body for ${h.o.idleTimeoutMs} ms`);
    }
  } else if (t.kind[s] === KIND.BACKEND && t.state[s] === ST.PROXYING && t.peer[s] >= 0) {
    const c = t.peer[s];
    if (!(h.hf[s] & H.RESP_BYTES)) fail(w, c, 504, `backend ${w.backendText} did not answer within ${h.o.backendTimeoutMs} ms`);
    else if (!outEmpty(w, s)) closeClient(w, c, `client read none of the response for ${h.o.backendTimeoutMs} ms`);
    else fail(w, c, 504, `backend ${w.backendText} sent nothing for ${h.o.backendTimeoutMs} ms in the middle of a response`);
  } else if (t.kind[s] === KIND.BACKEND && t.state[s] === ST.CONNECTING && t.peer[s] >= 0) {
    fail(w, t.peer[s], 504, `backend ${w.backendText}: connect did not finish within ${h.o.backendTimeoutMs} ms`);
  }
}

// ---- inboxes and outboxes -------------------------------------------------------------------------------

/** Reads from slot s into its inbox: bytes read, 0 at EOF, -EAGAIN, -errno; -ENOBUFS when the inbox is full. */
function readInbox(w: WorkerLoop, s: number): number {
  const h = w.http!;
  if (h.inb[s] < 0) {
    h.inb[s] = w.bufs.acquire();
    h.ilen[s] = 0;
  }
  const buf = w.bufs.get(h.inb[s]);
  const room = buf.length - h.ilen[s];
  if (room === 0) return -E.ENOBUFS;
  const n = recvAt(w.t.fd[s], w.bufs.address(h.inb[s]) + h.ilen[s], room);
  if (n > 0) {
    h.ilen[s] += n;
    if (n < room && !(w.t.flags[s] & FL.PEER_DONE)) w.t.flags[s] &= ~FL.READABLE; // see tcp.ts readIn
  } else if (n === -E.EAGAIN) {
    w.t.flags[s] &= ~FL.READABLE;
  }
  if (h.ilen[s] === 0) dropInbox(w, s);
  return n;
}

function inbox(w: WorkerLoop, s: number): Buffer {
  return w.bufs.get(w.http!.inb[s]);
}

/** Removes the first `n` bytes of s's inbox (they were forwarded or replaced). */
function consumeInbox(w: WorkerLoop, s: number, n: number): void {
  const h = w.http!;
  const left = h.ilen[s] - n;
  if (left > 0) inbox(w, s).copyWithin(0, n, h.ilen[s]);
  h.ilen[s] = left;
  if (left === 0) dropInbox(w, s);
}

function dropInbox(w: WorkerLoop, s: number): void {
  const h = w.http!;
  if (h.inb[s] >= 0) {
    w.bufs.release(h.inb[s]);
    h.inb[s] = -1;
  }
  h.ilen[s] = 0;
}

/** The outbox of s (bytes for its peer), taken from the pool if s has none. Its free space starts at bufLen. */
function outbox(w: WorkerLoop, s: number): Buffer {
  const t = w.t;
  if (t.buf[s] < 0) {
    t.buf[s] = w.bufs.acquire();
    t.bufOff[s] = 0;
    t.bufLen[s] = 0;
  }
  return w.bufs.get(t.buf[s]);
}

/** Free bytes at the end of s's outbox (taking one from the pool, and moving unsent bytes to the front). */
function roomOut(w: WorkerLoop, s: number): number {
  const t = w.t;
  const out = outbox(w, s);
  if (t.bufOff[s] > 0) {
    out.copyWithin(0, t.bufOff[s], t.bufLen[s]);
    t.bufLen[s] -= t.bufOff[s];
    t.bufOff[s] = 0;
  }
  return out.length - t.bufLen[s];
}

/** Copies inbox bytes src[from..to) (src is s's inbox) to the end of s's outbox. */
function appendOut(w: WorkerLoop, s: number, src: Buffer, from: number, to: number): void {
  const out = outbox(w, s);
  primePoolCopy(w, w.http!.inb[s], w.t.buf[s]);
  copyBytes(src, from, to, out, w.t.bufLen[s]);
  w.t.bufLen[s] += to - from;
}

/** The copies about to go from pool buffer i to pool buffer o: tell copyBytes where both are (head.ts). */
function primePoolCopy(w: WorkerLoop, i: number, o: number): void {
  const bufs = w.bufs;
  primeCopy(bufs.get(i), bufs.slabOffset(i), bufs.get(o), bufs.slabOffset(o), bufs.sharedSlab(i, o));
}

function outEmpty(w: WorkerLoop, s: number): boolean {
  return w.t.buf[s] < 0 && w.t.pipe[s] < 0;
}

// ---- the client side --------------------------------------------------------------------------------

function clientProgress(w: WorkerLoop, c: number): void {
  const t = w.t;
  const h = w.http!;
  const gen = t.gen[c];
  for (let turns = 0; t.gen[c] === gen; turns++) {
    if (turns === 64) {
      w.enqueue(c); // fairness, as tcp.ts's READS_PER_TURN
      return;
    }
    switch (t.state[c]) {
      case ST.H_HEAD: {
        if (h.hf[c] & H.PP_WAIT) {
          if (h.ilen[c] > 0) {
            const got = takeHeader(w, c, inbox(w, c), h.ilen[c]);
            if (got < 0) {
              closeClient(w, c, null); // refused: logged and counted; not one byte went anywhere
              return;
            }
            if (got > 0) {
              h.hf[c] &= ~H.PP_WAIT;
              // X-Forwarded-For names the client the balancer saw (a LOCAL header: the socket's peer).
              h.peerText[c] = w.pp!.client[c]?.srcAddr ?? null;
              consumeInbox(w, c, got);
              continue;
            }
          }
        } else if (h.ilen[c] > 0 && parseHead(w, c)) continue;
        if (t.gen[c] !== gen || t.state[c] !== ST.H_HEAD) continue;
        if (!(t.flags[c] & FL.READABLE)) return;
        const before = h.ilen[c];
        const n = readInbox(w, c);
        if (n > 0) {
          // The first byte of a head: its deadline replaces the idle one (the first request's was armed at
          // accept and keeps running: it is not reset by each byte, so a trickled head still gets 408).
          if (before === 0 && h.hf[c] & H.KEPT) {
            h.hf[c] &= ~H.KEPT;
            w.timers.arm(c, w.now + h.o.headerTimeoutMs);
          }
          continue;
        }
        if (n === -E.EAGAIN) return;
        if (n === -E.ENOBUFS) {
          fail(w, c, 431, 'request head over the buffer size');
          return;
        }
        // EOF or error between requests is a normal end; inside a head, the client gave up.
        closeClient(w, c, null);
        return;
      }
      case ST.H_BODY: {
        const b = t.peer[c];
        // Parse what body bytes are here into the outbox first (behind the head, if it has not left yet): a
        // body that is malformed in the bytes that came with its head is refused before the backend sees
        // anything of the request.
        if (h.ilen[c] > 0 && forwardBody(w, c)) continue;
        if (t.state[c] !== ST.H_BODY) continue;
        if (!outEmpty(w, c)) {
          if (b < 0 || t.state[b] !== ST.PROXYING || t.flags[b] & FL.W_BLOCKED) return;
          const f = tcp.flush(w, c, b);
          if (f < 0) {
            fail(w, c, 502, `write to backend: ${errnoName(f)}`);
            return;
          }
          if (f === 0) return;
          continue; // room again: move inbox bytes before reading more
        }
        if (!(t.flags[c] & FL.READABLE)) return;
        if (h.hf[c] & H.RAW) {
          // The rest of a large Content-Length body, by count, client -> pipe -> backend (maybeRaw).
          const r = rawStep(w, c);
          if (r > 0) {
            h.sent[c] += r;
            if (!(h.hf[c] & H.RAW)) requestDone(w, c);
            else w.timers.arm(c, w.now + h.o.idleTimeoutMs);
            continue;
          }
          if (r === -E.EAGAIN) return;
          closeClient(w, c, r === 0 ? null : `read from client: ${errnoName(r)}`); // gave up mid-body
          return;
        }
        const n = readInbox(w, c);
        if (n > 0) {
          w.timers.arm(c, w.now + h.o.idleTimeoutMs);
          continue;
        }
        if (n === -E.EAGAIN || n === -E.ENOBUFS) return; // a full inbox waits for the backend (backpressure)
        closeClient(w, c, n === 0 ? null : `read from client: ${errnoName(n)}`); // gave up mid-body
        return;
      }
      case ST.H_WAIT: {
        // Flush what is left of the request; pipelined bytes wait in the inbox for their turn.
        const b = t.peer[c];
        if (!outEmpty(w, c) && b >= 0 && t.state[b] === ST.PROXYING && !(t.flags[b] & FL.W_BLOCKED)) {
          const f = tcp.flush(w, c, b);
          if (f < 0) fail(w, c, 502, `write to backend: ${errnoName(f)}`);
        }
        return;
      }
      case ST.H_LINGER: {
        // Read and drop until the client closes, so that our response is not destroyed by a RST that
        // closing with unread input would send.
        for (;;) {
          const n = recv(t.fd[c], h.scratch, h.scratch.length);
          if (n > 0) continue;
          if (n === -E.EAGAIN) {
            t.flags[c] &= ~FL.READABLE;
            return;
          }
          closeClient(w, c, null);
          return;
        }
      }
      default:
        return;
    }
  }
}

/** Parses the client's inbox for a head. True when it moved the state on (the caller loops). */
function parseHead(w: WorkerLoop, c: number): boolean {
  const h = w.http!;
  // A head starts here: the client's parser comes from the spares if it has none (a new or idle client).
  const p = h.parsers[c] ?? parser(w, c, PARSER_TYPE.REQUEST);
  const buf = inbox(w, c);
  // The parser has seen none of the inbox yet while in H_HEAD: bytes reach it once, when a head starts.
  const ev = p.execute(buf, h.ilen[c], w.bufs.address(h.inb[c]));
  if (ev & PEV.ERROR) {
    fail(w, c, 400, `malformed request: ${p.errorName()} ${p.errorReason()}`);
    return false;
  }
  if (!(ev & PEV.HEADERS)) {
    // Incomplete: the whole inbox went into the parser; keep it (the head is forwarded from it later).
    if (h.ilen[c] > h.o.maxHeaderSize) {
      fail(w, c, 431, `request head over ${h.o.maxHeaderSize} bytes`);
      return false;
    }
    // llhttp keeps its state: feed only new bytes next time. Reset and re-feed is simpler and safe since
    // heads are small; mark the parser as fresh again.
    p.reset();
    return false;
  }
  return startRequest(w, c, p.headEnd, ev);
}

function startRequest(w: WorkerLoop, c: number, headEnd: number, ev: number): boolean {
  const t = w.t;
  const h = w.http!;
  const p = h.parsers[c]!;
  const buf = inbox(w, c);
  if (headEnd > h.o.maxHeaderSize) return fail(w, c, 431, `request head over ${h.o.maxHeaderSize} bytes`);
  if (!versionOk(p)) return fail(w, c, 400, `unsupported version HTTP/${p.httpMajor}.${p.httpMinor}`);
  if (p.method === METHOD.CONNECT) return fail(w, c, 501, 'CONNECT is not supported');
  const info = h.info;
  if (scanHead(buf, 0, headEnd, info) === HEAD_ERR.TOO_MANY_FIELDS) return fail(w, c, 431, 'too many header fields');
  const err = requestHeadError(info, p.httpMinor);
  if (err === HEAD_ERR.NO_HOST) return fail(w, c, 400, 'HTTP/1.1 request without Host');
  if (err === HEAD_ERR.MANY_HOSTS) return fail(w, c, 400, 'more than one Host');
  if (info.transferEncodings > 0 && !(info.transferEncodings === 1 && info.chunkedOnly)) {
    return fail(w, c, 501, 'transfer coding other than chunked');
  }
  if (h.o.maxBodySize > 0 && p.flags & HF.CONTENT_LENGTH && p.contentLength > h.o.maxBodySize) {
    return fail(w, c, 413, `Content-Length ${p.contentLength} over ${h.o.maxBodySize}`);
  }
  w.timers.disarm(c);
  t.ctr[CTR.REQUESTS]++;
  let hf = 0;
  if (!p.shouldKeepAlive()) hf |= H.CLOSE_AFTER;
  else if (p.httpMinor === 0) hf |= H.KA10;
  if (p.upgrade) hf |= H.UPGRADING;
  if (p.method === METHOD.HEAD) hf |= H.HEAD_REQ;
  h.hf[c] = hf;
  h.sent[c] = 0;

  if (h.peerText[c] === null) {
    const a = peerAddress(t.fd[c]);
    h.peerText[c] = a && a.family !== 'unix' ? a.host : 'unknown';
  }
  const out = outbox(w, c);
  const o = h.requestOpts;
  if (o.forwarded !== null) o.forwarded.clientAddress = h.peerText[c]!;
  o.upgrading = (hf & H.UPGRADING) !== 0;
  // Keep the backend connection alive for HTTP/1.0 requests too (HTTP/1.1 needs nothing said).
  o.connection = p.httpMinor === 0 ? 'keep-alive' : null;
  primePoolCopy(w, h.inb[c], t.buf[c]);
  const n = writeHead(buf, 0, info, out, o);
  if (n < 0) return fail(w, c, 431, 'request head too large to forward');
  t.bufLen[c] = n;
  consumeInbox(w, c, headEnd);

  const b = takeBackend(w, c, false);
  if (b < 0) return false; // fail() answered already
  if (h.hf[b] & H.POOLED && ev & PEV.MESSAGE && IDEMPOTENT.has(p.method)) {
    // A pooled connection may have been closed by the backend a moment ago: keep the request to replay it
    // once on a new connection if so (nginx's proxy_next_upstream, HAProxy's retry-on conn-failure). The
    // copy is a third buffer for c only while b holds none (it goes at b's first response byte), so the
    // pool, two buffers per slot, is never used up here (invariant 5); the check is a guard, and without a
    // copy a pooled connection found closed is answered 502.
    const r = w.bufs.acquire();
    if (r >= 0) {
      primePoolCopy(w, t.buf[c], r);
      copyBytes(out, 0, n, w.bufs.get(r), 0);
      h.retry[c] = r;
      h.retryLen[c] = n;
    }
  }
  if (ev & PEV.MESSAGE || ev & PEV.UPGRADE) requestDone(w, c);
  else {
    t.state[c] = ST.H_BODY;
    w.timers.arm(c, w.now + h.o.idleTimeoutMs); // the body's inactivity deadline, moved on at each read
    maybeRaw(w, c); // a large Content-Length body with none of it read yet moves by splice
  }
  return true;
}

/**
 * Parses as many inbox bytes as the outbox has room for and copies them (up to the message's end) into it.
 * True when it moved bytes or ended the request; false when the outbox is full or the request failed.
 */
function forwardBody(w: WorkerLoop, c: number): boolean {
  const t = w.t;
  const h = w.http!;
  const p = h.parsers[c]!;
  const n = Math.min(roomOut(w, c), h.ilen[c]);
  if (n === 0) {
    if (t.bufLen[c] === 0) {
      w.bufs.release(t.buf[c]);
      t.buf[c] = -1;
    }
    return false;
  }
  const buf = inbox(w, c);
  const ev = p.execute(buf, n, w.bufs.address(h.inb[c]));
  if (ev & PEV.ERROR) {
    fail(w, c, 400, `malformed request body: ${p.errorName()} ${p.errorReason()}`);
    return false;
  }
  const k = p.consumed;
  h.sent[c] += k;
  if (h.o.maxBodySize > 0 && h.sent[c] > h.o.maxBodySize) {
    fail(w, c, 413, `request body over ${h.o.maxBodySize} bytes`);
    return false;
  }
  appendOut(w, c, buf, 0, k);
  consumeInbox(w, c, k);
  if (ev & PEV.MESSAGE) requestDone(w, c);
  else maybeRaw(w, c);
  return k > 0 || (ev & PEV.MESSAGE) !== 0;
}

function requestDone(w: WorkerLoop, c: number): void {
  const t = w.t;
  const h = w.http!;
  h.hf[c] |= H.REQ_DONE;
  t.state[c] = ST.H_WAIT;
  w.timers.disarm(c); // a body's inactivity deadline, if it had one
  const b = t.peer[c];
  // The backend has backend-timeout to start answering (nginx's proxy_read_timeout, HAProxy's timeout
  // server). A backend still connecting keeps its connect deadline; finishConnect() starts this one.
  if (b >= 0 && t.state[b] === ST.PROXYING) w.timers.arm(b, w.now + h.o.backendTimeoutMs);
  if (b >= 0 && t.state[b] === ST.PROXYING && !outEmpty(w, c)) {
    const f = tcp.flush(w, c, b);
    if (f < 0) fail(w, c, 502, `write to backend: ${errnoName(f)}`);
  }
}

// ---- backends: pool and connect ------------------------------------------------------------------------

/** A backend connection for client c: from the pool unless `fresh`, else a new one. -1 after fail(). */
function takeBackend(w: WorkerLoop, c: number, fresh: boolean): number {
  const t = w.t;
  const h = w.http!;
  while (!fresh && h.idleCount > 0) {
    h.idleCount--;
    const b = h.idle[h.idleCount];
    if (t.gen[b] !== h.idleGen[h.idleCount] || t.state[b] !== ST.IDLE) continue; // closed while idle
    t.state[b] = ST.PROXYING;
    pair(w, c, b);
    h.hf[b] |= H.POOLED;
    t.ctr[CTR.REUSED]++;
    return b;
  }
  const fd = socket(w.backendFamily, SOCK.STREAM | SOCK.NONBLOCK | SOCK.CLOEXEC, 0);
  if (fd < 0) {
    fail(w, c, 503, `backend ${w.backendText}: socket: ${errnoName(fd)}`);
    return -1;
  }
  if (t.free < 1) {
    close(fd);
    fail(w, c, 503, 'connection table full: no slot left for a backend connection');
    return -1;
  }
  if (w.backendIsTcp) setNoDelay(fd);
  const b = t.acquire(KIND.BACKEND, ST.CONNECTING, fd);
  pair(w, c, b);
  if (epollAdd(w.epfd, fd, CONN_EVENTS, b, t.gen[b]) < 0) {
    fail(w, c, 503, 'epoll_ctl ADD backend');
    return -1;
  }
  w.timers.arm(b, w.now + h.o.backendTimeoutMs);
  const r = connect(fd, w.backendSa, w.backendSa.length);
  if (r === 0) {
    t.state[b] = ST.PROXYING; // unix sockets connect at once
    if (!sentProxyHeader(w, c, b)) return -1;
    connectDeadlineOver(w, c, b);
  } else if (r !== -E.EINPROGRESS) {
    connectFailed(w, b, r);
    return -1;
  }
  return b;
}

function pair(w: WorkerLoop, c: number, b: number): void {
  const t = w.t;
  const h = w.http!;
  t.peer[c] = b;
  t.peer[b] = c;
  h.hf[b] = H.IN_HEAD;
  h.rawLeft[b] = 0;
  const rp = parser(w, b, PARSER_TYPE.RESPONSE);
  rp.noBody = (h.hf[c] & H.HEAD_REQ) !== 0;
}

function finishConnect(w: WorkerLoop, b: number): void {
  const err = sockError(w.t.fd[b]);
  if (err !== 0) {
    connectFailed(w, b, err > 0 ? -err : err);
    return;
  }
  w.t.state[b] = ST.PROXYING;
  const c = w.t.peer[b];
  if (c >= 0 && !sentProxyHeader(w, c, b)) return;
  connectDeadlineOver(w, c, b);
  if (c >= 0) clientProgress(w, c);
}

/** --send-proxy: the header goes first on a new backend connection. False after fail() when it could not. */
function sentProxyHeader(w: WorkerLoop, c: number, b: number): boolean {
  if (w.pp === null || w.pp.o.send === 0) return true;
  const r = sendHeader(w, c, b);
  if (r === 0) return true;
  connectFailed(w, b, r);
  return false;
}

/** The connect deadline is over: the response deadline runs from the request's end (already, or later). */
function connectDeadlineOver(w: WorkerLoop, c: number, b: number): void {
  const h = w.http!;
  if (c >= 0 && h.hf[c] & H.REQ_DONE) w.timers.arm(b, w.now + h.o.backendTimeoutMs);
  else w.timers.disarm(b);
}

function connectFailed(w: WorkerLoop, b: number, err: number): void {
  const t = w.t;
  t.ctr[CTR.CONNECT_ERRORS]++;
  const c = t.peer[b];
  // Refused: the backend is there but not taking connections (502, as nginx). Unreachable: 503.
  const status = err === -E.ECONNREFUSED ? 502 : 503;
  if (c >= 0) fail(w, c, status, `backend ${w.backendText}: connect: ${errnoName(err)}`);
  else w.closeSlot(b);
}

// ---- the backend side (responses) ------------------------------------------------------------------------

function backendProgress(w: WorkerLoop, b: number): void {
  const t = w.t;
  const h = w.http!;
  const gen = t.gen[b];
  for (let turns = 0; t.gen[b] === gen && t.state[b] === ST.PROXYING; turns++) {
    if (turns === 64) {
      w.enqueue(b);
      return;
    }
    const c = t.peer[b];
    if (c < 0) return;
    // Parse what is in the inbox into the outbox before writing, so that a head and the body bytes that
    // came with it leave in one send. A head is only parsed into an empty outbox (writeHead starts at 0).
    if (h.ilen[b] > 0 && !(h.hf[b] & H.RES_DONE) && (outEmpty(w, b) || !(h.hf[b] & H.IN_HEAD))) {
      if (parseResponse(w, b, c)) continue;
      if (t.gen[b] !== gen) return;
    }
    if (!outEmpty(w, b)) {
      if (t.flags[c] & FL.W_BLOCKED) return;
      const f = tcp.flush(w, b, c);
      if (f < 0) {
        closeClient(w, c, `write to client: ${errnoName(f)}`);
        return;
      }
      if (f === 0) return;
      continue;
    }
    if (h.hf[b] & H.RES_DONE) {
      finishExchange(w, c, b);
      return;
    }
    if (!(t.flags[b] & FL.READABLE)) return;
    if (h.hf[b] & H.RAW) {
      const r = rawStep(w, b);
      if (r > 0) {
        // Ended at its length: reusable as decided at the head (the parser is reset for the next one).
        if (!(h.hf[b] & H.RAW)) h.hf[b] |= H.RES_DONE;
        w.timers.arm(b, w.now + h.o.backendTimeoutMs);
        continue;
      }
      if (r === -E.EAGAIN) return;
      backendFailed(w, b, c, r === 0 ? 'backend closed before the response ended' : `read from backend: ${errnoName(r)}`);
      return;
    }
    const n = readInbox(w, b);
    if (n > 0) {
      // Once a response has started, backend-timeout bounds each wait for more of it: a backend that
      // stalls mid-response, or a client that stops reading it (no room, so no read), is cut off then.
      w.timers.arm(b, w.now + h.o.backendTimeoutMs);
      if (!(h.hf[b] & H.RESP_BYTES)) {
        h.hf[b] |= H.RESP_BYTES;
        dropRetryCopy(h, c, w.bufs);
      }
      continue;
    }
    if (n === -E.EAGAIN) return;
    if (n === -E.ENOBUFS) {
      backendFailed(w, b, c, 'response head over the buffer size');
      return;
    }
    if ((n === 0 || n === -E.ECONNRESET) && !(h.hf[b] & H.RESP_BYTES) && h.retry[c] >= 0) {
      replay(w, c, b);
      return;
    }
    if (n === 0) {
      const rp = h.parsers[b]!;
      if (!(h.hf[b] & H.IN_HEAD) && rp.messageNeedsEof() && rp.finish() & PEV.MESSAGE) {
        h.hf[b] = (h.hf[b] | H.RES_DONE) & ~H.REUSABLE; // ended by close: not reusable
        continue;
      }
      backendFailed(w, b, c, 'backend closed before the response ended');
      return;
    }
    backendFailed(w, b, c, `read from backend: ${errnoName(n)}`);
    return;
  }
}

/** Parses the backend's inbox: the head (rewritten into the outbox) or body bytes (copied). */
function parseResponse(w: WorkerLoop, b: number, c: number): boolean {
  const h = w.http!;
  const rp = h.parsers[b]!;
  const buf = inbox(w, b);
  if (h.hf[b] & H.IN_HEAD) {
    // One execute for the head and the body bytes that fit in the outbox behind the rewritten head (which
    // is at most the head plus a Connection line). An incomplete head is parsed again from its start when
    // more has come.
    const limit = Math.min(h.ilen[b], buf.length - HEAD_SLACK);
    const ev = rp.executeThrough(buf, limit, w.bufs.address(h.inb[b]));
    if (ev & PEV.ERROR) {
      backendFailed(w, b, c, `invalid response: ${rp.errorName()} ${rp.errorReason()}`);
      return false;
    }
    if (!(ev & PEV.HEADERS)) {
      if (h.ilen[b] > h.o.maxHeaderSize) backendFailed(w, b, c, 'response head too large');
      else rp.reset();
      return false;
    }
    return responseHead(w, b, c, rp.headEnd, rp.consumed, ev);
  }
  const n = Math.min(h.ilen[b], roomOut(w, b));
  if (n === 0) return false; // the outbox is full: it is written first
  const ev = rp.execute(buf, n, w.bufs.address(h.inb[b]));
  if (ev & PEV.ERROR) {
    backendFailed(w, b, c, `invalid response body: ${rp.errorName()} ${rp.errorReason()}`);
    return false;
  }
  const k = rp.consumed;
  appendOut(w, b, buf, 0, k);
  consumeInbox(w, b, k);
  if (ev & PEV.MESSAGE) responseEnded(w, b);
  else maybeRaw(w, b);
  return k > 0 || (ev & PEV.MESSAGE) !== 0;
}

/**
 * With the inbox empty in the middle of a Content-Length body and at least RAW_MIN bytes to come, moves
 * the rest by count: llhttp has already checked the framing (the length), so the bytes need no parser.
 * llhttp's content_length is what is left of the body at this point. Both ways: `s` is a backend (its
 * response body) or a client (its request body); the parser is reset before its next message.
 */
function maybeRaw(w: WorkerLoop, s: number): void {
  const h = w.http!;
  if (w.spliceMode === SPLICE_MODE.OFF || h.ilen[s] > 0) return;
  const p = h.parsers[s]!;
  if ((p.flags & (HF.CONTENT_LENGTH | HF.CHUNKED)) !== HF.CONTENT_LENGTH || p.contentLength < RAW_MIN) return;
  h.rawLeft[s] = p.contentLength;
  h.hf[s] |= H.RAW;
}

/**
 * One step of a RAW body: splice up to a pipe's worth (never past the body's end) from slot b into its
 * outbox pipe. Bytes moved (> 0), -EAGAIN, 0 at EOF, or -errno. When the count reaches 0 (H.RAW cleared)
 * the message has ended exactly where its Content-Length said: a backend stays reusable, a client goes on
 * to wait for its response.
 */
function rawStep(w: WorkerLoop, b: number): number {
  const t = w.t;
  const h = w.http!;
  const pi = w.pipes.acquire();
  let n: number;
  if (pi >= 0) {
    n = splice(t.fd[b], w.pipes.wfd[pi], Math.min(h.rawLeft[b], w.pipes.size), SPLICE_F.MOVE | SPLICE_F.NONBLOCK);
    if (n > 0) {
      t.pipe[b] = pi;
      t.pipeLen[b] = n;
    } else {
      w.pipes.release(pi, false);
    }
  } else {
    // No pipe to be had: copy this step through the outbox buffer instead.
    const out = outbox(w, b);
    n = recv(t.fd[b], out, Math.min(h.rawLeft[b], out.length));
    if (n > 0) t.bufLen[b] = n;
    else {
      w.bufs.release(t.buf[b]);
      t.buf[b] = -1;
    }
  }
  if (n === -E.EAGAIN) t.flags[b] &= ~FL.READABLE;
  if (n <= 0) return n;
  h.rawLeft[b] -= n;
  if (h.rawLeft[b] === 0) h.hf[b] &= ~H.RAW; // the body ended at its length; the caller ends the message
  return n;
}

/**
 * The response head buf[0..headEnd) is complete and llhttp parsed up to `parsed` (the head, and the body
 * bytes that came with it, up to the message's end): relay the head rewritten, then those body bytes.
 */
function responseHead(w: WorkerLoop, b: number, c: number, headEnd: number, parsed: number, ev: number): boolean {
  const t = w.t;
  const h = w.http!;
  const rp = h.parsers[b]!;
  const buf = inbox(w, b);
  const status = rp.statusCode;
  const info = h.info;
  if (scanHead(buf, 0, headEnd, info) !== HEAD_ERR.NONE) {
    backendFailed(w, b, c, 'too many header fields in the response');
    return false;
  }
  const upgraded = status === 101 && (h.hf[c] & H.UPGRADING) !== 0;
  if (status === 101 && !upgraded) {
    backendFailed(w, b, c, '101 to a request that did not ask to upgrade');
    return false;
  }
  const interim = status < 200 && !upgraded;
  if (!interim && !upgraded) {
    // A response delimited by the backend's close cannot be delimited for the client either. (A backend
    // that only says Connection: close loses its connection, not the client's.)
    const eof = rp.messageNeedsEof();
    if (eof) h.hf[c] |= H.CLOSE_AFTER;
    // An upgrade request answered without 101 ends the client connection after it: the client may already
    // have sent bytes of the protocol it asked for, which must not be read as a next request, and it must
    // expect the close anyway.
    if (h.hf[c] & H.UPGRADING) h.hf[c] |= H.CLOSE_AFTER;
    // A response that comes before the request has been read whole (a backend refusing an upload early):
    // the rest of that body would be read as the next request, so the client connection ends here. And
    // while draining, every response says Connection: close, as HAProxy does on a soft stop.
    if (!(h.hf[c] & H.REQ_DONE) || w.draining) h.hf[c] |= H.CLOSE_AFTER;
    if (!eof && rp.shouldKeepAlive()) h.hf[b] |= H.REUSABLE;
  }
  const closeAfter = (h.hf[c] & H.CLOSE_AFTER) !== 0;
  const out = outbox(w, b);
  const o = h.responseOpts;
  o.upgrading = upgraded;
  o.connection = interim ? null : closeAfter ? 'close' : h.hf[c] & H.KA10 ? 'keep-alive' : null;
  primePoolCopy(w, h.inb[b], t.buf[b]);
  const n = writeHead(buf, 0, info, out, o);
  if (n < 0) {
    backendFailed(w, b, c, 'response head too large to relay');
    return false;
  }
  // writeHead writes from offset 0 of `out`: the outbox was empty (backendProgress flushes it before it
  // parses anything more).
  t.bufLen[b] = n;
  h.hf[c] |= H.HEAD_OUT;
  // The body bytes llhttp parsed with the head go right behind it (the outbox has room: see HEAD_SLACK).
  if (parsed > headEnd) appendOut(w, b, buf, headEnd, parsed);
  consumeInbox(w, b, parsed);
  h.hf[b] &= ~H.IN_HEAD;
  if (upgraded) {
    startTunnel(w, c, b);
    return false;
  }
  if (interim) {
    rp.reset(); // the final response is a new message for llhttp, and its head comes next
    h.hf[b] |= H.IN_HEAD;
    return true;
  }
  // A head with no body to follow (204, 304, HEAD, Content-Length: 0) ended its message in that execute.
  if (ev & PEV.MESSAGE) responseEnded(w, b);
  else maybeRaw(w, b);
  return true;
}

function responseEnded(w: WorkerLoop, b: number): void {
  const h = w.http!;
  h.hf[b] |= H.RES_DONE;
  // Bytes after the end of the response: the backend is out of step; never reuse it.
  if (h.ilen[b] > 0) {
    h.hf[b] &= ~H.REUSABLE;
    dropInbox(w, b);
  }
}

/** The response went out whole: the backend to the pool (or closed), the client to its next request. */
function finishExchange(w: WorkerLoop, c: number, b: number): void {
  const t = w.t;
  const h = w.http!;
  // With --send-proxy a connection's PROXY header names one client, so it is never shared (HAProxy marks
  // such connections private too): it closes after its response.
  const reusable =
    (h.hf[b] & H.REUSABLE) !== 0 && (h.hf[c] & H.REQ_DONE) !== 0 && (w.pp === null || w.pp.o.send === 0);
  t.peer[c] = -1;
  t.peer[b] = -1;
  w.timers.disarm(b);
  if (reusable && h.idleCount < MAX_IDLE_BACKENDS && !w.draining) {
    t.state[b] = ST.IDLE;
    t.flags[b] &= ~(FL.READABLE | FL.W_BLOCKED);
    dropInbox(w, b);
    h.idle[h.idleCount] = b;
    h.idleGen[h.idleCount] = t.gen[b];
    h.idleCount++;
  } else {
    w.closeSlot(b);
  }
  if (h.hf[c] & H.CLOSE_AFTER || w.draining) {
    linger(w, c);
    return;
  }
  t.state[c] = ST.H_HEAD;
  if (h.ilen[c] > 0) {
    h.parsers[c]!.reset();
    h.hf[c] = 0;
    w.timers.arm(c, w.now + h.o.headerTimeoutMs); // a pipelined request is waiting
  } else {
    h.dropParser(c); // idle: the next head takes one again
    h.hf[c] = H.KEPT;
    w.timers.arm(c, w.now + h.o.idleTimeoutMs); // nginx's keepalive_timeout
  }
  if (h.ilen[c] > 0 || t.flags[c] & FL.READABLE) w.enqueue(c);
}

function startTunnel(w: WorkerLoop, c: number, b: number): void {
  const t = w.t;
  const h = w.http!;
  w.timers.disarm(b);
  tcp.tunnelDeadline(w, c);
  // Bytes already read past the heads belong to the tunnel: queue them behind what is in each outbox.
  for (const s of [b, c]) {
    if (h.ilen[s] === 0) continue;
    if (roomOut(w, s) < h.ilen[s]) {
      closeClient(w, c, 'upgrade: more early tunnel bytes than a buffer holds');
      return;
    }
    appendOut(w, s, inbox(w, s), 0, h.ilen[s]);
    dropInbox(w, s);
  }
  t.flags[c] |= FL.TUNNEL;
  t.flags[b] |= FL.TUNNEL;
  t.state[c] = ST.PROXYING;
  t.state[b] = ST.PROXYING;
  const gen = t.gen[c];
  tcp.pump(w, b);
  if (t.gen[c] === gen) tcp.pump(w, c);
}

// ---- failures ---------------------------------------------------------------------------------------------

/**
 * Ends the client's exchange with a generated response when none of a response has gone out yet, or by
 * closing the client (with RST) when one has. Its backend, if any, is closed: its framing is now in doubt.
 * Returns false, for callers that return it.
 */
function fail(w: WorkerLoop, c: number, status: GeneratedStatus, why: string): false {
  const t = w.t;
  const h = w.http!;
  const b = t.peer[c];
  if (b >= 0) {
    t.peer[c] = -1;
    w.closeSlot(b);
  }
  // The client's errors (4xx, and 501 for what it asked that the proxy does not do) are info; the backend's
  // and the proxy's own (502, 503, 504) are warn, what an operator at --log-level warn must see.
  const level = status >= 502 ? LEVEL.warn : LEVEL.info;
  if (h.hf[c] & H.HEAD_OUT) {
    // No status can follow part of a response: a reset, so that the client cannot take what it got for a
    // whole response, and a line that says so rather than naming a status never sent.
    closeClient(w, c, `response cut off after part of it: ${why}`, level, `cut${status}`);
    return false;
  }
  w.log.limited(level, `http${status}`, `${status}: ${why}`);
  t.ctr[CTR.GENERATED]++;
  // Whatever was queued for the backend is dropped; the response goes straight to the client.
  if (t.buf[c] >= 0) {
    w.bufs.release(t.buf[c]);
    t.buf[c] = -1;
  }
  const r = generated(status, true);
  send(t.fd[c], r, r.length, MSG.NOSIGNAL);
  linger(w, c);
  return false;
}

/** Sends FIN and keeps reading (and dropping) until the client closes, for at most the header timeout. */
function linger(w: WorkerLoop, c: number): void {
  const t = w.t;
  const h = w.http!;
  dropInbox(w, c);
  dropRetryCopy(h, c, w.bufs); // the request was answered: nothing is left to replay
  shutdown(t.fd[c], SHUT.WR);
  t.state[c] = ST.H_LINGER;
  w.timers.arm(c, w.now + h.o.headerTimeoutMs);
  if (t.flags[c] & FL.READABLE) w.enqueue(c);
}

/** The backend failed mid-exchange: 502 if the client has seen nothing of a response, else cut it off. */
function backendFailed(w: WorkerLoop, b: number, c: number, why: string): void {
  fail(w, c, 502, `backend ${w.backendText}: ${why}`);
}

/**
 * The pooled connection c's request went to was closed by the backend before a byte of the response: send
 * the kept copy once more on a new connection. The copy is used up, so a second failure is a 502.
 */
function replay(w: WorkerLoop, c: number, b: number): void {
  const t = w.t;
  const h = w.http!;
  w.log.debug(`pooled backend connection ${t.describe(b)} was closed; replaying the request on a new one`);
  t.peer[c] = -1;
  w.closeSlot(b);
  const r = h.retry[c];
  h.retry[c] = -1;
  if (t.buf[c] >= 0) {
    w.bufs.release(t.buf[c]);
    t.buf[c] = -1;
  }
  t.buf[c] = r; // the copy becomes the outbox
  t.bufOff[c] = 0;
  t.bufLen[c] = h.retryLen[c];
  const nb = takeBackend(w, c, true);
  if (nb < 0) return;
  requestDone(w, c);
}

/**
 * Closes client c and its backend (if any) and frees their HTTP state. With a `why`, an abortive close (a
 * reset), counted and logged at `level` under the rate-limit `key`.
 */
export function closeClient(w: WorkerLoop, c: number, why: string | null, level: number = LEVEL.info, key = 'http-io'): void {
  const t = w.t;
  if (why !== null) {
    t.ctr[CTR.IO_ERRORS]++;
    w.log.limited(level, key, `closed ${t.describe(c)}: ${why}`);
  }
  const b = t.peer[c];
  if (b >= 0) w.closeSlot(b, why !== null);
  t.ctr[CTR.ACTIVE]--;
  w.closeSlot(c, why !== null);
}
