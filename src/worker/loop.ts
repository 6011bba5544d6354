// One worker's event loop: an edge-triggered epoll set over its frontends' listeners, the waker eventfd and
// every connection in this worker's table. Runs synchronously inside a worker thread, from start to stop.
// It is the one place that knows every protocol: it dispatches each slot's events with a switch on the
// slot's kind, then on its protocol (the table's `proto` column).
//
//   epoll_wait(timeout) ──> for each event: drop it if its generation is stale, else by kind:
//        ^                    LISTENER: accept        WAKER: the mailbox
//        │                    CLIENT/BACKEND, by proto: HANDSHAKE (PROXY header), TUNNEL, H1_CLIENT, H1_SERVER
//        │                 then the ready queue (connections that stopped early to be fair), then deadlines
//        └──────────────── until told to stop, or draining with no connection left
//
// Edge-triggered means an fd reports readiness once per change. Whoever stops reading before EAGAIN must
// remember it: FL.READABLE stays set and the slot goes on the ready queue (invariant 4).

import type { MessagePort } from 'node:worker_threads';
import { CTR, FE, TERM_BASE, feBase, statusClass } from '../core/counters.js';
import { AccessLog } from '../core/accesslog.js';
import { LEVEL, Logger } from '../core/log.js';
import { BufferPool, PipePool } from '../core/pools.js';
import { ConnTable } from '../core/table.js';
import { TERM } from '../core/term.js';
import { TimerWheel } from '../core/timers.js';
import { CTL, FL, KIND, PROTO, ST, WSTATE, XPRT } from '../core/types.js';
import * as h1client from '../http/client.js';
import { drainSlot } from '../http/exchange.js';
import { generated } from '../http/responses.js';
import * as h1server from '../http/server.js';
import { H1State, type H1Context, roomForClient } from '../http/state.js';
import { type Backend, type BackendConfig, type Frontend, type FrontendConfig, MODE, type Server, applyRoutes, releaseServer } from '../route/index.js';
import {
  CONN_EVENTS, ProxyState, configureBackendTls, configureTls, endInternal, endPair, intake, intakeTimeout, noteEvents, releaseSlot, sendUnslotted,
  tlsAccept, tlsAfterProxy, tlsFailed, tlsStart,
} from '../transport/index.js';
import { Faults } from '../toxic/index.js';
import * as tunnel from '../tunnel.js';
import {
  E, EPOLL, EventBuffer, SOCK, accept4, close, epollAdd, epollCreate, epollWait, epollWaitFine, errnoName, read, setNoDelay,
} from '../sys/index.js';
import { type ControlMessage, readMailbox } from './mailbox.js';

/** Everything a worker is started with (workerData). Plain data, and its mailbox: it crosses the thread boundary. */
export type WorkerConfig = {
  index: number;
  sab: SharedArrayBuffer;
  capacity: number;
  /** One listening socket per frontend, by frontend index (-1 for a frontend taken out). */
  listenFds: number[];
  /** Owned by the main thread, which signals it after posting to the mailbox and closes it after the worker exits. */
  wakeFd: number;
  mailbox: MessagePort;
  /** By stable index; null for one a reload took out. */
  frontends: (FrontendConfig | null)[];
  backends: (BackendConfig | null)[];
  /** The server states every worker and the main thread share (route/routes.ts): Int32 x MAX_SERVERS. */
  serverState: SharedArrayBuffer;
  /** The access log's ring (core/accesslog.ts), read by the main thread. */
  ring: SharedArrayBuffer;
  /** The reload these tables are from (CTL.ROUTES): a worker restarted after a reload starts with its tables. */
  routesGeneration: number;
  bufferSize: number;
  maxPipes: number;
  logLevel: number;
  /** Seeds the toxics' random draws (src/toxic/); absent: from the clock. Worker i uses seed + i. */
  seed?: number | null;
};

