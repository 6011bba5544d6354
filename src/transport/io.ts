// The one byte path. Every byte a protocol moves goes through a function of this file: reads into an inbox
// or a new outbox, splices into a pipe, writes of an outbox to the peer, a FIN, a drop of unwanted input.
// Protocol code never calls recv, send, splice or shutdown itself (invariant 13).
//
// The transport seam is rx/tx/spliceFrom/spliceTo/fin below: each tests the slot's `xprt` column, and PLAIN
// (the socket itself) is the only transport today. TLS will be a second case there (its records decrypted
// into and encrypted from the same boxes), and so will a fault-injection gate, chosen per slot by the same
// small-integer test, not by a list of filters walked per read. A slot that is not PLAIN never splices.
//
// Edge-triggered bookkeeping (invariant 4): a read that returns less than it had room for clears READABLE
// without the read that would only say EAGAIN (new data raises a new edge), except once PEER_DONE is set:
// a FIN or RST edge may then already have been consumed with the data, so only a read returning 0 or an
// error ends the stream. Splice reads always go on to EAGAIN: a pipe can take less than the socket holds.

import { CTR, FE, SV, feBase, svBase } from '../core/counters.js';
import type { WorkerContext } from '../core/context.js';
import type { ConnTable } from '../core/table.js';
import { FL, KIND, XPRT } from '../core/types.js';
import {
  E, EPOLL, MSG, SHUT, SPLICE_F, recv, recvAt, send, sendAt, shutdown, splice, sslRead, sslReadBuffer, sslShutdown, sslWrite, sslWriteBuffer,
} from '../sys/index.js';
import { dropInbox, dropOutbox, takeInbox, takeOutbox } from './boxes.js';
import { sslOf } from './ssl-slots.js';

/** The events every connection is registered for, once, for its whole life (no EPOLL_CTL_MOD). */
export const CONN_EVENTS = (EPOLL.IN | EPOLL.OUT | EPOLL.RDHUP | EPOLL.ET) >>> 0;
/** Events after which a read will say something: data, EOF or an error. */
export const READ_EVENTS = EPOLL.IN | EPOLL.RDHUP | EPOLL.HUP | EPOLL.ERR;
/** Events that end a connect() or say the send queue has room again (or never will). */
export const WRITE_EVENTS = EPOLL.OUT | EPOLL.HUP | EPOLL.ERR;
/** Events that mean the peer is gone or going: from then on a read goes on until 0 or an error. */
export const END_EVENTS = EPOLL.RDHUP | EPOLL.HUP | EPOLL.ERR;

/** --splice, per frontend: OFF copies, ON splices every read, AUTO splices a direction once it moves bulk. */
export const SPLICE_MODE = { OFF: 0, ON: 1, AUTO: 2 } as const;

// In auto mode a direction switches to splice after a read that fills a whole buffer (a bulk transfer), and
// back to copying after a splice that moves less than this (small messages: read+send is cheaper than two
// splices, see docs/benchmarks.md).
const SPLICE_BACK_BELOW = 4096;
const SPLICE_FLAGS = SPLICE_F.MOVE | SPLICE_F.NONBLOCK;

// Where a lingering client's input, and the byte that tells whether an idle connection is still healthy,
// are read to be thrown away. Per thread (module state is per thread).
const scratch = Buffer.allocUnsafeSlow(16384);

/** Notes what an epoll event says about reading slot s: READABLE, and PEER_DONE once its peer is going. */
export function noteEvents(t: ConnTable, s: number, events: number): void {
  if (events & READ_EVENTS) t.flags[s] |= events & END_EVENTS ? FL.READABLE | FL.PEER_DONE : FL.READABLE;
}

/** True, with W_BLOCKED cleared, when `events` lets a blocked slot s take more bytes. */
export function unblocked(t: ConnTable, s: number, events: number): boolean {
  if (!(events & WRITE_EVENTS) || !(t.flags[s] & FL.W_BLOCKED)) return false;
  t.flags[s] &= ~FL.W_BLOCKED;
  return true;
}

