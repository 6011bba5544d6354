// One worker's event loop: an edge-triggered epoll set over the listener, the waker eventfd and every
// connection in this worker's table. Runs synchronously inside a worker thread, from start to stop.
//
//   epoll_wait(timeout) ──> for each event: drop it if its generation is stale, else switch on the slot's
//        ^                   kind (LISTENER: accept, WAKER: control word, CLIENT/BACKEND: tcp.onEvent)
//        │                 then run the ready queue (connections that stopped early to be fair)
//        └──────────────── until STOP, or DRAIN and no connection left
//
// Edge-triggered means an fd reports readiness once per change. Whoever stops reading before EAGAIN must
// remember it: FL.READABLE stays set and the slot goes on the ready queue (invariant 4).

import { Logger } from '../log.js';
import {
  type Address,
  E,
  EPOLL,
  EventBuffer,
  SOCK,
  accept4,
  addressFamily,
  close,
  encodeSockaddr,
  epollAdd,
  epollCreate,
  epollWait,
  errnoName,
  formatAddress,
  read,
  setLingerZero,
} from '../sys/index.js';
import { BufferPool, PipePool } from './pools.js';
import { ConnTable } from './table.js';
import * as http from './http.js';
import { ProxyProtocolState, type ProxyProtocolOptions } from './proxied.js';
import * as tcp from './tcp.js';
import { TimerWheel } from './timers.js';
import { CMD, CTL, CTR, FL, KIND, ST, WSTATE } from './types.js';

export const SPLICE_MODE = { OFF: 0, ON: 1, AUTO: 2 } as const;

/** Everything a worker is started with (workerData). Plain data: it crosses the thread boundary. */
export type WorkerConfig = {
  index: number;
  sab: SharedArrayBuffer;
  capacity: number;
  listenFd: number;
  /** Owned by the main thread, which signals it after writing CTL.CMD and closes it after the worker exits. */
  wakeFd: number;
  backend: Address;
  splice: 'on' | 'off' | 'auto';
  bufferSize: number;
  maxPipes: number;
  logLevel: number;
  /** The connect and tunnel deadlines, in either mode. */
  tcp: tcp.TcpOptions;
  /** Set in HTTP mode; null in TCP mode. */
  http: http.HttpOptions | null;
  /** --accept-proxy / --send-proxy; null when neither is on. */
  proxyProtocol: ProxyProtocolOptions | null;
};

// One epoll_wait returns at most this many events. 256 keeps the event buffer at 3 KiB and amortises the
// call; a larger batch only delays the ready queue and the control word.
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

/** The events every connection is registered for, once, for its whole life (no EPOLL_CTL_MOD). */
export const CONN_EVENTS = (EPOLL.IN | EPOLL.OUT | EPOLL.RDHUP | EPOLL.ET) >>> 0;

export class WorkerLoop {
  readonly t: ConnTable;
  readonly bufs: BufferPool;
  readonly pipes: PipePool;
  readonly log: Logger;
  readonly epfd: number;
  readonly spliceMode: number;
  readonly backendSa: Buffer;
  readonly backendFamily: number;
  readonly backendIsTcp: boolean;
  readonly backendText: string;
  readonly tcp: tcp.TcpOptions;
  /** HTTP mode's per-worker state (parsers, inboxes, backend pool); null in TCP mode. */
  readonly http: http.HttpState | null;
  /** PROXY protocol state (addresses per slot); null when neither --accept-proxy nor --send-proxy is on. */
  readonly pp: ProxyProtocolState | null;
  /** Per-slot deadlines (HTTP heads, idle clients, backends; PROXY headers, connects and tunnels). */
  readonly timers: TimerWheel;
  private readonly ev = new EventBuffer(MAX_EVENTS);
  private readonly eventfdBuf = Buffer.alloc(8);
  // The ready queue: a ring of (slot, gen), each slot at most once (FL.QUEUED).
  private readonly qSlot: Int32Array;
  private readonly qGen: Uint32Array;
  private qHead = 0;
  private qLen = 0;
  private listenerSlot = -1;
  private wakerSlot = -1;
  private acceptPausedUntil = 0;
  private nextTrim = 0;
  /**
   * The time (Date.now()) when the last epoll_wait returned: what handlers arm deadlines from, instead of
   * reading the clock per connection (nginx's ngx_current_msec does the same). An event batch takes well
   * under a millisecond, and deadlines are kept to TICK_MS (100 ms) anyway.
   */
  now = Date.now();
  /** DRAIN received: no more accepts; HTTP keeps no idle backend connections. */
  draining = false;
  private stopping = false;

