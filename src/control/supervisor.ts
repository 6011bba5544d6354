// The main thread's side of the workers: it creates each worker's listening sockets (one per frontend),
// table, waker and mailbox, starts the threads, reads their counters from the shared tables, and tells them
// to drain or stop.
//
// Control (invariant 6): the main thread posts a message to the worker's mailbox, then adds 1 to the
// worker's eventfd. A worker in epoll_wait wakes on the eventfd and reads its mailbox synchronously
// (worker/mailbox.ts): it does not run Node's event loop while it serves, so it never sees a 'message' event.

import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { CTR, type Stats, sumStats } from '../core/counters.js';
import type { Logger } from '../core/log.js';
import { ringBytes } from '../core/accesslog.js';
import { ConnTable, tableBytes } from '../core/table.js';
import { CTL, KIND, WSTATE } from '../core/types.js';
import type { BackendConfig, FrontendConfig } from '../route/index.js';
import {
  type Address,
  checkPortFree,
  close,
  createEventfd,
  listenSocket,
  localAddress,
  signalEventfd,
} from '../sys/index.js';
import type { ControlMessage } from '../worker/mailbox.js';
import type { WorkerConfig } from '../worker/loop.js';

export type { Stats };

export type WorkerSetOptions = {
  /** The route tables, by stable index (control/registry.ts); null for one taken out. */
  frontends: (FrontendConfig | null)[];
  backends: (BackendConfig | null)[];
  /** Bind even where other SO_REUSEPORT listeners already hold a port; else a port in use is EADDRINUSE. */
  join: boolean;
  /** The server states shared with every worker (route/routes.ts). */
  serverState: SharedArrayBuffer;
  workers: number;
  capacity: number;
  bufferSize: number;
  maxPipes: number;
  backlog: number;
  log: Logger;
  /**
   * The toxiproxy server's --seed, for the toxics' random draws (toxicity, jitter, slicer sizes); null or
   * absent: a seed of the worker's own. Each worker gets it as WorkerConfig.seed (and uses seed + index).
   */
  toxicSeed?: number | null;
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
  /** The main thread's end of the worker's mailbox. */
  port: MessagePort;
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

// A worker applies route tables between two epoll_waits, in microseconds: this long means it is stuck.
const ROUTES_WAIT_MS = 5000;

// The kernel caps the backlog at net.core.somaxconn (4096 by default since Linux 5.4).
export const DEFAULT_BACKLOG = 4096;

// A worker's young generation, capped: V8 grows it (up to 16 MiB a semi-space) with the allocation it sees,
// and a worker blocked in epoll_wait never shrinks it, so under a burst of new connections it would show up
// as memory per connection (docs/scaling.md). What a worker allocates per request is short-lived and small,
// so a small young generation costs only cheap, more frequent scavenges.
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 4 };

export class WorkerSet {
  /** Where each frontend listens (by index), with the real port when 0 was asked for; null: taken out. */
  readonly addresses: (Address | null)[] = [];
  private readonly slots: Slot[] = [];
  private readonly log: Logger;
  private readonly backlog: number;
  private stopping = false;
  private routesGeneration = 0;

  private constructor(log: Logger, backlog: number) {
    this.log = log;
    this.backlog = backlog;
  }

  /** Where the first frontend listens (start() has one; the toxiproxy server may have none: then undefined). */
  get address(): Address {
    return this.addresses.find((a) => a !== null)!;
  }

  /**
   * Binds the listening sockets (throws SysError, e.g. EADDRINUSE, before any thread starts) and starts the
   * workers; resolves once each has built its loop.
   */
  static async start(o: WorkerSetOptions): Promise<WorkerSet> {
    const set = new WorkerSet(o.log, o.backlog);
    const fds = set.bind(o.frontends, o.frontends.map((_, i) => i), o.join, o.workers);
    try {
      for (let i = 0; i < o.workers; i++) {
        const sab = new SharedArrayBuffer(tableBytes(o.capacity));
        const { port1, port2 } = new MessageChannel();
        const cfg: WorkerConfig = {
          seed: o.toxicSeed ?? null,
          index: i,
          sab,
          capacity: o.capacity,
          listenFds: fds.map((f) => f?.[i] ?? -1),
          wakeFd: createEventfd(),
          mailbox: port2,
          frontends: o.frontends,
          backends: o.backends,
          serverState: o.serverState,
          ring: new SharedArrayBuffer(ringBytes()),
          routesGeneration: 0,
          bufferSize: o.bufferSize,
          maxPipes: o.maxPipes,
          logLevel: o.log.level,
        };
        set.slots.push({
          index: i,
          cfg,
          port: port1,
          table: new ConnTable(sab, o.capacity),
          thread: null,
          exited: Promise.resolve(),
          restarts: 0,
          startedAt: 0,
          backoffMs: 0,
          retry: null,
        });
      }
      await Promise.all(set.slots.map((s) => set.spawn(s)));
      return set;
    } catch (e) {
      await set.stop(0);
      throw e;
    }
  }

