// The tunnel: a client and its backend connection, paired, with bytes moved both ways untouched. Every
// client of a TCP frontend is one, and so is an HTTP pair once a 101 upgraded it (adopt()).
//
//   client:  accept (or a PROXY header whole) ──> WAITING ──backend connected──> PROXYING ──> closed
//   backend: CONNECTING ──EPOLLOUT, SO_ERROR 0──> PROXYING ──────────────────────────────> closed
//                 └──connect failed or too slow: the client closed────────────────────────> closed
//
// Each slot's outbox holds what was read from its fd and not yet written to its peer: a pool buffer (copy)
// or a pool pipe (splice). A direction src -> dst is one loop, pump(src):
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
// Deadlines, all on the client's slot: the connect's (backendTimeoutMs), then the tunnel's
// (tunnelTimeoutMs), moved on by every read that brings bytes from either side and by every EPOLLOUT that
// frees a blocked side. A pair in which nothing moves either way for that long is closed, as nginx's stream
// proxy_timeout and HAProxy's `timeout tunnel` do. Moving a deadline later is a write to the wheel
// (timers.ts), cheap enough for every read.

import { LEVEL } from './core/log.js';
import { TERM } from './core/term.js';
import { FL, KIND, PROTO, ST } from './core/types.js';
import {
  type Server,
  chooseServer,
  connectDone,
  connectTerm,
  connectTimedOut,
  lastConnectCall,
  lastConnectErrno,
  openBackend,
  startConnect,
  where,
} from './route/index.js';
import {
  READ_EVENTS,
  SPLICE_MODE,
  WRITE_EVENTS,
  endInternal,
  endPair,
  flush,
  inboxToOutbox,
  noteEvents,
  readOut,
  sendFin,
  spliceOut,
  tlsConnecting,
  unblocked,
} from './transport/index.js';
import { E, errnoName, formatAddress, peerAddress, setLingerZero } from './sys/index.js';
import { type FaultContext, PUMP, faultTurn, pumpErrno } from './toxic/index.js';

// Reads per pump before the connection yields to others: 16 x 64 KiB = 1 MiB a turn. Without a bound, one
// fast bulk transfer would hold the worker for as long as its peer keeps up.
const READS_PER_TURN = 16;

/**
 * Client c of a TCP frontend, new (`from` 0) or past its PROXY header (the stream starts at inbox byte
 * `from`): pair it with a new connection to a server of its backend.
 */
export function open(ctx: FaultContext, c: number, from: number): void {
  const t = ctx.t;
  t.proto[c] = PROTO.TUNNEL;
  t.state[c] = ST.WAITING;
  // What came after the header goes to the backend first, once it is connected.
  inboxToOutbox(ctx, c, from);
  const be = ctx.backends[ctx.frontends[t.fe[c]].backend];
  const srv = chooseServer(ctx, c, be, -1);
  if (srv === null) {
    if (ctx.log.admits(LEVEL.warn, TERM.NO_SERVER)) ctx.log.limited(LEVEL.warn, TERM.NO_SERVER, `${where(be, null)}: no server up; closed the client`);
    endPair(ctx, c, TERM.NO_SERVER, false);
    return;
  }
  connectTo(ctx, c, srv);
}

/** Pairs client c with a new connection to server srv, under the connect deadline. */
function connectTo(ctx: FaultContext, c: number, srv: Server): void {
  const t = ctx.t;
  const f = ctx.frontends[t.fe[c]];
  ctx.timers.arm(c, ctx.now + f.backendTimeoutMs);
  const b = openBackend(ctx, c, srv, PROTO.TUNNEL);
  if (b < 0) {
    connectFailed(ctx, c, srv, -b);
    return;
  }
  if (f.spliceMode === SPLICE_MODE.ON && srv.backend?.tls == null) {
    t.flags[c] |= FL.SPLICE;
    t.flags[b] |= FL.SPLICE;
  }
  const r = startConnect(ctx, b);
  if (r === 0) connected(ctx, b);
  else if (r !== -E.EINPROGRESS) connectFailed(ctx, c, srv, connectTerm(r));
}

/**
 * An HTTP pair that a 101 upgraded: from now on a tunnel. The HTTP side has released its state and put the
 * bytes read past the two heads in the outboxes, which go first.
 */
export function adopt(ctx: FaultContext, c: number, b: number): void {
  const t = ctx.t;
  ctx.timers.disarm(b);
  tunnelDeadline(ctx, c);
  t.proto[c] = PROTO.TUNNEL;
  t.proto[b] = PROTO.TUNNEL;
  t.state[c] = ST.PROXYING;
  t.state[b] = ST.PROXYING;
  const gen = t.gen[c];
  pump(ctx, b);
  if (t.gen[c] === gen) pump(ctx, c);
}

