// TCP mode: a client and its backend connection, paired, with bytes moved both ways untouched.
//
// Each slot's outbox holds what was read from its fd and not yet written to its peer: a pool buffer
// (copy) or a pool pipe (splice). A direction src -> dst is one loop, pump(src):
//
//        ┌──────────── outbox not empty? ── flush to dst ── blocked (EAGAIN) ──> wait for dst's EPOLLOUT
//        v                                      │ emptied
//   pump(src) ── EOF_IN? ── forward FIN: shutdown(dst, SHUT_WR); both ways done? ──> close the pair
//        │
//        └── READABLE? ── read (or splice) into the outbox ── EAGAIN/short read: clear READABLE, wait
//                               │ n > 0: loop                 0: EOF_IN          error: close the pair
//
// Backpressure falls out of this: src is not read while its outbox is not empty, so a slow dst stops
// reads from src, its socket buffer fills and TCP flow control slows the sender (invariant 5).
//
// Deadlines, all on the client's slot: the PROXY header's (--accept-proxy), then the connect's
// (connectTimeoutMs), then the tunnel's (tunnelTimeoutMs), moved on by every read that brings bytes from
// either side and by every EPOLLOUT that frees a blocked side. A pair in which nothing moves either way for
// that long is closed, as nginx's stream proxy_timeout and HAProxy's `timeout tunnel` do. Moving a deadline
// later is a write to the wheel (timers.ts), cheap enough for every read.

import { LEVEL } from '../log.js';
import {
  E,
  EPOLL,
  MSG,
  SHUT,
  SOCK,
  SPLICE_F,
  connect,
  errnoName,
  formatAddress,
  peerAddress,
  recvAt,
  sendAt,
  setNoDelay,
  shutdown,
  sockError,
  socket,
  splice,
  epollAdd,
  close,
} from '../sys/index.js';
import { CONN_EVENTS, SPLICE_MODE, type WorkerLoop } from './loop.js';
import { MAX_PROXY_HEADER, refuse, sendHeader, takeHeader } from './proxied.js';
import { CTR, FL, KIND, ST } from './types.js';

// Reads per pump before the connection yields to others: 16 x 64 KiB = 1 MiB a turn. Without a bound, one
// fast bulk transfer would hold the worker for as long as its peer keeps up.
const READS_PER_TURN = 16;
// In auto mode a direction switches to splice after a read that fills a whole buffer (a bulk transfer),
// and back to copying after a splice that moves less than this (small messages: read+send is cheaper than
// two splices, see docs/benchmarks.md).
const SPLICE_BACK_BELOW = 4096;
const SPLICE_FLAGS = SPLICE_F.MOVE | SPLICE_F.NONBLOCK;
// Events after which a read will say something: data, EOF or an error.
const READ_EVENTS = EPOLL.IN | EPOLL.RDHUP | EPOLL.HUP | EPOLL.ERR;
// Events that end a connect() or say the send queue has room again (or never will).
const WRITE_EVENTS = EPOLL.OUT | EPOLL.HUP | EPOLL.ERR;
// Events that mean the peer is gone or going: from then on we read until 0 or an error (see readIn).
const END_EVENTS = EPOLL.RDHUP | EPOLL.HUP | EPOLL.ERR;

/** TCP mode's deadlines (HTTP mode uses tunnelTimeoutMs for its upgraded connections). */
export type TcpOptions = {
  /** A backend connect not finished this long is given up: the client is closed. */
  connectTimeoutMs: number;
  /** A tunnel in which nothing moves either way this long is closed; 0: never. */
  tunnelTimeoutMs: number;
};

/**
 * A new client fd from accept4: pair it with a new non-blocking connection to the backend, or, with
 * --accept-proxy, first wait for its PROXY header (PP_WAIT, under the header deadline).
 */
export function onAccept(w: WorkerLoop, fd: number): void {
  const t = w.t;
  if (t.free < 2) {
    t.ctr[CTR.REFUSED_FULL]++;
    w.log.limited(LEVEL.warn, 'full', `connection table full (${t.capacity} slots): refused a connection`);
    close(fd); // this fd never had a slot, so closeSlot() is not for it
    return;
  }
  setNoDelay(fd);
  const waitHeader = w.pp !== null && w.pp.o.accept;
  const c = t.acquire(KIND.CLIENT, waitHeader ? ST.PP_WAIT : ST.WAITING, fd);
  t.ctr[CTR.ACTIVE]++;
  if (epollAdd(w.epfd, fd, CONN_EVENTS, c, t.gen[c]) < 0) {
    closePair(w, c, 'epoll_ctl ADD client');
    return;
  }
  if (waitHeader) w.timers.arm(c, w.now + w.pp!.o.headerTimeoutMs);
  else connectBackend(w, c);
}