// One epoll_wait returns at most this many events. 256 keeps the event buffer at 3 KiB and amortises the
// call; a larger batch only delays the ready queue and the mailbox.
const MAX_EVENTS = 256;
// Connections accepted per listener event before the others get a turn (the listener is re-queued).
const ACCEPTS_PER_TURN = 64;
// After EMFILE/ENFILE at accept, wait this long before trying again, as HAProxy pauses its listeners:
// retrying at once would spin on a listener that stays readable.
const ACCEPT_PAUSE_MS = 100;
// Idle buffers and pipes kept per worker once returned; beyond this they are freed (buffers: their pages
// given back, at most once every TRIM_EVERY_MS).
const KEEP_IDLE = 64;
const TRIM_EVERY_MS = 1000;

export class WorkerLoop implements H1Context {
  readonly t: ConnTable;
  readonly bufs: BufferPool;
  readonly pipes: PipePool;
  readonly log: Logger;
  readonly alog: AccessLog;
  readonly epfd: number;
  readonly timers: TimerWheel;
  readonly frontends: Frontend[] = [];
  readonly backends: Backend[] = [];
  readonly servers: (Server | undefined)[] = [];
  readonly serverState: Int32Array;
  readonly attempts: Uint8Array;
  /** Sized for the table once a frontend or backend needs them (a reload may bring the first), else empty. */
  pp: ProxyState;
  h1: H1State;
  readonly faults: Faults;
  now = Date.now();
  hrNow = performance.timeOrigin + performance.now();
  draining = false;
  private stopping = false;
  private readonly ev = new EventBuffer(MAX_EVENTS);
  private readonly eventfdBuf = Buffer.alloc(8);
  private readonly mailbox: MessagePort;
  // The ready queue: a ring of (slot, gen), each slot at most once (FL.QUEUED).
  private readonly qSlot: Int32Array;
  private readonly qGen: Uint32Array;
  private qHead = 0;
  private qLen = 0;
  /** The listener slot of each frontend, by index; -1 when it has none (taken out, or draining). */
  private readonly listenerSlots: number[] = [];
  private readonly wakerSlot: number;
  private acceptPausedUntil = 0;
  private nextTrim = 0;

  constructor(cfg: WorkerConfig) {
    const C = cfg.capacity;
    this.log = new Logger(cfg.logLevel, `w${cfg.index}`);
    this.t = new ConnTable(cfg.sab, C);
    this.t.init();
    Atomics.store(this.t.ctl, CTL.ROUTES, cfg.routesGeneration);
    this.serverState = new Int32Array(cfg.serverState);
    this.attempts = new Uint8Array(C);
    this.alog = new AccessLog(cfg.ring);
    this.alog.configure(cfg.frontends, C);
    applyRoutes(this, cfg.frontends, cfg.backends);
    configureTls(cfg.frontends, C, this.log);
    configureBackendTls(cfg.backends, C, this.log);
    this.faults = new Faults(cfg.seed != null ? cfg.seed + cfg.index : (Math.random() * 2 ** 32) >>> 0);
    // A slot holds at most one buffer (its outbox, or a handshake's inbox), an HTTP slot two (invariant 5).
    // Two per slot are allowed from the start, whatever the frontends (the pool's index arrays cost about 20
    // bytes a slot; its buffers are made only when used): a reload may bring the first HTTP frontend.
    this.bufs = new BufferPool(cfg.bufferSize, 2 * C, KEEP_IDLE, this.t.ctr);
    this.pipes = new PipePool(cfg.bufferSize, cfg.maxPipes, KEEP_IDLE, this.t.ctr);
    this.h1 = new H1State(0);
    this.pp = new ProxyState(0);
    this.sizeState(cfg.frontends, cfg.backends);
    this.timers = new TimerWheel(C, Date.now());
    this.faults.update(this);
    this.qSlot = new Int32Array(C);
    this.qGen = new Uint32Array(C);
    this.mailbox = cfg.mailbox;
    this.epfd = epollCreate();
    cfg.listenFds.forEach((fd, i) => (this.listenerSlots[i] = fd < 0 ? -1 : this.register(KIND.LISTENER, fd, i)));
    this.wakerSlot = this.register(KIND.WAKER, cfg.wakeFd, 0);
  }

