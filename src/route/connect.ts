// The one connect path, for every protocol: a server picked for the client (balance.ts), a new
// non-blocking connection to it, paired with the client.
//
//   chooseServer(c, be) ──> a server that is up (or null: none), retries on another after a failure
//   openBackend(c, srv) ──> socket, a BACKEND slot (CONNECTING, the protocol's), paired with c, in the epoll set
//   startConnect(b) ──> connect(): 0 done at once (unix sockets) | -EINPROGRESS | -errno failed
//   connectDone(b) ──> on the protocol's EPOLLOUT while CONNECTING: SO_ERROR; 0 | -errno failed
//   both "done" paths send the backend's PROXY header first (send-proxy), which can fail too, then, for a
//   TLS backend, start its handshake (transport/tls-client.ts): -EINPROGRESS until its events finish it
//
// A failure is counted here (CONNECT_ERRORS), charged to its server (passive health: enough in a row take a
// checked server down until its checks bring it back), and given back as a termination code (connectTerm):
// whether to try another server, and what the client is told, is its protocol's to decide. Deadlines are
// the protocol's as well.

import { CTR, SV, observe, svBase } from '../core/counters.js';
import { LEVEL } from '../core/log.js';
import { TERM } from '../core/term.js';
import { FL, KIND, ST, XPRT } from '../core/types.js';
import { CONN_EVENTS, sendHeader, tlsConnectStart, tlsConnectStep, tlsConnecting } from '../transport/index.js';
import { E, SOCK, close, connect, epollAdd, errnoName, lastSslCode, peerAddressBytes, setNoDelay, sockError, socket, sslReason } from '../sys/index.js';
import { pick } from './balance.js';
import { BALANCE, type Backend, type RouteContext, SRV, type Server, hashString, mix, where } from './routes.js';

/** The last failure below, for the log line that says why: the call that failed, and its errno (0: timeout). */
export let lastConnectCall = 'connect';
export let lastConnectErrno = 0;
export let lastConnectServer: Server | null = null;

const addrBytes = new Uint8Array(16);

/**
 * A server of backend `be` for client c: for its first attempt (`failed` -1), or to try again after the
 * server with id `failed` failed, on another one, while `be.retries` last (HAProxy's retries with
 * redispatch; never the same server again at once: a connect it just refused or let time out would most
 * likely fail again). Null when none can take it.
 */
export function chooseServer(ctx: RouteContext, c: number, be: Backend, failed: number): Server | null {
  if (failed < 0) ctx.attempts[c] = 0;
  else if (ctx.attempts[c] >= be.retries) return null;
  const s = pick(ctx, be, be.balance === BALANCE.HASH ? clientKey(ctx, c) : 0, failed);
  if (s !== null && failed >= 0) {
    ctx.attempts[c]++;
    ctx.t.ctr[svBase(failed) + SV.RETRIES]++;
    if (ctx.alog.on[ctx.t.fe[c]]) ctx.alog.retries[c]++;
  }
  return s;
}

/** Client c's address hashed, for the consistent hash: the one its PROXY header named, else its socket's peer. */
function clientKey(ctx: RouteContext, c: number): number {
  const known = c < ctx.pp.client.length ? ctx.pp.client[c] : null;
  if (known) return hashString(known.srcAddr);
  const n = peerAddressBytes(ctx.t.fd[c], addrBytes);
  let h = 0x811c9dc5;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ addrBytes[i], 0x01000193);
  return mix(h);
}

/**
 * A new connection to server `srv` for client c, in a BACKEND slot of protocol `proto` paired with c and
 * counted in srv's active connections. Returns the slot, or -TERM when none could be made
 * (BACKEND_UNREACHABLE: no socket; TABLE_FULL; INTERNAL): then nothing is left open and c is as it was.
 * Call startConnect() next.
 */
export function openBackend(ctx: RouteContext, c: number, srv: Server, proto: number): number {
  const t = ctx.t;
  const fd = socket(srv.family, SOCK.STREAM | SOCK.NONBLOCK | SOCK.CLOEXEC, 0);
  if (fd < 0) {
    lastConnectCall = 'socket';
    failed(ctx, srv, fd);
    return -TERM.BACKEND_UNREACHABLE;
  }
  if (t.free < 1) {
    close(fd); // never had a slot
    return -TERM.TABLE_FULL;
  }
  if (srv.isTcp) setNoDelay(fd);
  const b = t.acquire(KIND.BACKEND, ST.CONNECTING, fd);
  t.proto[b] = proto;
  t.xprt[b] = XPRT.PLAIN;
  t.fe[b] = t.fe[c];
  t.srv[b] = srv.id;
  t.born[b] = t.since[b] = ctx.hrNow;
  t.ctr[svBase(srv.id) + SV.CONNECTS]++;
  if (ctx.alog.on[t.fe[c]]) ctx.alog.srv[c] = srv.id;
  const r = epollAdd(ctx.epfd, fd, CONN_EVENTS, b, t.gen[b]);
  if (r < 0) {
    lastConnectCall = 'epoll_ctl ADD backend';
    lastConnectErrno = r;
    ctx.closeSlot(b, false);
    return -TERM.INTERNAL;
  }
  t.peer[c] = b;
  t.peer[b] = c;
  holdServer(ctx, b);
  return b;
}

/**
 * connect() for backend slot b: 0 when it connected at once (and its PROXY header went out), -EINPROGRESS
 * while it goes on (its EPOLLOUT comes to connectDone()), or a negative failure: see connectTerm().
 */