/** The short-read rule (above): true when a read of n bytes into `room` cleared READABLE. */
function shortRead(t: ConnTable, s: number, n: number, room: number): boolean {
  // SSL_read returns a record at a time, whatever the socket holds: a TLS slot reads on to EAGAIN.
  if (n < room && !(t.flags[s] & FL.PEER_DONE) && t.xprt[s] === XPRT.PLAIN) {
    t.flags[s] &= ~FL.READABLE;
    return true;
  }
  return false;
}

// ---- the seam ------------------------------------------------------------------------------------------

function rx(t: ConnTable, s: number, addr: number, len: number): number {
  if (t.xprt[s] === XPRT.PLAIN) return recvAt(t.fd[s], addr, len);
  if (t.xprt[s] === XPRT.TLS) return sslRead(sslOf[s], addr, len);
  return noTransport(t, s);
}

function rxBuffer(t: ConnTable, s: number, buf: Buffer, len: number): number {
  if (t.xprt[s] === XPRT.PLAIN) return recv(t.fd[s], buf, len);
  if (t.xprt[s] === XPRT.TLS) return sslReadBuffer(sslOf[s], buf, len);
  return noTransport(t, s);
}

function tx(t: ConnTable, s: number, addr: number, len: number): number {
  if (t.xprt[s] === XPRT.PLAIN) return sendAt(t.fd[s], addr, len, MSG.NOSIGNAL);
  if (t.xprt[s] === XPRT.TLS) return sslWrite(sslOf[s], addr, len);
  return noTransport(t, s);
}

function txBuffer(t: ConnTable, s: number, buf: Uint8Array, len: number): number {
  if (t.xprt[s] === XPRT.PLAIN) return send(t.fd[s], buf, len, MSG.NOSIGNAL);
  if (t.xprt[s] === XPRT.TLS) return sslWriteBuffer(sslOf[s], buf, len);
  return noTransport(t, s);
}

/** splice(2) from slot s's socket into a pipe. */
function spliceFrom(t: ConnTable, s: number, pipeFd: number, len: number): number {
  if (t.xprt[s] === XPRT.PLAIN) return splice(t.fd[s], pipeFd, len, SPLICE_FLAGS);
  return noTransport(t, s);
}

/** splice(2) from a pipe into slot s's socket. */
function spliceTo(t: ConnTable, s: number, pipeFd: number, len: number): number {
  if (t.xprt[s] === XPRT.PLAIN) return splice(pipeFd, t.fd[s], len, SPLICE_FLAGS);
  return noTransport(t, s);
}

/** Whether slot s and its peer are both plain sockets: only then can bytes splice from one to the other. */
function plainPair(t: ConnTable, s: number): boolean {
  const p = t.peer[s];
  return t.xprt[s] === XPRT.PLAIN && (p < 0 || t.xprt[p] === XPRT.PLAIN);
}

function noTransport(t: ConnTable, s: number): never {
  throw new Error(`slot ${s}: no transport ${t.xprt[s]}`);
}

// ---- reads ------------------------------------------------------------------------------------------------

/**
 * Reads from s into a new outbox buffer: bytes read, 0 at EOF, or -errno. In AUTO mode a read that fills the
 * whole buffer switches this direction to splice (FL.SPLICE).
 */
export function readOut(ctx: WorkerContext, s: number, spliceMode: number): number {
  const t = ctx.t;
  const bufs = ctx.bufs;
  const bi = bufs.acquire(); // never -1: the pool holds a buffer per box
  const size = bufs.size;
  const n = rx(t, s, bufs.address(bi), size);
  if (n <= 0) {
    bufs.release(bi);
    return n;
  }
  t.buf[s] = bi;
  t.bufOff[s] = 0;
  t.bufLen[s] = n;
  if (!shortRead(t, s, n, size) && spliceMode === SPLICE_MODE.AUTO && plainPair(t, s)) t.flags[s] |= FL.SPLICE;
  return n;
}

/**
 * Splices from s into a new outbox pipe: bytes moved, 0 at EOF, or -errno. With no pipe to be had (pool
 * used up, or no fds) it reads into a buffer instead. In AUTO mode a small splice switches back to copying.
 */