  private register(kind: number, fd: number, fe: number): number {
    const s = this.t.acquire(kind, ST.OPEN, fd);
    this.t.fe[s] = fe;
    const r = epollAdd(this.epfd, fd, (EPOLL.IN | EPOLL.ET) >>> 0, s, this.t.gen[s]);
    if (r < 0) throw new Error(`epoll_ctl ADD ${kind === KIND.LISTENER ? 'listener' : 'eventfd'}: ${errnoName(r)}`);
    return s;
  }

  /** Runs until told to stop. Returns with every fd this worker owned closed. */
  run(): void {
    const t = this.t;
    const ev = this.ev;
    Atomics.store(t.ctl, CTL.STATE, WSTATE.RUNNING);
    this.log.debug(`running, ${t.capacity} slots`);
    while (!this.stopping) {
      if (this.draining && t.ctr[CTR.ACTIVE] === 0) break;
      const ms = this.waitMs(Date.now());
      // A fault clock's wake has a fraction of a millisecond; every other timeout is whole.
      const n = ms % 1 === 0 ? epollWait(this.epfd, ev.bytes, MAX_EVENTS, ms) : epollWaitFine(this.epfd, ev.bytes, MAX_EVENTS, ms);
      if (n < 0) throw new Error(`epoll_wait: ${errnoName(n)}`);
      this.now = Date.now();
      this.hrNow = performance.timeOrigin + performance.now();
      for (let i = 0; i < n; i++) {
        const s = ev.slot(i);
        // Invariant 2: an event whose generation differs from the slot's is for an fd since closed.
        if (ev.gen(i) !== t.gen[s]) continue;
        switch (t.kind[s]) {
          case KIND.CLIENT:
          case KIND.BACKEND:
            this.dispatch(s, ev.events(i));
            break;
          case KIND.LISTENER:
            this.acceptBatch(s);
            break;
          case KIND.WAKER:
            this.onWake();
            break;
        }
      }
      if (this.acceptPausedUntil > 0 && this.now >= this.acceptPausedUntil) {
        this.acceptPausedUntil = 0;
        for (const s of this.listenerSlots) if (s >= 0) this.enqueue(s);
      }
      this.runReady();
      if (this.timers.armed > 0) this.timers.advance(this.now, this.onTimer);
      const clock = this.faults.clock;
      if (clock !== null && clock.pending) clock.advance(this.hrNow, t.gen, this.onFault);
    }
    this.shutdownAll();
  }

  /**
   * epoll_wait's timeout from `now` (the clock as the wait begins): 0 with a ready queue, else until the
   * first of the accept pause's end, the nearest deadline's tick (timers.ts), the buffer trim, and the end
   * of a second with log lines held back (log.ts); -1 (block) when there is none. Trims the buffer pool
   * and reports held log lines when their time has come, whatever the timeout.
   */
  private waitMs(now: number): number {
    let timeout = this.qLen > 0 ? 0 : this.acceptPausedUntil > 0 ? Math.max(0, this.acceptPausedUntil - now) : -1;
    const sooner = (due: number) => (timeout = timeout < 0 ? due : Math.min(timeout, due));
    if (this.timers.armed > 0 && timeout !== 0) sooner(this.timers.timeoutMs(now));
    const clock = this.faults.clock;
    if (clock !== null && clock.pending && timeout !== 0) {
      const due = clock.timeoutMs(performance.timeOrigin + performance.now());
      if (due >= 0) sooner(due);
    }
    const lanes = this.faults.lanes;
    if (lanes !== null && lanes.excess > 0 && now >= this.nextTrim) lanes.trim();
    if (this.bufs.excess > 0) {
      // Buffer pages beyond the warm reserve go back once a second (pools.ts).
      if (now >= this.nextTrim) {
        this.bufs.trim();
        this.nextTrim = now + TRIM_EVERY_MS;
      } else if (timeout !== 0) sooner(this.nextTrim - now);
    }
    if (this.log.pending > 0) {
      const due = this.log.flushHeld(now);
      if (due >= 0 && timeout !== 0) sooner(due);
    }
    return timeout;
  }