/** An epoll event for either side. */
export function onEvent(ctx: FaultContext, s: number, events: number): void {
  const t = ctx.t;
  noteEvents(t, s, events);
  switch (t.state[s]) {
    case ST.CONNECTING:
      // A TLS backend's handshake moves on reads too.
      if (events & WRITE_EVENTS || (events & READ_EVENTS && tlsConnecting(s))) finishConnect(ctx, s);
      return;
    case ST.WAITING:
      return; // READABLE is remembered; the client is read once its backend is connected
    case ST.PROXYING: {
      const gen = t.gen[s];
      if (unblocked(t, s, events)) {
        active(ctx, s); // the peer took some of what waited for it
        pump(ctx, t.peer[s]); // the peer's outbox was waiting for this fd
        if (t.gen[s] !== gen) return; // that closed the pair
      }
      if (t.flags[s] & (FL.READABLE | FL.EOF_IN)) pump(ctx, s);
      return;
    }
  }
}

/** A ready-queue turn: carry on where slot s stopped early. */
export function resume(ctx: FaultContext, s: number): void {
  if (ctx.t.state[s] === ST.PROXYING) pump(ctx, s);
}

/** Client c's deadline passed: its backend's connect, or its tunnel's inactivity. */
export function onTimer(ctx: FaultContext, c: number): void {
  const t = ctx.t;
  switch (t.state[c]) {
    case ST.WAITING: {
      const b = t.peer[c];
      connectFailed(ctx, c, ctx.servers[t.srv[b]]!, connectTimedOut(ctx, b));
      return;
    }
    case ST.PROXYING:
      // Quiet both ways: nothing is cut off that was on its way, unless one side stopped reading while
      // its outbox waited; either way the peers learn of it from a close.
      if (ctx.log.admits(LEVEL.info, TERM.TUNNEL_TIMEOUT)) {
        const from = peerAddress(t.fd[c]);
        ctx.log.limited(
          LEVEL.info,
          TERM.TUNNEL_TIMEOUT,
          `closed client ${from ? formatAddress(from) : '(gone)'}: nothing moved either way for ${ctx.frontends[t.fe[c]].tunnelTimeoutMs} ms`,
        );
      }
      endPair(ctx, c, TERM.TUNNEL_TIMEOUT, false);
      return;
  }
}

/**
 * (Re)starts the tunnel deadline of client c's pair from now: when it becomes a tunnel, and whenever bytes
 * move. With a tunnel timeout of 0 the pair has no deadline.
 */
function tunnelDeadline(ctx: FaultContext, c: number): void {
  const ms = ctx.frontends[ctx.t.fe[c]].tunnelTimeoutMs;
  if (ms > 0) ctx.timers.arm(c, ctx.now + ms);
  else ctx.timers.disarm(c);
}

/** Bytes moved on slot s (a read brought some, or a blocked side took some): its pair's deadline moves on. */
function active(ctx: FaultContext, s: number): void {
  tunnelDeadline(ctx, ctx.t.kind[s] === KIND.CLIENT ? s : ctx.t.peer[s]);
}

function finishConnect(ctx: FaultContext, b: number): void {
  const r = connectDone(ctx, b);
  if (r === 0) connected(ctx, b);
  else if (r !== -E.EINPROGRESS) connectFailed(ctx, ctx.t.peer[b], ctx.servers[ctx.t.srv[b]]!, connectTerm(r));
}

function connected(ctx: FaultContext, b: number): void {
  const t = ctx.t;
  const c = t.peer[b];
  t.state[b] = ST.PROXYING;
  t.state[c] = ST.PROXYING;
  tunnelDeadline(ctx, c);
  if (ctx.faults.plan(t.fe[c]).n > 0) ctx.faults.begin(t, c, b, ctx.hrNow);
  const gen = t.gen[b];
  pump(ctx, c); // the client may have sent bytes while we connected
  if (t.gen[b] === gen) pump(ctx, b);
}

/**
 * Client c's connect to srv failed, or took too long (`term`): its backend slot is closed, and it tries
 * another server while its backend's retries last; else it is logged and the client closed.
 */
function connectFailed(ctx: FaultContext, c: number, srv: Server, term: number): void {
  const t = ctx.t;
  const b = t.peer[c];
  if (b >= 0) {
    t.peer[c] = -1;
    ctx.closeSlot(b, false);
  }
  if (term === TERM.INTERNAL) {
    endInternal(ctx, c, lastConnectCall, lastConnectErrno);
    return;
  }
  const f = ctx.frontends[t.fe[c]];
  const be = ctx.backends[f.backend];
  const next = term === TERM.TABLE_FULL ? null : chooseServer(ctx, c, be, srv.id);
  const level = next === null ? LEVEL.warn : LEVEL.info;
  const key = next === null ? term : 'connect-retry';
  if (ctx.log.admits(level, key)) {
    const why = term === TERM.CONNECT_TIMEOUT ? `connect did not finish within ${f.backendTimeoutMs} ms` : `${lastConnectCall}: ${errnoName(lastConnectErrno)}`;
    ctx.log.limited(level, key, `${where(be, srv)}: ${why}; ${next === null ? 'closed the client' : `trying ${next.name}`}`);
  }
  if (next !== null) connectTo(ctx, c, next);
  else endPair(ctx, c, term, false);
}