export function spliceOut(ctx: WorkerContext, s: number, spliceMode: number): number {
  const t = ctx.t;
  const pipes = ctx.pipes;
  const pi = pipes.acquire();
  if (pi < 0) return readOut(ctx, s, spliceMode);
  const n = spliceFrom(t, s, pipes.wfd[pi], pipes.size);
  if (n <= 0) {
    pipes.release(pi, false);
    return n;
  }
  t.pipe[s] = pi;
  t.pipeLen[s] = n;
  if (spliceMode === SPLICE_MODE.AUTO && n < SPLICE_BACK_BELOW) t.flags[s] &= ~FL.SPLICE;
  return n;
}

/**
 * Reads from s into its inbox, up to `limit` bytes in it (the buffer's size when -1): bytes read, 0 at EOF,
 * -EAGAIN (READABLE cleared), -errno; -ENOBUFS when the inbox is full. An inbox left empty is dropped.
 */
export function readInbox(ctx: WorkerContext, s: number, limit = -1): number {
  const t = ctx.t;
  const buf = takeInbox(ctx, s);
  const room = (limit < 0 ? buf.length : limit) - t.ilen[s];
  if (room <= 0) return -E.ENOBUFS;
  const n = rx(t, s, ctx.bufs.address(t.inb[s]) + t.ilen[s], room);
  if (n > 0) {
    t.ilen[s] += n;
    shortRead(t, s, n, room);
  } else if (n === -E.EAGAIN) {
    t.flags[s] &= ~FL.READABLE;
  }
  if (t.ilen[s] === 0) dropInbox(ctx, s);
  return n;
}

/**
 * Reads at most `max` bytes from s into its (empty) outbox, for a body whose length is known: a pipe by
 * splice when one can be had, else the outbox buffer. Bytes moved (> 0), 0 at EOF, -EAGAIN (READABLE
 * cleared), or -errno.
 */
export function readCounted(ctx: WorkerContext, s: number, max: number): number {
  const t = ctx.t;
  const pi = plainPair(t, s) ? ctx.pipes.acquire() : -1;
  let n: number;
  if (pi >= 0) {
    n = spliceFrom(t, s, ctx.pipes.wfd[pi], Math.min(max, ctx.pipes.size));
    if (n > 0) {
      t.pipe[s] = pi;
      t.pipeLen[s] = n;
    } else {
      ctx.pipes.release(pi, false);
    }
  } else {
    const out = takeOutbox(ctx, s);
    n = rx(t, s, ctx.bufs.address(t.buf[s]), Math.min(max, out.length));
    if (n > 0) t.bufLen[s] = n;
    else dropOutbox(ctx, s);
  }
  if (n === -E.EAGAIN) t.flags[s] &= ~FL.READABLE;
  return n;
}

/** Reads and drops s's input until EAGAIN (READABLE cleared; returns -EAGAIN), EOF (0) or an error. */
export function discard(ctx: WorkerContext, s: number): number {
  const t = ctx.t;
  for (;;) {
    const n = rxBuffer(t, s, scratch, scratch.length);
    if (n > 0) continue;
    if (n === -E.EAGAIN) t.flags[s] &= ~FL.READABLE;
    return n;
  }
}

/**
 * Whether an idle connection that reported input is still healthy: true when a read finds nothing
 * (READABLE cleared), false when it finds a byte, EOF or an error (the byte is lost: the connection must go).
 */
export function stillIdle(ctx: WorkerContext, s: number): boolean {
  const n = rxBuffer(ctx.t, s, scratch, 1);
  if (n !== -E.EAGAIN) return false;
  ctx.t.flags[s] &= ~FL.READABLE;
  return true;
}

// ---- writes -----------------------------------------------------------------------------------------------

/**
 * Writes src's outbox to dst. Returns 1 when it is empty (the buffer or pipe went back to its pool), 0 when
 * dst is blocked (W_BLOCKED set; dst's EPOLLOUT resumes the caller), or -errno when the write failed; what a
 * failure means (close the pair, answer 502...) is the caller's to decide.
 */