function connectBackend(w: WorkerLoop, c: number): void {
  const t = w.t;
  w.timers.arm(c, w.now + w.tcp.connectTimeoutMs);
  const bfd = socket(w.backendFamily, SOCK.STREAM | SOCK.NONBLOCK | SOCK.CLOEXEC, 0);
  if (bfd < 0) {
    t.ctr[CTR.CONNECT_ERRORS]++;
    w.log.limited(LEVEL.warn, 'backend-socket', `backend ${w.backendText}: socket: ${errnoName(bfd)}`);
    closePair(w, c, null);
    return;
  }
  if (w.backendIsTcp) setNoDelay(bfd);
  const b = t.acquire(KIND.BACKEND, ST.CONNECTING, bfd);
  t.peer[c] = b;
  t.peer[b] = c;
  if (w.spliceMode === SPLICE_MODE.ON) {
    t.flags[c] |= FL.SPLICE;
    t.flags[b] |= FL.SPLICE;
  }
  if (epollAdd(w.epfd, bfd, CONN_EVENTS, b, t.gen[b]) < 0) {
    closePair(w, c, 'epoll_ctl ADD backend');
    return;
  }
  const r = connect(bfd, w.backendSa, w.backendSa.length);
  if (r === 0) {
    connected(w, b); // unix sockets connect at once
  } else if (r !== -E.EINPROGRESS) {
    connectFailed(w, b, `connect: ${errnoName(r)}`);
  }
}

/**
 * --accept-proxy: reads client c (PP_WAIT) into its outbox until the PROXY header is complete. What follows
 * the header stays in the outbox, to go to the backend first once it is connected.
 */
function readProxyHeader(w: WorkerLoop, c: number): void {
  const t = w.t;
  while (t.flags[c] & FL.READABLE) {
    if (t.buf[c] < 0) {
      t.buf[c] = w.bufs.acquire();
      t.bufOff[c] = 0;
      t.bufLen[c] = 0;
    }
    const buf = w.bufs.get(t.buf[c]);
    const have = t.bufLen[c];
    // Never more than a header can take, so every byte read past it is certain to be the stream's.
    const room = MAX_PROXY_HEADER - have;
    const n = recvAt(t.fd[c], w.bufs.address(t.buf[c]) + have, room);
    if (n === -E.EAGAIN) {
      t.flags[c] &= ~FL.READABLE;
      return;
    }
    if (n <= 0) {
      // Gone before its header was whole: nothing was forwarded, nothing to tell.
      closePair(w, c, n === 0 ? null : `read from client: ${errnoName(n)}`);
      return;
    }
    t.bufLen[c] = have + n;
    if (n < room && !(t.flags[c] & FL.PEER_DONE)) t.flags[c] &= ~FL.READABLE; // see readIn
    const got = takeHeader(w, c, buf, t.bufLen[c]);
    if (got < 0) {
      closePair(w, c, null);
      return;
    }
    if (got > 0) {
      t.bufOff[c] = got;
      if (got === t.bufLen[c]) {
        w.bufs.release(t.buf[c]);
        t.buf[c] = -1;
      }
      w.timers.disarm(c);
      t.state[c] = ST.WAITING;
      connectBackend(w, c);
      return;
    }
  }
}

/** Client c's deadline passed: its PROXY header, its backend's connect, or its tunnel's inactivity. */
export function onTimer(w: WorkerLoop, c: number): void {
  const t = w.t;
  switch (t.state[c]) {
    case ST.PP_WAIT:
      refuse(w, c, `not complete within ${w.pp!.o.headerTimeoutMs} ms`);
      closePair(w, c, null);
      return;
    case ST.WAITING:
      connectFailed(w, t.peer[c], `connect did not finish within ${w.tcp.connectTimeoutMs} ms`);
      return;
    case ST.PROXYING: {
      // Quiet both ways: nothing is cut off that was on its way, unless one side stopped reading while
      // its outbox waited; either way the peers learn of it from a close.
      const from = peerAddress(t.fd[c]);
      w.log.limited(
        LEVEL.info,
        'tunnel-idle',
        `closed client ${from ? formatAddress(from) : '(gone)'}: nothing moved either way for ${w.tcp.tunnelTimeoutMs} ms`,
      );
      closePair(w, c, null);
      return;
    }
  }
}

/**
 * (Re)starts the tunnel deadline of client c's pair from now: when it becomes a tunnel (connected, or
 * upgraded in HTTP mode), and whenever bytes move. With --tunnel-timeout 0 the pair has no deadline.
 */
export function tunnelDeadline(w: WorkerLoop, c: number): void {
  if (w.tcp.tunnelTimeoutMs > 0) w.timers.arm(c, w.now + w.tcp.tunnelTimeoutMs);
  else w.timers.disarm(c);
}

