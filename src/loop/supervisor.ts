// The main thread's side of the workers: it creates each worker's listening socket, table and waker, starts
// the threads, reads their counters from the shared tables, and tells them to drain or stop.
//
// Control protocol (invariant 6): the main thread writes CTL.CMD with Atomics.store, then adds 1 to the
// worker's eventfd. A worker in epoll_wait wakes on the eventfd, reads CMD and acts. It never uses
// MessagePort messages to hear commands: it does not run Node's event loop while it serves.

import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.js';
import {
  type Address,
  close,
  createEventfd,
  listenSocket,
  localAddress,
  signalEventfd,
} from '../sys/index.js';
import type { WorkerConfig } from './loop.js';
import type { HttpOptions } from './http.js';
import type { ProxyProtocolOptions } from './proxied.js';
import type { TcpOptions } from './tcp.js';
import { ConnTable, tableBytes } from './table.js';
import { CMD, CTL, CTR, KIND, WSTATE } from './types.js';

export type WorkerSetOptions = {
  listen: Address;
  backend: Address;
  workers: number;
  capacity: number;
  splice: 'on' | 'off' | 'auto';
  bufferSize: number;
  maxPipes: number;
  backlog: number;
  log: Logger;
  tcp: TcpOptions;
  http: HttpOptions | null;
  proxyProtocol: ProxyProtocolOptions | null;
};

export type Stats = {
  accepted: number;
  active: number;
  bytesIn: number;
  bytesOut: number;
  connectErrors: number;
  ioErrors: number;
  refusedFull: number;
  buffers: number;
  pipes: number;
  pipesOpen: number;
  /** HTTP mode: requests with a valid head, responses the proxy generated, requests on a reused backend. */
  requests: number;
  generated: number;
  reused: number;
  /** --accept-proxy: clients closed for a missing, malformed or late PROXY header. */
  proxyRefused: number;
};

export type WorkerStats = {
  accepted: number;
  active: number;
  /** WSTATE: 0 starting, 1 running, 2 draining, 3 stopped. */
  state: number;
  restarts: number;
};

type Slot = {
  index: number;
  cfg: WorkerConfig;
  table: ConnTable;
  thread: Worker | null;
  exited: Promise<void>;
  /** Times this worker died while serving and was replaced. */
  restarts: number;
  startedAt: number;
  /** Delay before the next restart (restartDelay). */
  backoffMs: number;
  retry: NodeJS.Timeout | null;
};

const STABLE_MS = 10_000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10_000;

/**
 * The delay before restarting something that died after living `livedMs`, given the delay used last time:
 * none if it had lived STABLE_MS, else 0.5 s doubling to 10 s, so a worker (or a --processes child) that
 * fails at every start cannot spin its supervisor.
 */
export function restartDelay(livedMs: number, lastMs: number): number {
  if (livedMs >= STABLE_MS) return 0;
  return lastMs === 0 ? BACKOFF_FIRST_MS : Math.min(BACKOFF_MAX_MS, lastMs * 2);
}

// The kernel caps the backlog at net.core.somaxconn (4096 by default since Linux 5.4).
export const DEFAULT_BACKLOG = 4096;

// A worker's young generation, capped: V8 grows it (up to 16 MiB a semi-space) with the allocation it sees,
// and a worker blocked in epoll_wait never shrinks it, so under a burst of new connections it would show up
// as memory per connection (docs/scaling.md). What a worker allocates per request is short-lived and small,
// so a small young generation costs only cheap, more frequent scavenges.
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 4 };

export class WorkerSet {
  readonly address: Address;
  private readonly slots: Slot[] = [];
  private readonly log: Logger;
  private stopping = false;

  private constructor(address: Address, log: Logger) {
    this.address = address;
    this.log = log;
  }

  /**
   * Binds the listening sockets (throws SysError, e.g. EADDRINUSE, before any thread starts) and starts the
   * workers; resolves once each has built its loop.
   */
  static async start(o: WorkerSetOptions): Promise<WorkerSet> {
    // The first socket settles the port (port 0 asks the kernel for one); the others bind that same port,
    // and SO_REUSEPORT spreads incoming connections over all of them.
    const fds: number[] = [listenSocket(o.listen, { backlog: o.backlog, reusePort: true })];
    let set: WorkerSet | null = null;
    try {
      const bound = localAddress(fds[0]);
      for (let i = 1; i < o.workers; i++) fds.push(listenSocket(bound, { backlog: o.backlog, reusePort: true }));
      set = new WorkerSet(bound, o.log);
      for (let i = 0; i < o.workers; i++) {
        const sab = new SharedArrayBuffer(tableBytes(o.capacity));
        const cfg: WorkerConfig = {
          index: i,
          sab,
          capacity: o.capacity,
          listenFd: fds[i],
          wakeFd: createEventfd(),
          backend: o.backend,
          splice: o.splice,
          bufferSize: o.bufferSize,
          maxPipes: o.maxPipes,
          logLevel: o.log.level,
          tcp: o.tcp,
          http: o.http,
          proxyProtocol: o.proxyProtocol,
        };
        set.slots.push({
          index: i,
          cfg,
          table: new ConnTable(sab, o.capacity),
          thread: null,
          exited: Promise.resolve(),
          restarts: 0,
          startedAt: 0,
          backoffMs: 0,
          retry: null,
        });
      }
      await Promise.all(set.slots.map((s) => set!.spawn(s)));
      return set;
    } catch (e) {
      if (set) await set.stop(0);
      else for (const fd of fds) close(fd);
      throw e;
    }
  }

