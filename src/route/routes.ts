// A worker's frontends, backends and servers as it runs them, built from their configs (config.ts): what a
// handler reads per connection through the slot's `fe` and `srv` columns, each server's pool of idle
// keep-alive connections, and the server states the main thread shares with every worker.
//
// Server states live in one SharedArrayBuffer for the whole process (an Int32 per server id): the main
// thread's health checks write them (control/health.ts), and a worker writes one only to take a server down
// whose connects keep failing (passive health, connect.ts), with a compare-and-swap. Workers read them with
// no message: a server that goes down takes no new connection from the next pick on.

import { isIP } from 'node:net';
import type { ConnTable } from '../core/table.js';
import { ST } from '../core/types.js';
import { SPLICE_MODE, type HandshakeContext } from '../transport/index.js';
import { type Address, addressFamily, encodeSockaddr, formatAddress } from '../sys/index.js';
import { BALANCES, type BackendConfig, type BackendTls, type FrontendConfig, type ServerConfig, type ToxicConfig } from './config.js';
import { compileRoutes, type Route } from './match.js';

/** Frontend.mode values: which protocol a frontend's clients speak. */
export const MODE = { TCP: 0, HTTP: 1 } as const;

/** Backend.balance values, in BALANCES' order. */
export const BALANCE = { ROUND_ROBIN: 0, LEAST_CONN: 1, RANDOM_TWO: 2, HASH: 3 } as const;

/**
 * A server's word in the shared states: 0 (UP) takes new connections, so that a new server, zeroed, starts
 * up; any bit set keeps them away. DOWN is its health (its checks, or a worker's passive mark); DRAIN and
 * MAINT are an operator's (the admin endpoint), kept apart so that a check never undoes them.
 */
export const SRV = { UP: 0, DOWN: 1, DRAIN: 2, MAINT: 4 } as const;

/** Server ids a process can have over its life (the shared states are 16 KiB of Int32). */
export { MAX_SERVERS } from '../core/counters.js';

export class Frontend {
  readonly index: number;
  readonly name: string;
  readonly mode: number;
  readonly spliceMode: number;
  readonly acceptProxy: boolean;
  readonly backend: number;
  /** HTTP: its routes, most specific first (match.ts); empty when it has none. */
  readonly routes: Route[];
  readonly headerTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly backendTimeoutMs: number;
  readonly tunnelTimeoutMs: number;
  readonly maxHeaderSize: number;
  readonly maxBodySize: number;
  readonly forwardedHeaders: boolean;
  /** Faults its connections go through (src/toxic/ compiles them). */
  readonly toxics: readonly ToxicConfig[];
  /** Terminates TLS (transport/tls.ts): its clients' bytes are copied, never spliced. */
  readonly tls: boolean;
  /** Taken out by a reload: its listener is closed; its connections finish with the options they had. */
  removed = false;

  constructor(index: number, c: FrontendConfig) {
    this.index = index;
    this.name = c.name;
    this.mode = c.mode === 'http' ? MODE.HTTP : MODE.TCP;
    this.tls = c.tls != null;
    this.spliceMode = this.tls || c.splice === 'off' ? SPLICE_MODE.OFF : c.splice === 'on' ? SPLICE_MODE.ON : SPLICE_MODE.AUTO;
    this.acceptProxy = c.acceptProxy;
    this.backend = c.backend;
    this.routes = compileRoutes(c.routes);
    this.headerTimeoutMs = c.headerTimeoutMs;
    this.idleTimeoutMs = c.idleTimeoutMs;
    this.backendTimeoutMs = c.backendTimeoutMs;
    this.tunnelTimeoutMs = c.tunnelTimeoutMs;
    this.maxHeaderSize = c.maxHeaderSize;
    this.maxBodySize = c.maxBodySize;
    this.forwardedHeaders = c.forwardedHeaders;
    this.toxics = c.toxics;
  }
}

// Idle keep-alive connections kept per server per worker, as nginx's `keepalive 64` in the benchmark: more
// only hold the server's resources without serving anyone.
const MAX_IDLE = 64;

export class Server {
  readonly id: number;
  readonly name: string;
  readonly address: Address;
  /** The address in the kernel's layout, for connect(). */
  readonly sa: Buffer;
  readonly family: number;
  /** TCP (not a unix socket): TCP_NODELAY is set on its connections. */
  readonly isTcp: boolean;
  /** For log lines. */
  readonly text: string;
  weight: number;
  backup: boolean;
  /** Its backend (the last one a reload put it in). */
  backend: Backend | null = null;
  /** This worker's connections to it that carry a client now (FL.BUSY): least-conn and random-two read it. */
  active = 0;
  /** Smooth weighted round-robin's running score (nginx's `current_weight`). */
  current = 0;
  /** Connects to it that failed in a row, in this worker (passive health). */
  fails = 0;
  /** Its name hashed, for the consistent hash (balance.ts). */
  readonly key: number;
  /** TLS to it: the host of its name (its address as written, unless named otherwise), for SNI and the check. */
  readonly tlsName: string;
  readonly tlsIsIp: boolean;
  /** The pool: idle connections' slots, a stack (the warmest is reused first), with their generations. */
  private readonly idle = new Int32Array(MAX_IDLE);
  private readonly idleGen = new Uint32Array(MAX_IDLE);
  private idleCount = 0;

  constructor(c: ServerConfig) {
    this.id = c.id;
    this.name = c.name;
    this.address = c.address;
    this.sa = encodeSockaddr(c.address);
    this.family = addressFamily(c.address);
    this.isTcp = c.address.family !== 'unix';
    this.text = formatAddress(c.address);
    this.weight = c.weight;
    this.backup = c.backup;
    this.key = hashString(c.name);
    const m = /^\[(.*)\]:\d+$/.exec(c.name) ?? /^([^:]*):\d+$/.exec(c.name);
    this.tlsName = m ? m[1] : c.name;
    this.tlsIsIp = isIP(this.tlsName) !== 0;
  }