  /**
   * Listening sockets for the frontends at `which` (indices into `frontends`): `workers` per frontend, all on
   * one port, so that SO_REUSEPORT spreads the frontend's connections over the workers. The first settles the
   * port (port 0 asks the kernel for one), after the probe that makes a port in use an error (unless
   * `join`). Returns them by frontend index, then worker; on any failure closes what it bound and throws.
   */
  private bind(frontends: readonly (FrontendConfig | null)[], which: number[], join: boolean, workers: number): number[][] {
    const fds: number[][] = [];
    try {
      for (const i of which) {
        const f = frontends[i];
        if (f === null) continue;
        if (!join) checkPortFree(f.listen);
        const first = listenSocket(f.listen, { backlog: this.backlog, reusePort: true });
        fds[i] = [first];
        const bound = localAddress(first);
        for (let w = 1; w < workers; w++) fds[i].push(listenSocket(bound, { backlog: this.backlog, reusePort: true }));
        // A restarted worker binds again where the first ones did.
        this.addresses[i] = bound;
      }
      return fds;
    } catch (e) {
      for (const f of fds) if (f !== undefined) for (const fd of f) close(fd);
      throw e;
    }
  }

  /**
   * A reload: the workers' route tables become `frontends` and `backends`; the frontends at `added` get
   * listening sockets first (a port in use throws, and then nothing has changed), and those at `removed`
   * stop accepting. this.addresses then says where each added frontend listens. Resolves once every running
   * worker has applied the tables (its CTL.ROUTES), so that a removed frontend no longer accepts anywhere.
   */
  reroute(
    frontends: (FrontendConfig | null)[],
    backends: (BackendConfig | null)[],
    added: number[],
    removed: number[],
    join: boolean,
  ): Promise<void> {
    const fds = this.bind(frontends, added, join, this.slots.length);
    const generation = ++this.routesGeneration;
    for (const i of removed) this.addresses[i] = null;
    for (const s of this.slots) {
      const listenFds = frontends.map((_, i) => fds[i]?.[s.index] ?? -1);
      s.cfg = { ...s.cfg, frontends, backends, routesGeneration: generation };
      if (!s.thread) {
        // Dead, and restarting: it binds its own listeners from this.addresses when it starts again.
        for (const fd of listenFds) if (fd >= 0) close(fd);
        continue;
      }
      s.port.postMessage({ type: 'routes', generation, frontends, backends, listenFds } satisfies ControlMessage);
      signalEventfd(s.cfg.wakeFd);
    }
    return this.applied(generation);
  }

  /** Resolves when every running worker has applied route tables `generation` (or has died meanwhile). */
  private async applied(generation: number): Promise<void> {
    const behind = () => this.slots.filter((s) => s.thread !== null && Atomics.load(s.table.ctl, CTL.ROUTES) < generation);
    for (let waited = 0; behind().length > 0; waited += 5) {
      if (waited >= ROUTES_WAIT_MS) {
        this.log.warn(`reload: worker(s) ${behind().map((s) => s.index).join(', ')} have not applied it after ${ROUTES_WAIT_MS} ms`);
        return;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Server `id` went down: every worker closes its idle connections to it. */
  serverDown(id: number): void {
    this.post({ type: 'server-down', id });
  }

  private spawn(s: Slot): Promise<void> {
    const thread = new Worker(new URL('../worker/main.js', import.meta.url), {
      workerData: s.cfg,
      transferList: [s.cfg.mailbox],
      resourceLimits: WORKER_LIMITS,
    });
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
        const listenFds = this.addresses.map((a) => (a === null ? -1 : listenSocket(a, { backlog: this.backlog, reusePort: true })));
        const { port1, port2 } = new MessageChannel();
        s.port.close();
        s.port = port1;
        s.cfg = { ...s.cfg, listenFds, mailbox: port2, sab: new SharedArrayBuffer(s.cfg.sab.byteLength) };
        s.table = new ConnTable(s.cfg.sab, s.cfg.capacity);
        this.spawn(s).catch((e) => this.log.error(`worker ${s.index} could not restart: ${e}`));
      } catch (e) {
        this.log.error(`worker ${s.index} could not restart: ${e}`);
      }
    }, s.backoffMs);
  }

  /** Posts `m` to every running worker's mailbox and wakes it (invariant 6). */
  post(m: ControlMessage): void {
    for (const s of this.slots) this.postTo(s.index, m);
  }

  /** Posts `m` to worker `index` and wakes it; false when that worker is not running. */
  postTo(index: number, m: ControlMessage): boolean {
    const s = this.slots[index];
    if (!s?.thread) return false;
    s.port.postMessage(m);
    signalEventfd(s.cfg.wakeFd);
    return true;
  }

  /** Every worker's access-log ring (core/accesslog.ts), by worker index. */
  rings(): SharedArrayBuffer[] {
    return this.slots.map((s) => s.cfg.ring);
  }

  /** Every worker's table, as the main thread sees it (read only: invariant 3). */
  tables(): ConnTable[] {
    return this.slots.map((s) => s.table);
  }

  /** Counters summed over the workers (core/counters.ts). Read without locks: each is written by one worker only. */
  stats(): Stats {
    return sumStats(this.slots.map((s) => s.table.ctr));
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
        this.post({ type: 'drain' });
        const active = this.stats().active;
        if (active > 0) this.log.info(`draining ${active} connection(s), for up to ${drainMs} ms`);
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), drainMs)));
        const done = await Promise.race([all.then(() => 'done' as const), late]);
        clearTimeout(timer);
        if (done === 'late') this.log.warn(`drain timeout: closing ${this.stats().active} connection(s) still open`);
      }
      this.post({ type: 'stop' });
      await all;
      for (const s of this.slots) {
        close(s.cfg.wakeFd);
        s.port.close();
      }
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

