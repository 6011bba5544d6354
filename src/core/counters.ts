// The counters each worker keeps in its table's shared header, declared once: their index (CTR), the name
// stats() gives them, their kind and what they count. stats() and its type are generated from this list,
// so a counter added here is read, summed and typed everywhere at once.
//
// The header's Float64 counters come in blocks, one after the other:
//
//   block         where                              what
//   worker        0 .. CTR.COUNT-1                   the counters below
//   terminations  TERM_BASE + code                   connections ended, by termination code (term.ts)
//   frontends     feBase(index) + FE.*               per frontend (by its stable index, MAX_FRONTENDS of them)
//   servers       svBase(id) + SV.*                  per server (by its stable id, MAX_SERVERS of them)
//
// The frontend and server blocks are laid out for the most a process can have; a block's pages are only
// made resident by the kernel once a worker writes into them, so the room costs address space, not memory.
// A histogram is HIST_SLOTS counters in a block: one per bucket of BUCKETS (not cumulative; the exporter
// sums them), one for +Inf, then the sum of the seconds observed.
//
// Every counter is written by its worker only and read by the main thread without locks: an aligned 8-byte
// store does not tear on x86-64 or arm64.

import { TERM, TERM_INFO } from './term.js';

type Kind = 'counter' | 'gauge';
type Entry = { readonly stat: string; readonly kind: Kind; readonly help: string };

/** The worker block, in index order. `stat` is the key stats() gives the sum over the workers. */
const WORKER = {
  ACCEPTED: { stat: 'accepted', kind: 'counter', help: 'client connections accepted' },
  ACTIVE: { stat: 'active', kind: 'gauge', help: 'client connections open now' },
  BYTES_IN: { stat: 'bytesIn', kind: 'counter', help: 'bytes moved client -> backend' },
  BYTES_OUT: { stat: 'bytesOut', kind: 'counter', help: 'bytes moved backend -> client' },
  CONNECT_ERRORS: { stat: 'connectErrors', kind: 'counter', help: 'backend connections that failed: refused, unreachable, no fd, too slow' },
  IO_ERRORS: { stat: 'ioErrors', kind: 'counter', help: 'connections closed abortively (a reset passed on, a response cut off)' },
  REFUSED_FULL: { stat: 'refusedFull', kind: 'counter', help: 'connections closed at accept because the table was full' },
  BUFFERS: { stat: 'buffers', kind: 'gauge', help: 'pool buffers holding bytes now' },
  PIPES: { stat: 'pipes', kind: 'gauge', help: 'pipes holding bytes now' },
  PIPES_OPEN: { stat: 'pipesOpen', kind: 'gauge', help: 'pipes open (held plus idle in the pool)' },
  REQUESTS: { stat: 'requests', kind: 'counter', help: 'HTTP requests whose head was complete and valid' },
  GENERATED: { stat: 'generated', kind: 'counter', help: 'HTTP responses the proxy wrote itself (4xx/5xx)' },
  REUSED: { stat: 'reused', kind: 'counter', help: 'HTTP requests sent on a pooled backend connection' },
  PP_REFUSED: { stat: 'proxyRefused', kind: 'counter', help: 'clients closed for a missing, malformed or late PROXY header' },
} as const satisfies Record<string, Entry>;

type WorkerKey = keyof typeof WORKER;

const workerKeys = Object.keys(WORKER) as WorkerKey[];

/** Index of each worker counter in the header: `t.ctr[CTR.ACCEPTED]++`. */
export const CTR = Object.freeze({
  ...(Object.fromEntries(workerKeys.map((k, i) => [k, i])) as { readonly [K in WorkerKey]: number }),
  COUNT: workerKeys.length,
});

/** Where the termination block starts: `t.ctr[TERM_BASE + code]` counts connections ended for `code`. */
export const TERM_BASE = CTR.COUNT;

/** Frontend indices and server ids a process can have over its life (their blocks are laid out for all). */
export const MAX_FRONTENDS = 1024;
export const MAX_SERVERS = 4096;

/**
 * Histogram bucket bounds, in seconds: the usual ranges of a proxy's latencies, from half a millisecond on
 * loopback to the 30 s of a default backend timeout.
 */