  /** An event for a connection: its protocol's handler. */
  private dispatch(s: number, events: number): void {
    switch (this.t.proto[s]) {
      case PROTO.TUNNEL:
        tunnel.onEvent(this, s, events);
        return;
      case PROTO.H1_CLIENT:
        h1client.onEvent(this, s, events);
        return;
      case PROTO.H1_SERVER:
        h1server.onEvent(this, s, events);
        return;
      case PROTO.HANDSHAKE: {
        noteEvents(this.t, s, events);
        const got = intake(this, s);
        if (got > 0 && this.frontends[this.t.fe[s]].tls) tlsAfterProxy(this, s, got); // the handshake follows
        const proto: number = this.t.proto[s]; // what the calls above made of it
        if (got > 0 && proto === PROTO.HANDSHAKE) this.startProtocol(s, got);
        if (proto === PROTO.TLS) this.tlsTurn(s);
        return;
      }
      case PROTO.TLS:
        noteEvents(this.t, s, events);
        this.tlsTurn(s);
        return;
    }
  }

  /** A step of client s's TLS handshake; once done, its protocol, with a turn at once for what came with it. */
  private tlsTurn(s: number): void {
    const r = tlsAccept(this.t, s);
    if (r < 0) tlsFailed(this, s, r, this.frontends[this.t.fe[s]].headerTimeoutMs);
    if (r !== 1) return;
    this.startProtocol(s, 0);
    if (this.t.kind[s] === KIND.CLIENT) this.enqueue(s);
  }

  /** Runs slot s's protocol now: a ready-queue turn, or one side of a pair resuming the other. */
  resume(s: number): void {
    switch (this.t.proto[s]) {
      case PROTO.TUNNEL:
        tunnel.resume(this, s);
        return;
      case PROTO.H1_CLIENT:
        h1client.progress(this, s);
        return;
      case PROTO.H1_SERVER:
        h1server.resume(this, s);
        return;
    }
  }

  /** The fault clock (src/toxic/) woke slot s: a held piece, request or response head is due; it goes on. */
  private readonly onFault = (s: number): void => this.resume(s);

  private readonly onTimer = (s: number): void => {
    switch (this.t.proto[s]) {
      case PROTO.TUNNEL:
        tunnel.onTimer(this, s);
        return;
      case PROTO.H1_CLIENT:
        h1client.onTimer(this, s);
        return;
      case PROTO.H1_SERVER:
        h1server.onTimer(this, s);
        return;
      case PROTO.HANDSHAKE:
        intakeTimeout(this, s, this.frontends[this.t.fe[s]].headerTimeoutMs);
        return;
      case PROTO.TLS:
        tlsFailed(this, s, -E.ETIMEDOUT, this.frontends[this.t.fe[s]].headerTimeoutMs);
        return;
    }
  };

  /**
   * Client c starts its frontend's protocol: at accept (`got` 0), or once its PROXY header (`got` bytes of
   * its inbox) came whole.
   */
  private startProtocol(c: number, got: number): void {
    if (this.frontends[this.t.fe[c]].mode === MODE.HTTP) {
      // After a PROXY header (and a TLS handshake behind it), X-Forwarded-For names whom the header named.
      if (got > 0 || this.pp.client[c]) h1client.afterHandshake(this, c, got);
      else h1client.open(this, c);
    } else {
      tunnel.open(this, c, got);
    }
  }

  enqueue(s: number): void {
    const t = this.t;
    if (t.flags[s] & FL.QUEUED) return;
    t.flags[s] |= FL.QUEUED;
    const at = (this.qHead + this.qLen) % this.qSlot.length;
    this.qSlot[at] = s;
    this.qGen[at] = t.gen[s];
    this.qLen++;
  }

