// The counters each worker keeps in its table's shared header, declared once: their index (CTR), the name
// stats() gives them, their kind and what they count. stats() and its type are generated from this list,
// so a counter added here is read, summed and typed everywhere at once.
//
// The header's Float64 counters come in blocks, one after the other:
//
//   block        indices                        written by   what
//   worker       0 .. CTR.COUNT-1               the worker   the counters below
//   terminations TERM_BASE .. TERM_BASE+TERM.COUNT-1   the worker   connections ended, by termination code (term.ts)
//
// A block per frontend and per backend goes after these (FRONTEND_BASE): counterSlots() is where their size
// is added, and the table lays out whatever it says. Each counter is written by its worker only and read by
// the main thread without locks: an aligned 8-byte store does not tear on x86-64 or arm64.

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

/** Where per-frontend and per-backend blocks will start. */
export const FRONTEND_BASE = TERM_BASE + TERM.COUNT;

/** Float64 counters the header holds. */
export function counterSlots(): number {
  return FRONTEND_BASE;
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