  constructor(cfg: WorkerConfig) {
    this.log = new Logger(cfg.logLevel, `w${cfg.index}`);
    this.t = new ConnTable(cfg.sab, cfg.capacity);
    this.t.init();
    // A slot holds at most one outbox buffer, and in HTTP mode one inbox buffer too.
    this.bufs = new BufferPool(cfg.bufferSize, cfg.http ? 2 * cfg.capacity : cfg.capacity, KEEP_IDLE, this.t.ctr);
    this.http = cfg.http ? new http.HttpState(cfg.capacity, cfg.http) : null;
    this.pp = cfg.proxyProtocol ? new ProxyProtocolState(cfg.capacity, cfg.proxyProtocol) : null;
    this.timers = new TimerWheel(cfg.capacity, Date.now());
    this.pipes = new PipePool(cfg.bufferSize, cfg.maxPipes, KEEP_IDLE, this.t.ctr);
    this.spliceMode = cfg.splice === 'on' ? SPLICE_MODE.ON : cfg.splice === 'off' ? SPLICE_MODE.OFF : SPLICE_MODE.AUTO;
    this.backendSa = encodeSockaddr(cfg.backend);
    this.backendFamily = addressFamily(cfg.backend);
    this.backendIsTcp = cfg.backend.family !== 'unix';
    this.backendText = formatAddress(cfg.backend);
    this.tcp = cfg.tcp;
    this.qSlot = new Int32Array(cfg.capacity);
    this.qGen = new Uint32Array(cfg.capacity);
    this.epfd = epollCreate();

    this.listenerSlot = this.register(KIND.LISTENER, cfg.listenFd, (EPOLL.IN | EPOLL.ET) >>> 0);
    this.wakerSlot = this.register(KIND.WAKER, cfg.wakeFd, (EPOLL.IN | EPOLL.ET) >>> 0);
  }

  private register(kind: number, fd: number, events: number): number {
    const s = this.t.acquire(kind, ST.OPEN, fd);
    const r = epollAdd(this.epfd, fd, events, s, this.t.gen[s]);
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
      let timeout = -1;
      // The clock as the wait begins (handlers use this.now, from the end of the last wait).
      const now = Date.now();
      if (this.qLen > 0) timeout = 0;
      else if (this.acceptPausedUntil > 0) timeout = Math.max(0, this.acceptPausedUntil - now);
      const h = this.http;
      const timers = this.timers;
      if (timers.armed > 0 && timeout !== 0) {
        // The nearest deadline's tick bounds the wait (timers.ts).
        const due = timers.timeoutMs(now);
        timeout = timeout < 0 ? due : Math.min(timeout, due);
      }
      if (this.bufs.excess > 0) {
        // Buffer pages beyond the warm reserve go back once a second (pools.ts).
        if (now >= this.nextTrim) {
          this.bufs.trim();
          this.nextTrim = now + TRIM_EVERY_MS;
        } else if (timeout !== 0) {
          const due = this.nextTrim - now;
          timeout = timeout < 0 ? due : Math.min(timeout, due);
        }
      }
      if (this.log.pending > 0) {
        // Lines held back by the log's rate limit are reported when their second is over (log.ts).
        const due = this.log.flushHeld(now);
        if (due >= 0 && timeout !== 0) timeout = timeout < 0 ? due : Math.min(timeout, due);
      }
      const n = epollWait(this.epfd, ev.bytes, MAX_EVENTS, timeout);
      if (n < 0) throw new Error(`epoll_wait: ${errnoName(n)}`);
      this.now = Date.now();
      for (let i = 0; i < n; i++) {
        const s = ev.slot(i);
        // Invariant 2: an event whose generation differs from the slot's is for an fd since closed.
        if (ev.gen(i) !== t.gen[s]) continue;
        const events = ev.events(i);
        switch (t.kind[s]) {
          case KIND.CLIENT:
          case KIND.BACKEND:
            if (h !== null) http.onEvent(this, s, events);
            else tcp.onEvent(this, s, events);
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
        if (this.listenerSlot >= 0) this.enqueue(this.listenerSlot);
      }
      this.runReady();
      if (timers.armed > 0) timers.advance(this.now, this.onTimer);
    }
    this.shutdownAll();
  }