/** Bytes moved on slot s (a read brought some, or a blocked side took some): its pair's deadline moves on. */
function active(w: WorkerLoop, s: number): void {
  tunnelDeadline(w, w.t.kind[s] === KIND.CLIENT ? s : w.t.peer[s]);
}

/** An epoll event for a client or backend slot. */
export function onEvent(w: WorkerLoop, s: number, events: number): void {
  const t = w.t;
  if (events & READ_EVENTS) t.flags[s] |= events & END_EVENTS ? FL.READABLE | FL.PEER_DONE : FL.READABLE;
  switch (t.state[s]) {
    case ST.CONNECTING:
      if (events & WRITE_EVENTS) finishConnect(w, s);
      return;
    case ST.WAITING:
      return; // READABLE is remembered; the client is read once its backend is connected
    case ST.PP_WAIT:
      if (t.flags[s] & FL.READABLE) readProxyHeader(w, s);
      return;
    case ST.PROXYING: {
      const gen = t.gen[s];
      if (events & WRITE_EVENTS && t.flags[s] & FL.W_BLOCKED) {
        t.flags[s] &= ~FL.W_BLOCKED;
        active(w, s); // the peer took some of what waited for it
        pump(w, t.peer[s]); // the peer's outbox was waiting for this fd
        if (t.gen[s] !== gen) return; // that closed the pair
      }
      if (t.flags[s] & (FL.READABLE | FL.EOF_IN)) pump(w, s);
      return;
    }
  }
}

function finishConnect(w: WorkerLoop, b: number): void {
  const err = sockError(w.t.fd[b]);
  if (err !== 0) connectFailed(w, b, `connect: ${errnoName(err > 0 ? -err : err)}`);
  else connected(w, b);
}

function connected(w: WorkerLoop, b: number): void {
  const t = w.t;
  const c = t.peer[b];
  if (w.pp !== null && w.pp.o.send !== 0) {
    const r = sendHeader(w, c, b);
    if (r < 0) {
      connectFailed(w, b, `connect: ${errnoName(r)}`);
      return;
    }
  }
  t.state[b] = ST.PROXYING;
  t.state[c] = ST.PROXYING;
  tunnelDeadline(w, c);
  const gen = t.gen[b];
  pump(w, c); // the client may have sent bytes while we connected
  if (t.gen[b] === gen) pump(w, b);
}

/** Backend b did not connect (`why`: the error, or the deadline): counted, logged, the client closed. */
function connectFailed(w: WorkerLoop, b: number, why: string): void {
  w.t.ctr[CTR.CONNECT_ERRORS]++;
  w.log.limited(LEVEL.warn, 'connect', `backend ${w.backendText}: ${why}; closed the client`);
  closePair(w, b, null);
}

/**
 * Moves bytes from slot `src` to its peer until src has nothing more to give (EAGAIN), the peer cannot
 * take more (its EPOLLOUT resumes us), src's turn is used up (ready queue), or the pair closes.
 */
export function pump(w: WorkerLoop, src: number): void {
  const t = w.t;
  const dst = t.peer[src];
  for (let reads = 0; ; ) {
    if (t.buf[src] >= 0 || t.pipe[src] >= 0) {
      // A blocked peer stays blocked until its EPOLLOUT (which clears W_BLOCKED and calls us again): a send
      // now could only return EAGAIN.
      if (t.flags[dst] & FL.W_BLOCKED) return;
      const f = flush(w, src, dst);
      if (f < 0) closePair(w, dst, `write to ${sideName(w, dst)}: ${errnoName(f)}`);
      if (f <= 0) return;
    }
    const f = t.flags[src];
    if (f & FL.EOF_IN) {
      if (!(t.flags[dst] & FL.FIN_SENT)) forwardFin(w, src, dst);
      return;
    }
    if (!(f & FL.READABLE)) return;
    if (reads++ === READS_PER_TURN) {
      w.enqueue(src);
      return;
    }
    const n = f & FL.SPLICE ? spliceIn(w, src) : readIn(w, src);
    if (n > 0) {
      active(w, src);
      continue;
    }
    if (n === 0) {
      t.flags[src] |= FL.EOF_IN;
      continue;
    }
    if (n === -E.EAGAIN) {
      t.flags[src] &= ~FL.READABLE;
      return;
    }
    closePair(w, src, `read from ${sideName(w, src)}: ${errnoName(n)}`);
    return;
  }
}