/**
 * Moves bytes from slot `src` to its peer until src has nothing more to give (EAGAIN), the peer cannot
 * take more (its EPOLLOUT resumes us), src's turn is used up (ready queue), or the pair closes.
 */
function pump(ctx: FaultContext, src: number): void {
  const t = ctx.t;
  if (t.flags[src] & FL.TOXIC) {
    faultPump(ctx, src);
    return;
  }
  const dst = t.peer[src];
  const spliceMode = ctx.frontends[t.fe[src]].spliceMode;
  for (let reads = 0; ; ) {
    if (t.buf[src] >= 0 || t.pipe[src] >= 0) {
      // A blocked peer stays blocked until its EPOLLOUT (which clears W_BLOCKED and calls us again): a send
      // now could only return EAGAIN.
      if (t.flags[dst] & FL.W_BLOCKED) return;
      const f = flush(ctx, src, dst);
      if (f < 0) ioFailed(ctx, dst, 'write to', side(ctx, dst), f);
      if (f <= 0) return;
    }
    const f = t.flags[src];
    if (f & FL.EOF_IN) {
      if (!(t.flags[dst] & FL.FIN_SENT)) forwardFin(ctx, src, dst);
      return;
    }
    if (!(f & FL.READABLE)) return;
    if (reads++ === READS_PER_TURN) {
      ctx.enqueue(src);
      return;
    }
    const n = f & FL.SPLICE ? spliceOut(ctx, src, spliceMode) : readOut(ctx, src, spliceMode);
    if (n > 0) {
      active(ctx, src);
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
    ioFailed(ctx, src, 'read from', side(ctx, src), n);
    return;
  }
}

/** A direction with toxics (src/toxic/pump.ts): its turn, and what it asks of the tunnel. */
function faultPump(ctx: FaultContext, src: number): void {
  const t = ctx.t;
  const dst = t.peer[src];
  const r = faultTurn(ctx, src);
  active(ctx, src);
  switch (r) {
    case PUMP.FIN:
      if (!(t.flags[dst] & FL.FIN_SENT)) forwardFin(ctx, src, dst);
      return;
    case PUMP.READ_FAILED:
      ioFailed(ctx, src, 'read from', side(ctx, src), pumpErrno);
      return;
    case PUMP.WRITE_FAILED:
      ioFailed(ctx, dst, 'write to', side(ctx, dst), pumpErrno);
      return;
    case PUMP.RESET:
      // reset_peer: both sides see RST, as Toxiproxy's SO_LINGER 0 close gives them.
      setLingerZero(t.fd[src]);
      setLingerZero(t.fd[dst]);
      endPair(ctx, src, TERM.TOXIC, false);
      return;
    case PUMP.CLOSE:
      endPair(ctx, src, TERM.TOXIC, false);
      return;
    case PUMP.PLAIN:
      pump(ctx, src);
      return;
  }
}

/** src's EOF has been read and its outbox flushed: pass the FIN on, close the pair when both ways are done. */
function forwardFin(ctx: FaultContext, src: number, dst: number): void {
  const t = ctx.t;
  const r = sendFin(ctx, dst);
  if (r < 0 && r !== -E.ENOTCONN) {
    ioFailed(ctx, dst, 'shutdown', side(ctx, dst), r);
    return;
  }
  t.flags[dst] |= FL.FIN_SENT;
  // Both directions finished: src sent FIN (forwarded to dst), and dst's FIN was forwarded to src earlier.
  if (t.flags[src] & FL.FIN_SENT && t.flags[dst] & FL.EOF_IN) endPair(ctx, src, TERM.DONE, false);
}

/**
 * `op` on slot s (its `what`) failed with `err`: logged, and the pair reset, so that the healthy side cannot
 * mistake a stream cut short for a whole one.
 */
function ioFailed(ctx: FaultContext, s: number, op: string, what: string, err: number): void {
  const t = ctx.t;
  const client = t.kind[s] === KIND.CLIENT;
  const term = client ? TERM.CLIENT_RESET : TERM.BACKEND_RESET;
  if (ctx.log.admits(LEVEL.info, term)) {
    ctx.log.limited(LEVEL.info, term, `closed ${t.describe(client ? s : t.peer[s])}: ${op}${what ? ' ' + what : ''}: ${errnoName(err)}`);
  }
  endPair(ctx, s, term, true);
}

function side(ctx: FaultContext, s: number): string {
  return ctx.t.kind[s] === KIND.CLIENT ? 'client' : 'backend';
}
