// What the workers counted, read on the main thread from their tables' shared headers (core/counters.ts)
// and summed: a snapshot per frontend, backend and server, and the Prometheus text of it. Nothing here
// runs on a worker: the workers only add to their counters; the reading, summing and formatting are the
// main thread's, when the admin endpoint is asked.

import { BUCKETS, FE, HIST_SLOTS, STATUS_CLASSES, SV, type Stats, feBase, sumStats, svBase } from '../core/counters.js';
import type { ConnTable } from '../core/table.js';
import { TERM, TERM_INFO } from '../core/term.js';
import { type BackendConfig, type FrontendConfig, SRV } from '../route/index.js';
import { type Address, formatAddress } from '../sys/index.js';

/** Counts per bucket (BUCKETS, then +Inf; not cumulative), their total, and the sum of the seconds. */
export type Histogram = { buckets: number[]; count: number; sum: number };

export type FrontendSnapshot = {
  name: string;
  mode: string;
  listen: string;
  accepted: number;
  active: number;
  refused: number;
  requests: number;
  bytesIn: number;
  bytesOut: number;
  /** Responses by class (1xx ... 5xx, other). */
  responses: Record<string, number>;
  /** Client connections ended, by termination code (every code, so that a first one shows in a rate). */
  terminations: Record<string, number>;
  /** An HTTP request's whole time, a TCP connection's. */
  duration: Histogram;
};

export type ServerSnapshot = {
  name: string;
  address: string;
  /** Takes new connections: up by its health, not drained or in maintenance by an operator. */
  up: boolean;
  /** maint or drain (an operator's), else down or up (its health). */
  state: ServerState;
  weight: number;
  backup: boolean;
  checked: boolean;
  /** Times it went down or up. */
  transitions: number;
  connects: number;
  active: number;
  connectErrors: number;
  retries: number;
  requests: number;
  bytesIn: number;
  bytesOut: number;
  responses: Record<string, number>;
  connectTime: Histogram;
  firstByte: Histogram;
};

export type BackendSnapshot = { name: string; balance: string; serversUp: number; servers: ServerSnapshot[] };

export type Snapshot = {
  /** Date.now() when it was read. */
  time: number;
  totals: Stats;
  frontends: FrontendSnapshot[];
  backends: BackendSnapshot[];
};

/** What the snapshot needs to know of the running proxy besides the tables. */
export type Sources = {
  tables: ConnTable[];
  frontends: readonly (FrontendConfig | null)[];
  backends: readonly (BackendConfig | null)[];
  addresses: readonly (Address | null)[];
  serverState: Int32Array;
  checked(id: number): boolean;
  transitions(id: number): number;
};

export const SERVER_STATES = ['up', 'down', 'drain', 'maint'] as const;
export type ServerState = (typeof SERVER_STATES)[number];

/** A server's word in the shared states (route/routes.ts SRV), named: an operator's maint or drain first, then its health. */
export function serverStateName(word: number): ServerState {
  return word & SRV.MAINT ? 'maint' : word & SRV.DRAIN ? 'drain' : word & SRV.DOWN ? 'down' : 'up';
}

export function snapshot(src: Sources): Snapshot {
  const headers = src.tables.map((t) => t.ctr);
  const sum = (i: number) => headers.reduce((a, c) => a + c[i], 0);
  const hist = (at: number): Histogram => {
    const buckets = Array.from({ length: BUCKETS.length + 1 }, (_, k) => sum(at + k));
    return { buckets, count: buckets.reduce((a, b) => a + b, 0), sum: sum(at + HIST_SLOTS - 1) };
  };
  const classes = (at: number) => Object.fromEntries(STATUS_CLASSES.map((c, k) => [c, sum(at + k)]));
  const frontends: FrontendSnapshot[] = [];
  src.frontends.forEach((f, i) => {
    if (f === null) return;
    const b = feBase(i);
    const terminations: Record<string, number> = {};
    for (let code = 1; code < TERM.COUNT; code++) {
      terminations[TERM_INFO[code].name] = sum(b + FE.TERM + code);
    }
    const a = src.addresses[i];
    frontends.push({
      name: f.name,
      mode: f.mode,
      listen: formatAddress(a ?? f.listen),
      accepted: sum(b + FE.ACCEPTED),
      active: sum(b + FE.ACTIVE),
      refused: sum(b + FE.REFUSED),
      requests: sum(b + FE.REQUESTS),
      bytesIn: sum(b + FE.BYTES_IN),
      bytesOut: sum(b + FE.BYTES_OUT),
      responses: classes(b + FE.STATUS),
      terminations,
      duration: hist(b + FE.DURATION),
    });
  });
  const backends: BackendSnapshot[] = [];
  for (const be of src.backends) {
    if (be === null) continue;
    const servers = be.servers.map((s): ServerSnapshot => {
      const b = svBase(s.id);
      const word = Atomics.load(src.serverState, s.id);
      return {
        name: s.name,
        address: formatAddress(s.address),
        up: word === SRV.UP,
        state: serverStateName(word),
        weight: s.weight,
        backup: s.backup,
        checked: src.checked(s.id),
        transitions: src.transitions(s.id),
        connects: sum(b + SV.CONNECTS),
        active: sum(b + SV.ACTIVE),
        connectErrors: sum(b + SV.CONNECT_ERRORS),
        retries: sum(b + SV.RETRIES),
        requests: sum(b + SV.REQUESTS),
        bytesIn: sum(b + SV.BYTES_IN),
        bytesOut: sum(b + SV.BYTES_OUT),
        responses: classes(b + SV.STATUS),
        connectTime: hist(b + SV.CONNECT_TIME),
        firstByte: hist(b + SV.FIRST_BYTE),
      };
    });
    backends.push({ name: be.name, balance: be.balance, serversUp: servers.filter((s) => s.up).length, servers });
  }
  return { time: Date.now(), totals: sumStats(headers), frontends, backends };
}

/** The q-th quantile (0..1) of a histogram, interpolated inside its bucket; 0 when it is empty. */
export function quantile(h: Histogram, q: number): number {
  if (h.count === 0) return 0;
  const want = q * h.count;
  let seen = 0;
  for (let k = 0; k < h.buckets.length; k++) {
    const n = h.buckets[k];
    if (seen + n >= want && n > 0) {
      const lo = k === 0 ? 0 : BUCKETS[k - 1];
      const hi = k < BUCKETS.length ? BUCKETS[k] : BUCKETS[BUCKETS.length - 1] * 2;
      return lo + ((want - seen) / n) * (hi - lo);
    }
    seen += n;
  }
  return BUCKETS[BUCKETS.length - 1];
}