export function flush(ctx: WorkerContext, src: number, dst: number): number {
  const t = ctx.t;
  const up = t.kind[src] === KIND.CLIENT;
  let left: number;
  let m: number;
  if (t.pipe[src] >= 0) {
    left = t.pipeLen[src];
    m = spliceTo(t, dst, ctx.pipes.rfd[t.pipe[src]], left);
    if (m > 0) {
      t.pipeLen[src] = left - m;
      moved(ctx, src, dst, up, m);
      if (m === left) {
        ctx.pipes.release(t.pipe[src], false);
        t.pipe[src] = -1;
        return 1;
      }
    }
  } else {
    const off = t.bufOff[src];
    left = t.bufLen[src] - off;
    m = tx(t, dst, ctx.bufs.address(t.buf[src]) + off, left);
    if (m > 0) {
      t.bufOff[src] = off + m;
      moved(ctx, src, dst, up, m);
      if (m === left) {
        dropOutbox(ctx, src);
        return 1;
      }
    }
  }
  if (m >= 0 || m === -E.EAGAIN) {
    // A partial write also means the send queue is full; the kernel raises EPOLLOUT when it drains.
    t.flags[dst] |= FL.W_BLOCKED;
    return 0;
  }
  return m;
}

/**
 * Reads from s into `room` bytes at C address `addr` (a fault lane, src/toxic/): bytes read, 0 at EOF, or
 * -errno; -EAGAIN and a short read clear READABLE.
 */
export function readInto(ctx: WorkerContext, s: number, addr: number, room: number): number {
  const t = ctx.t;
  const n = rx(t, s, addr, room);
  if (n > 0) shortRead(t, s, n, room);
  else if (n === -E.EAGAIN) t.flags[s] &= ~FL.READABLE;
  return n;
}

/**
 * Sends `len` bytes at C address `addr` (read from src, held in its fault lane) to dst, counted as moved:
 * bytes sent, or -errno. EAGAIN and a partial write set dst's W_BLOCKED (its EPOLLOUT resumes the caller).
 */
export function sendFrom(ctx: WorkerContext, src: number, dst: number, addr: number, len: number): number {
  const t = ctx.t;
  const m = tx(t, dst, addr, len);
  if (m > 0) moved(ctx, src, dst, t.kind[src] === KIND.CLIENT, m);
  if ((m >= 0 && m < len) || m === -E.EAGAIN) t.flags[dst] |= FL.W_BLOCKED;
  return m;
}

/** Counts m bytes moved from src to dst: in the worker's totals, the frontend's, the server's and the client's. */
function moved(ctx: WorkerContext, src: number, dst: number, up: boolean, m: number): void {
  const t = ctx.t;
  const c = t.ctr;
  if (up) {
    c[CTR.BYTES_IN] += m;
    c[feBase(t.fe[src]) + FE.BYTES_IN] += m;
    c[svBase(t.srv[dst]) + SV.BYTES_IN] += m;
    t.up[src] += m;
    t.seen[src] = ctx.hrNow;
  } else {
    c[CTR.BYTES_OUT] += m;
    c[feBase(t.fe[src]) + FE.BYTES_OUT] += m;
    c[svBase(t.srv[src]) + SV.BYTES_OUT] += m;
    t.down[dst] += m;
    t.seen[dst] = ctx.hrNow;
  }
}

/**
 * Sends buf[0..len) to s at once, bypassing its outbox: for a few bytes the proxy writes itself into an
 * empty send queue (a generated response, a PROXY header), which takes them whole. Bytes sent, or -errno.
 */
export function sendNow(ctx: WorkerContext, s: number, buf: Uint8Array, len: number): number {
  return txBuffer(ctx.t, s, buf, len);
}

/** Sends FIN on s (shutdown(SHUT_WR)): 0 or -errno. */
export function sendFin(ctx: WorkerContext, s: number): number {
  const t = ctx.t;
  if (t.xprt[s] === XPRT.PLAIN) return shutdown(t.fd[s], SHUT.WR);
  if (t.xprt[s] === XPRT.TLS) {
    sslShutdown(sslOf[s]); // close_notify, then the FIN
    return shutdown(t.fd[s], SHUT.WR);
  }
  return noTransport(t, s);
}

/**
 * Writes buf to an fd that never got a slot (a connection refused at accept), without waiting: the one write
 * that does not go through a slot's transport, always plain.
 */
export function sendUnslotted(fd: number, buf: Uint8Array): void {
  send(fd, buf, buf.length, MSG.NOSIGNAL | MSG.DONTWAIT);
}
