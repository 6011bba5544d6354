// The toxiproxy server's proxies as running frontends (docs/toxiproxy.md): one Running (running.ts), started
// with no frontend, and at every change a whole plan built from the proxies that run:
//
//   proxy NAME (enabled)  ──>  frontend NAME: its listen, tcp or http, no tunnel timeout, its toxics
//                              backend NAME: one server, the upstream, no retries, no health checks
//
// apply() runs the plan through Running.runPlan (the workers are told; the call resolves once each has it),
// then closes every connection of the proxies named in `kill`. A frontend keeps its index, its listener and
// its connections while its name and address stay (registry.ts); a proxy stopped and started again gets a
// new index, a new listener, and no connection of before. Host names are resolved here, preferring IPv4 as
// Go does; an upstream that cannot be resolved is stored as the client wrote it, and dialled as UNREACHABLE,
// so that each of its connections is closed at once, as Toxiproxy closes a client whose dial failed.

import { lookup } from 'node:dns/promises';
import { FE, feBase } from '../core/counters.js';
import type { LevelName, Logger } from '../core/log.js';
import type { BackendConfig, FrontendConfig, Mode, ToxicConfig } from '../route/index.js';
import { type Address, type AddressSpec, SysError, formatAddress, parseAddress } from '../sys/index.js';
import { BUFFER_SIZE, planCapacity } from './capacity.js';
import { FRONTEND_DEFAULTS } from './config-check.js';
import { ApiError } from './config-toxics.js';
import type { ProxyPlan } from './plan.js';
import { Running } from './running.js';
import { DEFAULT_BACKLOG, WorkerSet } from './supervisor.js';

/** One proxy as the workers run it. */
export type HostedProxy = {
  name: string;
  mode: Mode;
  /** Where it listens: resolved (resolveListen), or where it got to listen the first time (so it keeps its port). */
  listen: Address;
  /** The upstream as the client wrote it: its server's name, and a label of the metrics. */
  upstream: string;
  /** Where its connections go: the upstream resolved when the proxy started, or UNREACHABLE. */
  dial: Address;
  toxics: ToxicConfig[];
};

/**
 * Where an upstream that cannot be resolved is dialled: a path below a file, so connect() fails at once
 * (ENOTDIR) and the client is closed, whatever is on this machine.
 */
export const UNREACHABLE: Address = { family: 'unix', path: '/dev/null/ffi-proxy-unresolved-upstream' };

/** A series of toxiproxy_proxy_*_bytes_total: its labels and the bytes each way, summed over the workers. */
export type ByteCount = { proxy: string; listener: string; upstream: string; up: number; down: number };

export type HostOptions = { workers: number; logLevel: LevelName; seed: number | null };

// Go's words for the errors a listen meets (syscall.Errno's strings).
const GO_ERRNO: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'cannot assign requested address',
  EACCES: 'permission denied',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in system',
};

export class ToxiproxyHost {
  /** The labels of every frontend index this host has used, kept after it is taken out: its counters stay. */
  private readonly labels = new Map<number, { proxy: string; listener: string; upstream: string }>();

  /** Indices retired by the last apply (every connection closed), whose counts are still to be kept. */
  private retiring: number[] = [];
  /** The counts of retired indices, by label: a reused index starts again from 0 in the workers. */
  private readonly past = new Map<string, ByteCount>();

  private constructor(private readonly running: Running) {}

  /** Starts the workers, with no frontend yet. Throws as WorkerSet.start does. */
  static async start(o: HostOptions, log: Logger): Promise<ToxiproxyHost> {
    const { slots, pipes } = planCapacity(o.workers, null);
    const base: Omit<ProxyPlan, 'frontends' | 'backends'> = {
      workers: o.workers,
      processes: 1,
      drainTimeoutMs: 0,
      logLevel: o.logLevel,
      maxConnections: null,
      join: false,
      admin: null,
      adminToken: null,
    };
    const running = await Running.empty(base, log, (l) =>
      WorkerSet.start({ ...l, workers: o.workers, capacity: slots, bufferSize: BUFFER_SIZE, maxPipes: pipes, backlog: DEFAULT_BACKLOG, log, toxicSeed: o.seed }),
    );
    return new ToxiproxyHost(running);
  }

  /**
   * Runs exactly `proxies` (each a frontend named after it), then closes every connection of the proxies
   * named in `kill`. Resolves with where each listens, by name. A listen that fails throws ApiError 500 in
   * Go's words (`listen tcp 127.0.0.1:3310: bind: address already in use`), and then nothing has changed.
   */
  async apply(proxies: readonly HostedProxy[], kill: readonly string[] = []): Promise<Map<string, Address>> {
    // Indices retired by the last apply may be given again now: their counts are kept first. Their
    // connections were closed by then (the workers had the message at the last apply).
    for (const fe of this.retiring) {
      const l = this.labels.get(fe);
      if (l === undefined) continue;
      const key = labelKey(l);
      const c = this.past.get(key) ?? { ...l, up: 0, down: 0 };
      this.count(fe, c);
      this.past.set(key, c);
      this.labels.delete(fe);
    }
    try {
      this.retiring = await this.running.runPlan(planOf(this.running.current(), proxies), kill);
    } catch (e) {
      this.retiring = [];
      throw listenError(e);
    }
    const where = new Map(this.running.listening().map((l) => [l.name, l.address]));
    this.running.sources().frontends.forEach((f, i) => {
      const p = f === null || this.labels.has(i) ? undefined : proxies.find((x) => x.name === f.name);
      const at = where.get(p?.name ?? '');
      if (p !== undefined && at !== undefined) this.labels.set(i, { proxy: p.name, listener: formatAddress(at), upstream: p.upstream });
    });
    return where;
  }