  /** Gives each slot queued before this call one more turn; slots queued during it wait for the next. */
  private runReady(): void {
    const t = this.t;
    for (let n = this.qLen; n > 0; n--) {
      const s = this.qSlot[this.qHead];
      const gen = this.qGen[this.qHead];
      this.qHead = (this.qHead + 1) % this.qSlot.length;
      this.qLen--;
      if (t.gen[s] !== gen) continue; // released (and perhaps reused) since it was queued
      t.flags[s] &= ~FL.QUEUED;
      if (t.kind[s] === KIND.LISTENER) this.acceptBatch(s);
      else this.resume(s);
    }
  }

  private acceptBatch(s: number): void {
    if (this.acceptPausedUntil > 0 || this.draining) return;
    const lfd = this.t.fd[s];
    const f = this.frontends[this.t.fe[s]];
    for (let i = 0; i < ACCEPTS_PER_TURN; i++) {
      const fd = accept4(lfd, SOCK.NONBLOCK | SOCK.CLOEXEC);
      if (fd >= 0) {
        this.t.ctr[CTR.ACCEPTED]++;
        this.admit(fd, f);
        continue;
      }
      switch (-fd) {
        case E.EAGAIN:
          return;
        case E.ECONNABORTED: // the client gave up while queued: nothing to do
        case E.EPERM: // a firewall rule refused it
          continue;
        case E.EMFILE:
        case E.ENFILE:
        case E.ENOBUFS:
        case E.ENOMEM:
          this.log.limited(LEVEL.error, 'accept-fd', `accept: ${errnoName(fd)}; pausing accepts for ${ACCEPT_PAUSE_MS} ms`);
          this.acceptPausedUntil = this.now + ACCEPT_PAUSE_MS;
          return;
        default:
          this.log.limited(LEVEL.error, 'accept', `accept: ${errnoName(fd)}`);
          return;
      }
    }
    this.enqueue(s); // more may be waiting: come back after the others had a turn
  }

  /**
   * A new client of frontend f: a slot, and its frontend's protocol, or first the PROXY header intake. A
   * full table refuses it: an HTTP frontend keeps slots for backend connections and answers 503.
   */
  private admit(fd: number, f: Frontend): void {
    const t = this.t;
    const http = f.mode === MODE.HTTP;
    if (http ? !roomForClient(t, this.h1) : t.free < 2) {
      this.refuseFull(fd, f);
      return;
    }
    setNoDelay(fd);
    const c = t.acquire(KIND.CLIENT, ST.PP_WAIT, fd);
    t.fe[c] = f.index;
    t.xprt[c] = XPRT.PLAIN;
    t.born[c] = t.since[c] = t.seen[c] = this.hrNow;
    t.ctr[CTR.ACTIVE]++;
    const fb = feBase(f.index);
    t.ctr[fb + FE.ACCEPTED]++;
    t.ctr[fb + FE.ACTIVE]++;
    if (this.alog.on[f.index]) this.alog.accepted(t, c, fd);
    const r = epollAdd(this.epfd, fd, CONN_EVENTS, c, t.gen[c]);
    if (r < 0) {
      endInternal(this, c, 'epoll_ctl ADD client', r);
      return;
    }
    if (f.acceptProxy) {
      t.proto[c] = PROTO.HANDSHAKE;
      this.timers.arm(c, this.now + f.headerTimeoutMs);
    } else if (f.tls) {
      tlsStart(this, c, f.headerTimeoutMs);
    } else {
      this.startProtocol(c, 0);
    }
  }