/** recv(2) from src into a pool buffer: bytes read, 0 at EOF, or -errno. */
function readIn(w: WorkerLoop, src: number): number {
  const t = w.t;
  const bi = w.bufs.acquire(); // never -1: the pool holds one buffer per slot
  const size = w.bufs.size;
  const n = recvAt(t.fd[src], w.bufs.address(bi), size);
  if (n <= 0) {
    w.bufs.release(bi);
    return n;
  }
  t.buf[src] = bi;
  t.bufOff[src] = 0;
  t.bufLen[src] = n;
  if (n < size && !(t.flags[src] & FL.PEER_DONE)) {
    // A short read from a stream socket means its receive queue was empty when read returned; more data
    // arriving later raises a new edge. This saves the read that would only return EAGAIN. Not once the
    // peer has sent FIN or RST (PEER_DONE): that edge may already have been consumed together with the
    // data, so only a read returning 0 or an error can end the stream.
    t.flags[src] &= ~FL.READABLE;
  } else if (w.spliceMode === SPLICE_MODE.AUTO) {
    t.flags[src] |= FL.SPLICE; // a full buffer: a bulk transfer, switch this direction to splice
  }
  return n;
}

/** splice(2) from src into a pool pipe: bytes moved, 0 at EOF, or -errno. Falls back to readIn(). */
function spliceIn(w: WorkerLoop, src: number): number {
  const t = w.t;
  const pi = w.pipes.acquire();
  if (pi < 0) return readIn(w, src); // no pipe to be had (pool used up, or no fds): copy this time
  const n = splice(t.fd[src], w.pipes.wfd[pi], w.pipes.size, SPLICE_FLAGS);
  if (n <= 0) {
    w.pipes.release(pi, false);
    return n;
  }
  t.pipe[src] = pi;
  t.pipeLen[src] = n;
  if (w.spliceMode === SPLICE_MODE.AUTO && n < SPLICE_BACK_BELOW) t.flags[src] &= ~FL.SPLICE;
  return n;
}

/**
 * Writes src's outbox to dst. Returns 1 when it is empty (the buffer or pipe went back to its pool), 0 when
 * dst is blocked (W_BLOCKED set; dst's EPOLLOUT resumes the caller), or -errno when the write failed; what a
 * failure means (close the pair, answer 502...) is the caller's to decide. Shared by TCP and HTTP mode.
 */
export function flush(w: WorkerLoop, src: number, dst: number): number {
  const t = w.t;
  const ctr = t.kind[src] === KIND.CLIENT ? CTR.BYTES_IN : CTR.BYTES_OUT;
  let left: number;
  let m: number;
  if (t.pipe[src] >= 0) {
    left = t.pipeLen[src];
    m = splice(w.pipes.rfd[t.pipe[src]], t.fd[dst], left, SPLICE_FLAGS);
    if (m > 0) {
      t.pipeLen[src] = left - m;
      t.ctr[ctr] += m;
      if (m === left) {
        w.pipes.release(t.pipe[src], false);
        t.pipe[src] = -1;
        return 1;
      }
    }
  } else {
    const off = t.bufOff[src];
    const end = t.bufLen[src];
    left = end - off;
    m = sendAt(t.fd[dst], w.bufs.address(t.buf[src]) + off, left, MSG.NOSIGNAL);
    if (m > 0) {
      t.bufOff[src] = off + m;
      t.ctr[ctr] += m;
      if (m === left) {
        w.bufs.release(t.buf[src]);
        t.buf[src] = -1;
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

/** src's EOF has been read and its outbox flushed: pass the FIN on, close the pair when both ways are done. */
function forwardFin(w: WorkerLoop, src: number, dst: number): void {
  const t = w.t;
  const r = shutdown(t.fd[dst], SHUT.WR);
  if (r < 0 && r !== -E.ENOTCONN) {
    closePair(w, dst, `shutdown ${sideName(w, dst)}: ${errnoName(r)}`);
    return;
  }
  t.flags[dst] |= FL.FIN_SENT;
  // Both directions finished: src sent FIN (forwarded to dst), and dst's FIN was forwarded to src earlier.
  if (t.flags[src] & FL.FIN_SENT && t.flags[dst] & FL.EOF_IN) closePair(w, src, null);
}

/**
 * Closes slot `s` and its peer. `why` null is an orderly end (or a failure already logged). Otherwise `s`
 * is the side whose fd failed and `why` names the error, which is counted and logged; the healthy peer is
 * then reset (RST) rather than closed with FIN, so it cannot mistake a stream cut short for a whole one.
 */
export function closePair(w: WorkerLoop, s: number, why: string | null): void {
  const t = w.t;
  const p = t.peer[s];
  const client = t.kind[s] === KIND.CLIENT ? s : p;
  if (why !== null) {
    t.ctr[CTR.IO_ERRORS]++;
    w.log.limited(LEVEL.info, 'io', `closed ${t.describe(client)}: ${why}`);
  }
  if (client >= 0) t.ctr[CTR.ACTIVE]--;
  w.closeSlot(s, false);
  if (p >= 0) w.closeSlot(p, why !== null);
}

function sideName(w: WorkerLoop, s: number): string {
  return w.t.kind[s] === KIND.CLIENT ? 'client' : 'backend';
}
