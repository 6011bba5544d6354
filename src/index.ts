// The library: `const proxy = await start({ listen, backend, mode })`, for test suites and embedding.
// The CLI (cli.ts) is a thin layer over this.

import { resolveOptions, type Mode, type StartOptions } from './control/config.js';
import { DEFAULT_BACKLOG, WorkerSet, type Stats, type WorkerStats } from './control/supervisor.js';
import { Logger, levelNumber } from './core/log.js';
import { startDemoBackend, type DemoBackend } from './control/demo.js';
import { parserLayout } from './http/parser.js';
import { backendReserve } from './http/state.js';
import { CODES, ProxyError, type Address, formatAddress, raiseNofile } from './sys/index.js';

export type { StartOptions, Mode, SpliceMode } from './control/config.js';
export type { Stats, WorkerStats } from './control/supervisor.js';
export type { Address } from './sys/index.js';
export { CODES, ProxyError, SysError } from './sys/index.js';
export { DEFAULTS } from './control/config.js';

export type Proxy = {
  /** Where it listens, with the real port when 0 was asked for. */
  address: Address;
  host: string;
  port: number;
  backend: Address;
  /** True when no backend was given and the built-in demo backend answers. */
  demoBackend: boolean;
  mode: Mode;
  workers: number;
  /**
   * Connections each worker can hold at once (from the open-file limit): in TCP mode client/backend pairs,
   * in HTTP mode client connections (some slots are kept for backend connections).
   */
  capacityPerWorker: number;
  /** Counters summed over the workers, read from the shared tables without stopping anything. */
  stats(): Stats;
  /** Per worker: accepted and open connections, state, and how often it was restarted after dying. */
  workerStats(): WorkerStats[];
  /**
   * Stops accepting, lets open connections finish for up to `drainTimeoutMs` (default: the start option),
   * closes the rest and ends the workers. Safe to call more than once.
   */
  close(drainTimeoutMs?: number): Promise<void>;
};

// Bytes a connection's outbox buffer holds, and the size each splice pipe is set to. 64 KiB is Linux's
// default pipe size (16 pages), so a direction moves the same amount per call whether it copies or splices,
// and `auto` can compare a read against it. Not tuned further yet: see docs/benchmarks.md for what was run.
const BUFFER_SIZE = 64 * 1024;
// fds kept back from the per-process limit for everything that is not a connection: stdio, the epoll and
// eventfd of each worker, the demo backend, Node's own (libuv's signal pipe, its epoll, inotify...).
const RESERVED_FDS = 64;

/**
 * How many table slots and pipes each worker gets, from the open-file limit (first raised to the hard
 * limit): each slot and pipe end is an fd.
 */
export function planCapacity(workers: number, maxConnections: number | null): { slots: number; pipes: number } {
  const [soft] = raiseNofile();
  const budget = Math.max(16, Math.floor((soft - RESERVED_FDS) / workers));
  // Up to 1/8 of the budget as pipes (2 fds each): pipes are only held by connections mid bulk-transfer,
  // and when none can be had, a connection copies instead (core/pools.ts).
  const pipes = Math.min(1024, Math.floor(budget / 16));
  let slots = budget - 2 * pipes;
  if (maxConnections !== null) slots = Math.min(slots, 2 * maxConnections + 2);
  return { slots, pipes };
}

export async function start(options: StartOptions = {}): Promise<Proxy> {
  if (process.platform !== 'linux') {
    throw new ProxyError(CODES.UNSUPPORTED_PLATFORM, `ffi-proxy runs on Linux only (this is ${process.platform})`);
  }
  const o = await resolveOptions({ logLevel: 'warn', ...options });
  const mode = o.frontend.mode;
  // HTTP mode reads llhttp's struct from the node binary: check it here, once, so an unknown layout is one
  // clear line at start rather than a failure in every worker.
  if (mode === 'http') parserLayout();
  const log = new Logger(levelNumber(o.logLevel), 'main');
  const { slots, pipes } = planCapacity(o.workers, o.maxConnections);

  let demo: DemoBackend | null = null;
  let set: WorkerSet | null = null;
  let backend = o.backend;
  if (backend === null) {
    demo = await startDemoBackend(() => (set ? formatAddress(set.address) : formatAddress(o.frontend.listen)));
    backend = { family: 'ipv4', host: demo.host, port: demo.port };
  }
  try {
    set = await WorkerSet.start({
      frontends: [o.frontend],
      backends: [{ name: 'default', address: backend, sendProxy: o.sendProxy }],
      join: o.join,
      workers: o.workers,
      capacity: slots,
      bufferSize: BUFFER_SIZE,
      maxPipes: pipes,
      backlog: DEFAULT_BACKLOG,
      log,
    });
  } catch (e) {
    await demo?.close();
    throw e;
  }
  const workers = set;
  const address = workers.address;
  let closing: Promise<void> | null = null;
  return {
    address,
    host: address.family === 'unix' ? '' : address.host,
    port: address.family === 'unix' ? 0 : address.port,
    backend,
    demoBackend: demo !== null,
    mode,
    workers: o.workers,
    // TCP: a connection is a client and its backend. HTTP: clients, with some slots kept for backends.
    capacityPerWorker: mode === 'http' ? slots - 2 - backendReserve(slots) : Math.floor((slots - 2) / 2),
    stats: () => workers.stats(),
    workerStats: () => workers.workerStats(),
    close(drainTimeoutMs = o.drainTimeoutMs) {
      closing ??= workers.stop(drainTimeoutMs).then(() => demo?.close());
      return closing;
    },
  };
}
