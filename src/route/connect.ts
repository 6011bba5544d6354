// The one connect path, for every protocol: a new non-blocking connection to a backend, paired with the
// client it is for.
//
//   openBackend(c) ──> socket, a BACKEND slot (CONNECTING, the protocol's), paired with c, in the epoll set
//   startConnect(b) ──> connect(): 0 done at once (unix sockets) | -EINPROGRESS | -errno failed
//   connectDone(b) ──> on the protocol's EPOLLOUT while CONNECTING: SO_ERROR; 0 | -errno failed
//   both "done" paths send the backend's PROXY header first (send-proxy), which can fail too
//
// A failure is counted here (CONNECT_ERRORS) and given back as a termination code (connectTerm): what the
// client is told, and when, is its protocol's to decide. Deadlines are the protocol's as well.

import { CTR } from '../core/counters.js';
import { TERM } from '../core/term.js';
import { KIND, ST, XPRT } from '../core/types.js';
import { CONN_EVENTS, sendHeader } from '../transport/index.js';
import { E, SOCK, close, connect, epollAdd, setNoDelay, sockError, socket } from '../sys/index.js';
import type { RouteContext } from './routes.js';

/** The last failure below, for the log line that says why: the call that failed, and its errno (0: timeout). */
export let lastConnectCall = 'connect';
export let lastConnectErrno = 0;

/**
 * A new connection to client c's backend, in a BACKEND slot of protocol `proto` paired with c. Returns the
 * slot, or -TERM when none could be made (BACKEND_UNREACHABLE: no socket; TABLE_FULL; INTERNAL): then nothing
 * is left open and c is as it was. Call startConnect() next.
 */
export function openBackend(ctx: RouteContext, c: number, proto: number): number {
  const t = ctx.t;
  const be = ctx.backends[ctx.frontends[t.fe[c]].backend];
  const fd = socket(be.family, SOCK.STREAM | SOCK.NONBLOCK | SOCK.CLOEXEC, 0);
  if (fd < 0) {
    lastConnectCall = 'socket';
    lastConnectErrno = fd;
    t.ctr[CTR.CONNECT_ERRORS]++;
    return -TERM.BACKEND_UNREACHABLE;
  }
  if (t.free < 1) {
    close(fd); // never had a slot
    return -TERM.TABLE_FULL;
  }
  if (be.isTcp) setNoDelay(fd);
  const b = t.acquire(KIND.BACKEND, ST.CONNECTING, fd);
  t.proto[b] = proto;
  t.xprt[b] = XPRT.PLAIN;
  t.fe[b] = t.fe[c];
  t.be[b] = be.index;
  const r = epollAdd(ctx.epfd, fd, CONN_EVENTS, b, t.gen[b]);
  if (r < 0) {
    lastConnectCall = 'epoll_ctl ADD backend';
    lastConnectErrno = r;
    ctx.closeSlot(b, false);
    return -TERM.INTERNAL;
  }
  t.peer[c] = b;
  t.peer[b] = c;
  return b;
}

/**
 * connect() for backend slot b: 0 when it connected at once (and its PROXY header went out), -EINPROGRESS
 * while it goes on (its EPOLLOUT comes to connectDone()), or a negative failure: see connectTerm().
 */
export function startConnect(ctx: RouteContext, b: number): number {
  const be = ctx.backends[ctx.t.be[b]];
  const r = connect(ctx.t.fd[b], be.sa, be.sa.length);
  if (r === -E.EINPROGRESS) return r;
  return r === 0 ? connected(ctx, b) : failed(ctx, r);
}

/** Backend slot b's connect ended (EPOLLOUT, HUP or ERR while CONNECTING): 0 when connected, else < 0. */
export function connectDone(ctx: RouteContext, b: number): number {
  const err = sockError(ctx.t.fd[b]);
  if (err !== 0) return failed(ctx, err > 0 ? -err : err);
  return connected(ctx, b);
}

/** A connect of backend slot b that its protocol gave up on, at its deadline: counted; CONNECT_TIMEOUT. */
export function connectTimedOut(ctx: RouteContext): number {
  lastConnectErrno = 0;
  ctx.t.ctr[CTR.CONNECT_ERRORS]++;
  return TERM.CONNECT_TIMEOUT;
}

/** The termination code for a negative result of startConnect() or connectDone(). */
export function connectTerm(r: number): number {
  return r === -E.ECONNREFUSED ? TERM.BACKEND_REFUSED : TERM.BACKEND_UNREACHABLE;
}

function connected(ctx: RouteContext, b: number): number {
  const t = ctx.t;
  const be = ctx.backends[t.be[b]];
  if (be.sendProxy !== 0 && t.peer[b] >= 0) {
    const r = sendHeader(ctx, t.peer[b], b, be.sendProxy);
    if (r < 0) return failed(ctx, r);
  }
  return 0;
}

function failed(ctx: RouteContext, err: number): number {
  lastConnectCall = 'connect';
  lastConnectErrno = err;
  ctx.t.ctr[CTR.CONNECT_ERRORS]++;
  return err;
}