  /** A connection accepted while the table is full: counted, logged, closed (HTTP: with a 503 first). */
  private refuseFull(fd: number, f: Frontend): void {
    const t = this.t;
    const http = f.mode === MODE.HTTP;
    const fb = feBase(f.index);
    t.ctr[CTR.REFUSED_FULL]++;
    t.ctr[TERM_BASE + TERM.TABLE_FULL]++;
    t.ctr[fb + FE.ACCEPTED]++;
    t.ctr[fb + FE.REFUSED]++;
    t.ctr[fb + FE.TERM + TERM.TABLE_FULL]++;
    if (http && !f.tls) t.ctr[fb + FE.STATUS + statusClass(503)]++;
    if (http && !f.tls) {
      t.ctr[CTR.GENERATED]++;
      sendUnslotted(fd, generated(503));
    }
    if (this.log.admits(LEVEL.warn, TERM.TABLE_FULL)) {
      this.log.limited(
        LEVEL.warn,
        TERM.TABLE_FULL,
        http
          ? `connection table full (${t.capacity} slots, ${this.h1.reserve} of them kept for backend connections): answered 503`
          : `connection table full (${t.capacity} slots): refused a connection`,
      );
    }
    close(fd); // this fd never had a slot, so closeSlot() is not for it
  }

  private onWake(): void {
    // Drain the eventfd counter so the next signal is a new edge, then read every message.
    read(this.t.fd[this.wakerSlot], this.eventfdBuf, 8);
    readMailbox(this.mailbox, this.onMessage);
  }

  private readonly onMessage = (m: ControlMessage): void => {
    switch (m.type) {
      case 'stop':
        this.stopping = true;
        return;
      case 'drain':
        if (!this.draining) this.drain();
        return;
      case 'routes':
        this.reroute(m.frontends, m.backends, m.listenFds);
        Atomics.store(this.t.ctl, CTL.ROUTES, m.generation);
        return;
      case 'server-down':
        this.servers[m.id]?.drainIdle(this.t, this.closeIdle);
        return;
      case 'weight': {
        const s = this.servers[m.id];
        if (s) s.weight = m.weight;
        return;
      }
      case 'close':
        if (this.t.gen[m.slot] === m.gen && this.t.kind[m.slot] === KIND.CLIENT) endPair(this, m.slot, TERM.KILLED, false);
        return;
      case 'log-level':
        this.log.level = m.level;
        return;
      case 'close-frontend':
        this.closeFrontend(m.fe);
        return;
    }
  };

  private readonly closeIdle = (b: number): void => this.closeSlot(b, false);

  /**
   * A reload: the route tables become `frontends` and `backends`; a new frontend's listener is `listenFds`
   * at its index (this worker's own socket). A frontend taken out stops accepting and lets its idle HTTP
   * clients go, as a drain does for it alone; the rest of its connections finish. A server no backend has
   * any more has its idle connections closed. Connections already paired keep their server.
   */
  private reroute(frontends: (FrontendConfig | null)[], backends: (BackendConfig | null)[], listenFds: number[]): void {
    const had = frontends.map((_, i) => this.frontends[i] !== undefined);
    const changes = applyRoutes(this, frontends, backends);
    // An index given again (its frontend retired, every connection of it closed): its counters start over.
    for (const i of changes.added) if (had[i]) this.t.ctr.fill(0, feBase(i), feBase(i) + FE.SIZE);
    this.alog.configure(frontends, this.t.capacity);
    this.sizeState(frontends, backends);
    this.faults.update(this);
    configureTls(frontends, this.t.capacity, this.log);
    configureBackendTls(backends, this.t.capacity, this.log);
    for (const i of changes.removed) {
      const s = this.listenerSlots[i] ?? -1;
      if (s >= 0) this.closeSlot(s, false);
      this.listenerSlots[i] = -1;
      if (this.frontends[i].mode === MODE.HTTP) this.letIdleGo(i);
    }
    for (const i of changes.added) {
      if (this.draining) close(listenFds[i]);
      else this.listenerSlots[i] = this.register(KIND.LISTENER, listenFds[i], i);
    }
    for (const s of changes.dropped) s.drainIdle(this.t, this.closeIdle);
  }