  /**
   * Bytes each proxy moved, live (the workers count them as they move): one entry per proxy, listener and
   * upstream it has had, so a counter never goes back when a proxy is stopped, changed or deleted.
   */
  byteCounts(): ByteCount[] {
    const out = new Map<string, ByteCount>();
    for (const [key, c] of this.past) out.set(key, { ...c });
    for (const [fe, l] of this.labels) {
      const key = labelKey(l);
      const c = out.get(key) ?? { ...l, up: 0, down: 0 };
      this.count(fe, c);
      out.set(key, c);
    }
    return [...out.values()];
  }

  /** Adds frontend index fe's byte counters, over every worker, to c. */
  private count(fe: number, c: ByteCount): void {
    const b = feBase(fe);
    for (const t of this.running.sources().tables) {
      c.up += t.ctr[b + FE.BYTES_IN];
      c.down += t.ctr[b + FE.BYTES_OUT];
    }
  }

  get workers(): number {
    return this.running.workers.workerCount;
  }

  /** Closes every connection and listener and ends the workers. */
  async stop(): Promise<void> {
    this.running.stop();
    await this.running.workers.stop(0);
  }
}

/** The plan that runs `proxies`, with the process settings of `base`. */
function planOf(base: ProxyPlan, proxies: readonly HostedProxy[]): ProxyPlan {
  const frontends: FrontendConfig[] = [];
  const backends: BackendConfig[] = [];
  proxies.forEach((p, i) => {
    // Toxiproxy has no idle timeout: a connection lasts until one side ends it.
    frontends.push({ ...FRONTEND_DEFAULTS, name: p.name, listen: p.listen, mode: p.mode, backend: i, routes: [], toxics: p.toxics, tunnelTimeoutMs: 0 });
    const server = { id: -1, name: p.upstream, address: p.dial, weight: 1, backup: false };
    backends.push({ name: p.name, balance: 'round-robin', servers: [server], health: null, sendProxy: 0, retries: 0 });
  });
  return { ...base, frontends, backends };
}

/** ApiError 500 for a failed apply, in Go's words when it is a listen that failed. */
function listenError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof SysError && e.syscall === 'listen') {
    const addr = /^listen (\S+):/.exec(e.message)?.[1] ?? '';
    return new ApiError(500, `listen tcp ${addr}: bind: ${GO_ERRNO[e.errnoName] ?? e.errnoName.toLowerCase()}`);
  }
  return new ApiError(500, e instanceof Error ? e.message : String(e));
}

/**
 * Where a proxy's `listen` (as a client wrote it) listens. `localhost` is 127.0.0.1; other names are looked
 * up once, IPv4 first; an empty listen, or one without a host (`:8080`), is every IPv4 address
 * (0.0.0.0), on a port the kernel picks when none is given. Throws ApiError 500 in Go's words
 * (`listen tcp: address local373: missing port in address`).
 */
export async function resolveListen(text: string): Promise<Address> {
  if (text === '') return { family: 'ipv4', host: '0.0.0.0', port: 0 };
  let spec: AddressSpec;
  try {
    spec = parseAddress(text.startsWith(':') ? `0.0.0.0${text}` : text);
  } catch (e) {
    const why = text.includes(':') ? (e as Error).message.replace(/^bad address '.*?': /, '') : 'missing port in address';
    throw new ApiError(500, `listen tcp: address ${text}: ${why}`);
  }
  if (spec.family === 'unix' || (spec.family === 'ipv6' && spec.host.includes('%'))) {
    throw new ApiError(500, `listen tcp: address ${text}: a proxy listens on IPv4 or IPv6 (HOST:PORT)`);
  }
  const a = await lookupHost(spec);
  if (a === null) throw new ApiError(500, `listen tcp: lookup ${spec.host}: no such host`);
  return a;
}

/** Where a proxy's upstream is dialled: resolved now, or UNREACHABLE (port 0, a bad address, a name without answer). */
export async function resolveUpstream(text: string): Promise<Address> {
  let spec: AddressSpec;
  try {
    spec = parseAddress(text.startsWith(':') ? `127.0.0.1${text}` : text);
  } catch {
    return UNREACHABLE;
  }
  if (spec.family === 'unix') return spec;
  if (spec.port === 0 || (spec.family === 'ipv6' && spec.host.includes('%'))) return UNREACHABLE;
  return (await lookupHost(spec)) ?? UNREACHABLE;
}

/** A host name looked up, IPv4 first (Go's preference), `localhost` without asking; null when it has no address. */
export async function lookupHost(spec: Exclude<AddressSpec, { family: 'unix' }>): Promise<Address | null> {
  if (spec.family !== 'name') return spec;
  if (spec.host.toLowerCase() === 'localhost') return { family: 'ipv4', host: '127.0.0.1', port: spec.port };
  for (const family of [4, 6] as const) {
    try {
      const r = await lookup(spec.host, { family });
      return { family: family === 4 ? 'ipv4' : 'ipv6', host: r.address, port: spec.port };
    } catch {
      // the next family, then none
    }
  }
  return null;
}

function labelKey(l: { proxy: string; listener: string; upstream: string }): string {
  return `${l.proxy}\u0000${l.listener}\u0000${l.upstream}`;
}