  /**
   * An idle connection from the pool, or -1. A connection closed while idle left its slot (its generation
   * changed, or the slot is no longer IDLE): it is skipped.
   */
  takeIdle(t: ConnTable): number {
    while (this.idleCount > 0) {
      this.idleCount--;
      const b = this.idle[this.idleCount];
      if (t.gen[b] === this.idleGen[this.idleCount] && t.state[b] === ST.IDLE) return b;
    }
    return -1;
  }

  /** Keeps backend slot b (already IDLE) in the pool; false when the pool is full: the caller closes it. */
  putIdle(t: ConnTable, b: number): boolean {
    if (this.idleCount === MAX_IDLE) return false;
    this.idle[this.idleCount] = b;
    this.idleGen[this.idleCount] = t.gen[b];
    this.idleCount++;
    return true;
  }

  /** Every idle connection still in the pool; the pool is then empty. The caller closes them. */
  drainIdle(t: ConnTable, close: (b: number) => void): void {
    for (let b = this.takeIdle(t); b >= 0; b = this.takeIdle(t)) close(b);
  }
}

export class Backend {
  readonly index: number;
  readonly name: string;
  readonly balance: number;
  readonly servers: Server[];
  /** Active checks run for it: a server whose connects keep failing may be taken down until they bring it back. */
  readonly checked: boolean;
  /** The checks' fall: consecutive connect failures that take a server down (passive), when checked. */
  readonly fall: number;
  readonly sendProxy: number;
  readonly retries: number;
  /** TLS to its servers (transport/tls-client.ts makes the worker's context for it). */
  readonly tls: BackendTls | null;
  /** Taken out by a reload; its servers take no new connection. */
  removed = false;
  /** Round-robin's scan start for least-conn ties, moved on at each pick. */
  next = 0;

  constructor(index: number, c: BackendConfig, servers: Server[]) {
    this.index = index;
    this.name = c.name;
    this.balance = BALANCES.indexOf(c.balance);
    this.servers = servers;
    this.checked = c.health !== null;
    this.fall = c.health?.fall ?? 0;
    this.sendProxy = c.sendProxy;
    this.retries = c.retries;
    this.tls = c.tls ?? null;
  }
}

/** "backend app/s1" for log lines; a backend whose one server has its name (the flags' backend) is just named. */
export function where(be: Backend, srv: Server | null): string {
  return srv === null || srv.name === be.name ? `backend ${be.name}` : `backend ${be.name}/${srv.name}`;
}

/** FNV-1a over a string's UTF-16 units, mixed: a 32-bit key for the consistent hash. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return mix(h);
}

/** A 32-bit finaliser (murmur3's): every input bit moves every output bit. */
export function mix(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The context the routing layer and every protocol need. */
export interface RouteContext extends HandshakeContext {
  readonly frontends: readonly Frontend[];
  readonly backends: readonly Backend[];
  /** Every server this worker knows, by id (removed ones too, while connections to them may be open). */
  readonly servers: readonly (Server | undefined)[];
  /** The shared server states (SRV), by id. */
  readonly serverState: Int32Array;
  /** Per client slot: connects tried again for its connection or its current request (connect.ts). */
  readonly attempts: Uint8Array;
}

/** What applyRoutes() changed, for the loop to act on. */
export type RouteChanges = {
  /** Frontend indices new here: their listeners are to be registered. */
  added: number[];
  /** Frontend indices taken out: their listeners are to be closed, their idle clients let go. */
  removed: number[];
  /** Servers no backend has any more: their idle connections are to be closed. */
  dropped: Server[];
};

/**
 * Brings a worker's route tables to the configs given (at start, and at each reload): `frontends[i]` and
 * `backends[i]` are by stable index, null for one taken out. Frontends are replaced in place (their
 * listeners stay), added, or marked removed; backends are rebuilt; servers are kept by id, with their pools
 * and counts, and only updated (weight, backup, backend). Removed objects stay in the tables, so that a
 * connection still open reads the options it was made with.
 */
export function applyRoutes(
  tables: { frontends: Frontend[]; backends: Backend[]; servers: (Server | undefined)[] },
  frontends: readonly (FrontendConfig | null)[],
  backends: readonly (BackendConfig | null)[],
): RouteChanges {
  const changes: RouteChanges = { added: [], removed: [], dropped: [] };
  frontends.forEach((c, i) => {
    const old = tables.frontends[i];
    if (c === null) {
      if (old !== undefined && !old.removed) {
        old.removed = true;
        changes.removed.push(i);
      }
      return;
    }
    if (old === undefined || old.removed) changes.added.push(i);
    tables.frontends[i] = new Frontend(i, c);
  });
  const live = new Set<Server>();
  backends.forEach((c, i) => {
    if (c === null) {
      const old = tables.backends[i];
      if (old !== undefined) old.removed = true;
      return;
    }
    const servers = c.servers.map((sc) => {
      let s = tables.servers[sc.id];
      if (s === undefined) s = tables.servers[sc.id] = new Server(sc);
      s.weight = sc.weight;
      s.backup = sc.backup;
      live.add(s);
      return s;
    });
    const be = new Backend(i, c, servers);
    for (const s of servers) s.backend = be;
    tables.backends[i] = be;
  });
  for (const s of tables.servers) {
    if (s === undefined || live.has(s) || s.backend === null) continue;
    changes.dropped.push(s);
    s.backend = null; // counted as dropped once
  }
  return changes;
}