export const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;
/** Counters a histogram takes: a count per bucket, one for +Inf, and the sum. */
export const HIST_SLOTS = BUCKETS.length + 2;

/** HTTP status classes, for the STATUS counters: 1xx .. 5xx, then any other code. */
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'] as const;

/** A frontend's block. */
export const FE = {
  ACCEPTED: 0, // client connections accepted
  ACTIVE: 1, // gauge: client connections open now
  REFUSED: 2, // connections closed at accept (table full)
  REQUESTS: 3, // HTTP requests with a valid head
  BYTES_IN: 4, // client -> backend
  BYTES_OUT: 5, // backend -> client
  STATUS: 6, // + class: responses sent (relayed or generated), by STATUS_CLASSES
  TERM: 6 + STATUS_CLASSES.length, // + code: client connections ended, by termination code
  DURATION: 6 + STATUS_CLASSES.length + TERM.COUNT, // histogram: an HTTP request's whole time, a TCP connection's
  SIZE: 6 + STATUS_CLASSES.length + TERM.COUNT + HIST_SLOTS,
} as const;

/** A server's block. */
export const SV = {
  CONNECTS: 0, // new connections opened to it
  ACTIVE: 1, // gauge: its connections carrying a client now
  CONNECT_ERRORS: 2, // connects that failed (refused, unreachable, too slow)
  RETRIES: 3, // connects tried again on another server after this one failed
  REQUESTS: 4, // HTTP requests sent to it
  BYTES_IN: 5, // client -> server
  BYTES_OUT: 6, // server -> client
  STATUS: 7, // + class: its responses, by STATUS_CLASSES
  CONNECT_TIME: 7 + STATUS_CLASSES.length, // histogram: connect() to connected
  FIRST_BYTE: 7 + STATUS_CLASSES.length + HIST_SLOTS, // histogram: request start to the response's first byte
  SIZE: 7 + STATUS_CLASSES.length + 2 * HIST_SLOTS,
} as const;

const FRONTEND_BASE = TERM_BASE + TERM.COUNT;
const SERVER_BASE = FRONTEND_BASE + MAX_FRONTENDS * FE.SIZE;

/** Where frontend `fe`'s block starts. */
export function feBase(fe: number): number {
  return FRONTEND_BASE + fe * FE.SIZE;
}

/** Where server `id`'s block starts. */
export function svBase(id: number): number {
  return SERVER_BASE + id * SV.SIZE;
}

/** Float64 counters the header holds. */
export function counterSlots(): number {
  return SERVER_BASE + MAX_SERVERS * SV.SIZE;
}

/** Counts one observation of `seconds` in the histogram at ctr[at..at+HIST_SLOTS). No allocation. */
export function observe(ctr: Float64Array, at: number, seconds: number): void {
  let k = 0;
  while (k < BUCKETS.length && seconds > BUCKETS[k]) k++;
  ctr[at + k]++;
  ctr[at + BUCKETS.length + 1] += seconds;
}

/** The status-class index of an HTTP status code. */
export function statusClass(status: number): number {
  return status >= 100 && status < 600 ? ((status / 100) | 0) - 1 : STATUS_CLASSES.length - 1;
}

/** Counters summed over the workers, named by the schema above (see README, "As a library"). */
export type Stats = { [K in WorkerKey as (typeof WORKER)[K]['stat']]: number } & {
  /** Client connections ended, by termination code name (core/term.ts); every code is present. */
  terminations: Record<string, number>;
};

/** The schema, for documents and exporters: each worker counter's stats() name, kind and help text. */
export function counterSchema(): { stat: string; kind: Kind; help: string }[] {
  return workerKeys.map((k) => ({ ...WORKER[k] }));
}

/** Sums every counter over the workers' headers. Read without locks (see above). */
export function sumStats(headers: Float64Array[]): Stats {
  const sum = (i: number) => headers.reduce((a, c) => a + c[i], 0);
  const out: Record<string, unknown> = {};
  workerKeys.forEach((k, i) => (out[WORKER[k].stat] = sum(i)));
  const terminations: Record<string, number> = {};
  for (let code = 1; code < TERM.COUNT; code++) terminations[TERM_INFO[code].name] = sum(TERM_BASE + code);
  out.terminations = terminations;
  return out as Stats;
}