  private spawn(s: Slot): Promise<void> {
    const thread = new Worker(new URL('./worker.js', import.meta.url), { workerData: s.cfg, resourceLimits: WORKER_LIMITS });
    s.thread = thread;
    s.startedAt = Date.now();
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      thread.once('message', () => {
        ready = true;
        resolve();
      });
      s.exited = new Promise<void>((done) => {
        thread.once('error', (err) => {
          if (!ready) reject(err);
          else this.log.error(`worker ${s.index} failed: ${err.stack ?? err}`);
        });
        thread.once('exit', (code) => {
          s.thread = null;
          this.reclaim(s);
          if (!ready) reject(new Error(`worker ${s.index} exited with code ${code} while starting`));
          else if (!this.stopping) this.restart(s);
          done();
        });
      });
    });
  }

  /**
   * After a worker's thread ended: closes any fd its table still names. A worker that stopped normally
   * left none; one that failed mid-flight leaves its connections, which would otherwise leak.
   */
  private reclaim(s: Slot): void {
    const t = s.table;
    let leaked = 0;
    for (let i = 0; i < t.capacity; i++) {
      if (t.kind[i] !== KIND.NONE && t.kind[i] !== KIND.WAKER && t.fd[i] >= 0) {
        close(t.fd[i]);
        t.fd[i] = -1;
        leaked++;
      }
    }
    if (leaked > 0) this.log.warn(`worker ${s.index}: closed ${leaked} fd(s) it left open`);
  }

  /**
   * A worker died while serving: start a new one in its place, on a new listening socket, at once if the
   * dead one had lived STABLE_MS, else after a back-off.
   */
  private restart(s: Slot): void {
    const lived = Date.now() - s.startedAt;
    s.backoffMs = restartDelay(lived, s.backoffMs);
    this.log.error(
      `worker ${s.index} stopped unexpectedly after ${Math.round(lived / 1000)} s; ` +
        (s.backoffMs ? `starting a new one in ${s.backoffMs / 1000} s` : 'starting a new one') +
        ` (restart ${s.restarts + 1})`,
    );
    s.retry = setTimeout(() => {
      s.retry = null;
      if (this.stopping) return;
      s.restarts++;
      try {
        s.cfg = { ...s.cfg, listenFd: listenSocket(this.address, { backlog: DEFAULT_BACKLOG, reusePort: true }) };
        s.cfg.sab = new SharedArrayBuffer(s.cfg.sab.byteLength);
        s.table = new ConnTable(s.cfg.sab, s.cfg.capacity);
        this.spawn(s).catch((e) => this.log.error(`worker ${s.index} could not restart: ${e}`));
      } catch (e) {
        this.log.error(`worker ${s.index} could not restart: ${e}`);
      }
    }, s.backoffMs);
  }

  private command(cmd: number): void {
    for (const s of this.slots) {
      Atomics.store(s.table.ctl, CTL.CMD, cmd);
      if (s.thread) signalEventfd(s.cfg.wakeFd);
    }
  }

  /** Counters summed over the workers. Read without locks: each is written by one worker only. */
  stats(): Stats {
    const sum = (i: number) => this.slots.reduce((a, s) => a + s.table.ctr[i], 0);
    return {
      accepted: sum(CTR.ACCEPTED),
      active: sum(CTR.ACTIVE),
      bytesIn: sum(CTR.BYTES_IN),
      bytesOut: sum(CTR.BYTES_OUT),
      connectErrors: sum(CTR.CONNECT_ERRORS),
      ioErrors: sum(CTR.IO_ERRORS),
      refusedFull: sum(CTR.REFUSED_FULL),
      buffers: sum(CTR.BUFFERS),
      pipes: sum(CTR.PIPES),
      pipesOpen: sum(CTR.PIPES_OPEN),
      requests: sum(CTR.REQUESTS),
      generated: sum(CTR.GENERATED),
      reused: sum(CTR.REUSED),
      proxyRefused: sum(CTR.PP_REFUSED),
    };
  }

  /** Per-worker counters, for tests and the admin view. A restarted worker starts a new table. */
  workerStats(): WorkerStats[] {
    return this.slots.map((s) => ({
      accepted: s.table.ctr[CTR.ACCEPTED],
      active: s.table.ctr[CTR.ACTIVE],
      state: Atomics.load(s.table.ctl, CTL.STATE),
      restarts: s.restarts,
    }));
  }

  /**
   * Stops accepting at once, lets open connections finish for up to `drainMs`, then closes whatever is
   * left and ends the threads. Resolves when every worker has exited.
   */
  async stop(drainMs: number): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      for (const s of this.slots) if (s.retry) clearTimeout(s.retry);
      const all = Promise.all(this.slots.map((s) => s.exited));
      if (drainMs > 0) {
        this.command(CMD.DRAIN);
        const active = this.stats().active;
        if (active > 0) this.log.info(`draining ${active} connection(s), for up to ${drainMs} ms`);
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), drainMs)));
        const done = await Promise.race([all.then(() => 'done' as const), late]);
        clearTimeout(timer);
        if (done === 'late') this.log.warn(`drain timeout: closing ${this.stats().active} connection(s) still open`);
      }
      this.command(CMD.STOP);
      await all;
      for (const s of this.slots) close(s.cfg.wakeFd);
    }
    await Promise.all(this.slots.map((s) => s.exited));
  }

  get workerCount(): number {
    return this.slots.length;
  }

  /** True while every worker thread is up and serving (RUNNING). */
  get running(): boolean {
    return this.slots.every((s) => s.thread !== null && Atomics.load(s.table.ctl, CTL.STATE) === WSTATE.RUNNING);
  }
}