export function startConnect(ctx: RouteContext, b: number): number {
  const srv = ctx.servers[ctx.t.srv[b]]!;
  const r = connect(ctx.t.fd[b], srv.sa, srv.sa.length);
  if (r === -E.EINPROGRESS) return r;
  lastConnectCall = 'connect';
  return r === 0 ? connected(ctx, b, srv) : failed(ctx, srv, r);
}

/**
 * An event for backend slot b while CONNECTING: its connect ended (EPOLLOUT, HUP or ERR), or its TLS
 * handshake moved. 0 when connected (and its handshake done), -EINPROGRESS while the handshake goes on,
 * else < 0.
 */
export function connectDone(ctx: RouteContext, b: number): number {
  const srv = ctx.servers[ctx.t.srv[b]]!;
  if (tlsConnecting(b)) return handshook(ctx, b, srv, tlsConnectStep(ctx.t, b));
  const err = sockError(ctx.t.fd[b]);
  lastConnectCall = 'connect';
  if (err !== 0) return failed(ctx, srv, err > 0 ? -err : err);
  return connected(ctx, b, srv);
}

/** A TLS handshake step to srv gave `r` (1 done, 0 wait, < 0 failed): what connectDone() returns for it. */
function handshook(ctx: RouteContext, b: number, srv: Server, r: number): number {
  if (r === 0) return -E.EINPROGRESS;
  if (r < 0) {
    lastConnectCall = r === -E.EPROTO ? `TLS handshake (${sslReason(lastSslCode)})` : 'TLS handshake';
    return failed(ctx, srv, r);
  }
  return ready(ctx, b, srv);
}

/** Backend slot b's connect, given up by its protocol at its deadline: counted and charged; CONNECT_TIMEOUT. */
export function connectTimedOut(ctx: RouteContext, b: number): number {
  lastConnectCall = 'connect';
  failed(ctx, ctx.servers[ctx.t.srv[b]]!, 0);
  return TERM.CONNECT_TIMEOUT;
}

/** The termination code for a negative result of startConnect() or connectDone(). */
export function connectTerm(r: number): number {
  return r === -E.ECONNREFUSED ? TERM.BACKEND_REFUSED : TERM.BACKEND_UNREACHABLE;
}

/** Backend slot b now carries a client: counted in its server's active connections, once (FL.BUSY). */
export function holdServer(ctx: RouteContext, b: number): void {
  const t = ctx.t;
  if (t.flags[b] & FL.BUSY) return;
  t.flags[b] |= FL.BUSY;
  ctx.servers[t.srv[b]]!.active++;
  t.ctr[svBase(t.srv[b]) + SV.ACTIVE]++;
}

/** Backend slot b no longer carries a client (it went idle, or it is closing). */
export function releaseServer(ctx: RouteContext, b: number): void {
  const t = ctx.t;
  if (!(t.flags[b] & FL.BUSY)) return;
  t.flags[b] &= ~FL.BUSY;
  ctx.servers[t.srv[b]]!.active--;
  t.ctr[svBase(t.srv[b]) + SV.ACTIVE]--;
}

function connected(ctx: RouteContext, b: number, srv: Server): number {
  const t = ctx.t;
  const be = srv.backend;
  if (be !== null && be.sendProxy !== 0 && t.peer[b] >= 0) {
    const r = sendHeader(ctx, t.peer[b], b, be.sendProxy);
    if (r < 0) return failed(ctx, srv, r);
  }
  // TLS to the server (the PROXY header, if any, went first, in the clear).
  if (be !== null && be.tls !== null) return handshook(ctx, b, srv, tlsConnectStart(t, b, be.index, be.tls, srv.tlsName, srv.tlsIsIp));
  return ready(ctx, b, srv);
}

/** Backend slot b is connected to srv, handshake and all: its failures in a row end, its connect time is counted. */
function ready(ctx: RouteContext, b: number, srv: Server): number {
  const t = ctx.t;
  srv.fails = 0;
  const ms = ctx.hrNow - t.since[b];
  observe(t.ctr, svBase(srv.id) + SV.CONNECT_TIME, ms / 1000);
  const c = t.peer[b];
  if (c >= 0 && ctx.alog.on[t.fe[c]]) ctx.alog.tc[c] = ms;
  return 0;
}

/**
 * A connect to srv failed with `err` (0: it took too long): counted, and charged to srv. Enough failures in a
 * row (its checks' `fall`) take a checked server down: no pick chooses it until its checks see it answer
 * again, and its idle connections in this worker are closed. The worker that takes it down says so, once.
 */
function failed(ctx: RouteContext, srv: Server, err: number): number {
  lastConnectErrno = err;
  lastConnectServer = srv;
  ctx.t.ctr[CTR.CONNECT_ERRORS]++;
  ctx.t.ctr[svBase(srv.id) + SV.CONNECT_ERRORS]++;
  srv.fails++;
  const be = srv.backend;
  if (be !== null && be.checked && srv.fails >= be.fall && Atomics.compareExchange(ctx.serverState, srv.id, SRV.UP, SRV.DOWN) === SRV.UP) {
    ctx.log.warn(`${where(be, srv)} is DOWN: ${srv.fails} connects in a row failed (last: ${err === 0 ? 'timeout' : `${lastConnectCall}: ${errnoName(err)}`}); its health checks will bring it back`);
    srv.drainIdle(ctx.t, (b) => ctx.closeSlot(b, false));
  }
  return err;
}