  private readonly onTimer = (s: number): void => {
    if (this.http !== null && !(this.t.flags[s] & FL.TUNNEL)) http.onTimer(this, s);
    else tcp.onTimer(this, s);
  };

  /** Puts slot `s` on the ready queue unless it is there already. */
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
      switch (t.kind[s]) {
        case KIND.CLIENT:
        case KIND.BACKEND:
          if (this.http !== null) http.resume(this, s);
          else if (t.state[s] === ST.PROXYING) tcp.pump(this, s);
          break;
        case KIND.LISTENER:
          this.acceptBatch(s);
          break;
      }
    }
  }

  private acceptBatch(s: number): void {
    if (this.acceptPausedUntil > 0 || this.draining) return;
    const lfd = this.t.fd[s];
    for (let i = 0; i < ACCEPTS_PER_TURN; i++) {
      const fd = accept4(lfd, SOCK.NONBLOCK | SOCK.CLOEXEC);
      if (fd >= 0) {
        this.t.ctr[CTR.ACCEPTED]++;
        if (this.http !== null) http.onAccept(this, fd);
        else tcp.onAccept(this, fd);
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
          this.log.limited(1, 'accept-fd', `accept: ${errnoName(fd)}; pausing accepts for ${ACCEPT_PAUSE_MS} ms`);
          this.acceptPausedUntil = this.now + ACCEPT_PAUSE_MS;
          return;
        default:
          this.log.limited(1, 'accept', `accept: ${errnoName(fd)}`);
          return;
      }
    }
    this.enqueue(s); // more may be waiting: come back after the others had a turn
  }

  private onWake(): void {
    // Drain the eventfd counter so the next signal is a new edge.
    read(this.t.fd[this.wakerSlot], this.eventfdBuf, 8);
    const cmd = Atomics.load(this.t.ctl, CTL.CMD);
    if (cmd === CMD.STOP) {
      this.stopping = true;
    } else if (cmd === CMD.DRAIN && !this.draining) {
      this.draining = true;
      Atomics.store(this.t.ctl, CTL.STATE, WSTATE.DRAINING);
      if (this.listenerSlot >= 0) {
        this.closeSlot(this.listenerSlot);
        this.listenerSlot = -1;
      }
      if (this.http !== null) http.onDrain(this);
      this.log.debug(`draining, ${this.t.ctr[CTR.ACTIVE]} connections open`);
    }
  }

  /**
   * Releases slot `s` and closes its fd: the one place a slot's fd is closed (invariant 1). Its buffer and
   * pipe go back to their pools (in HTTP mode its inbox and retry copy too), its deadline is cleared, and
   * a pipe that still held bytes is closed with it. With `abort`, the close sends RST rather than FIN.
   */
  closeSlot(s: number, abort = false): void {
    const t = this.t;
    this.timers.disarm(s);
    if (this.http !== null) this.http.release(s, this.bufs);
    if (this.pp !== null) this.pp.release(s);
    if (t.buf[s] >= 0) {
      this.bufs.release(t.buf[s]);
      t.buf[s] = -1;
    }
    if (t.pipe[s] >= 0) {
      this.pipes.release(t.pipe[s], t.pipeLen[s] > 0);
      t.pipe[s] = -1;
    }
    const fd = t.fd[s];
    if (abort) setLingerZero(fd);
    t.release(s);
    close(fd); // also removes fd from the epoll set: no fd here is ever dup'ed
  }

  /** At STOP (or the end of a drain): closes every connection, the listener, the waker and the pools. */
  private shutdownAll(): void {
    const t = this.t;
    let cut = 0;
    for (let s = 0; s < t.capacity; s++) {
      if (t.kind[s] === KIND.CLIENT) {
        cut++;
        tcp.closePair(this, s, null);
      }
    }
    if (cut > 0) this.log.info(`stopped with ${cut} connection(s) still open: closed them`);
    for (let s = 0; s < t.capacity; s++) {
      if (t.kind[s] === KIND.WAKER) t.release(s); // the main thread owns the eventfd
      else if (t.kind[s] !== KIND.NONE) this.closeSlot(s);
    }
    this.pipes.closeAll();
    close(this.epfd);
    Atomics.store(t.ctl, CTL.STATE, WSTATE.STOPPED);
  }
}