  /**
   * Makes the HTTP state once a frontend speaks HTTP, and the PROXY protocol state once a frontend accepts
   * or a backend sends the header: until then no slot reads them, and a worker that needs neither keeps
   * their per-slot arrays (about 60 bytes a slot of capacity) unmade.
   */
  private sizeState(frontends: readonly (FrontendConfig | null)[], backends: readonly (BackendConfig | null)[]): void {
    const C = this.t.capacity;
    if (this.h1.hf.length === 0 && frontends.some((f) => f?.mode === 'http')) this.h1 = new H1State(C);
    const proxied = frontends.some((f) => f?.acceptProxy) || backends.some((b) => b !== null && b.sendProxy !== 0);
    if (this.pp.client.length === 0 && proxied) this.pp = new ProxyState(C);
  }

  /** Ends every client connection of frontend fe, and its backend side with it. */
  private closeFrontend(fe: number): void {
    const t = this.t;
    for (let s = 0; s < t.capacity; s++) if (t.kind[s] === KIND.CLIENT && t.fe[s] === fe) endPair(this, s, TERM.STOPPED, false);
  }

  /** Closes frontend fe's HTTP clients that wait between requests, and its clients that sent nothing yet. */
  private letIdleGo(fe: number): void {
    const t = this.t;
    for (let s = 0; s < t.capacity; s++) {
      if (t.kind[s] !== KIND.CLIENT || t.fe[s] !== fe) continue;
      if (t.proto[s] === PROTO.H1_CLIENT) drainSlot(this, s);
      else if (t.proto[s] === PROTO.HANDSHAKE && t.ilen[s] === 0) endPair(this, s, TERM.STOPPED, false);
    }
  }

  /**
   * Stops accepting (the listeners close: new connections to the port are refused once every worker did),
   * closes what is idle, and lets the rest finish: HTTP clients between requests (and ones that sent
   * nothing of their PROXY header yet) and pooled backend connections are closed now.
   */
  private drain(): void {
    const t = this.t;
    this.draining = true;
    Atomics.store(t.ctl, CTL.STATE, WSTATE.DRAINING);
    for (const s of this.listenerSlots) if (s >= 0) this.closeSlot(s, false);
    this.listenerSlots.length = 0;
    for (let s = 0; s < t.capacity; s++) {
      switch (t.proto[s]) {
        case PROTO.H1_CLIENT:
        case PROTO.H1_SERVER:
          drainSlot(this, s);
          break;
        case PROTO.HANDSHAKE:
          if (this.frontends[t.fe[s]].mode === MODE.HTTP && t.ilen[s] === 0) endPair(this, s, TERM.STOPPED, false);
          break;
      }
    }
    // Every pooled connection was closed above; the pools forget them.
    for (const srv of this.servers) srv?.drainIdle(t, this.closeIdle);
    this.log.debug(`draining, ${t.ctr[CTR.ACTIVE]} connections open`);
  }

  closeSlot(s: number, abort: boolean): void {
    const t = this.t;
    if (t.kind[s] === KIND.BACKEND) releaseServer(this, s);
    switch (t.proto[s]) {
      case PROTO.H1_CLIENT:
      case PROTO.H1_SERVER:
        this.h1.release(s, this.bufs);
        break;
    }
    if (t.kind[s] === KIND.CLIENT) this.pp.release(s);
    else if (t.kind[s] === KIND.LISTENER) this.listenerSlots[t.fe[s]] = -1;
    this.faults.release(s);
    releaseSlot(this, s, abort);
  }

  /** At stop (or the end of a drain): closes every connection, the listeners, the waker and the pools. */
  private shutdownAll(): void {
    const t = this.t;
    let cut = 0;
    for (let s = 0; s < t.capacity; s++) {
      if (t.kind[s] === KIND.CLIENT) {
        cut++;
        endPair(this, s, TERM.STOPPED, false);
      }
    }
    if (cut > 0) this.log.info(`stopped with ${cut} connection(s) still open: closed them`);
    for (let s = 0; s < t.capacity; s++) {
      if (t.kind[s] === KIND.WAKER) t.release(s); // the main thread owns the eventfd
      else if (t.kind[s] !== KIND.NONE) this.closeSlot(s, false);
    }
    this.pipes.closeAll();
    close(this.epfd);
    Atomics.store(t.ctl, CTL.STATE, WSTATE.STOPPED);
  }
}
