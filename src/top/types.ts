// What `ffi-proxy top` reads: the admin endpoint's JSON answers (GET /stats, GET /connections), typed as the
// client sees them. These mirror src/control/admin.ts, metrics.ts and connections.ts by hand, because top is
// a client of the endpoint's wire format and imports nothing else of src/ (docs/architecture.md, "Layers").
// Only the fields top shows are listed; an older or newer proxy may send more, or (rates) null.

/** Seconds; null when nothing was measured in the window. */
export type Latency = { p50: number | null; p90: number | null; p99: number | null; count: number };

/** Responses by class: '1xx' ... '5xx', 'other'. */
export type Responses = Record<string, number>;

export type FrontendStats = {
  name: string;
  mode: string;
  listen: string;
  accepted: number;
  active: number;
  requests: number;
  bytesIn: number;
  bytesOut: number;
  responses: Responses;
  /** Per second over the last second; latency over the last 10 s. Null until the endpoint has two samples. */
  rates: { connections: number; requests: number; bytesIn: number; bytesOut: number; errors: number; active: number; latency: Latency } | null;
};

export type ServerStateName = 'up' | 'down' | 'drain' | 'maint';

export type ServerStats = {
  name: string;
  address: string;
  up: boolean;
  state: ServerStateName;
  weight: number;
  backup: boolean;
  active: number;
  connectErrors: number;
  requests: number;
  responses: Responses;
  rates: { requests: number; connections: number; active: number; errors: number; up: boolean; firstByte: Latency } | null;
};

export type BackendStats = { name: string; balance: string; serversUp: number; servers: ServerStats[] };

export type Stats = {
  /** ISO time the snapshot was read. */
  time: string;
  uptimeSeconds: number;
  process: { cpuSeconds: number; residentBytes: number; openFds: number; maxFds: number; startTimeSeconds?: number };
  rates: { connections: number; requests: number; bytesIn: number; bytesOut: number; errors: number; active: number } | null;
  totals: { accepted: number; active: number; requests: number };
  frontends: FrontendStats[];
  backends: BackendStats[];
};

export type Connection = {
  id: string;
  client: string;
  frontend: string;
  backend: string | null;
  server: string | null;
  protocol: string;
  state: string;
  serverState: string | null;
  ageSeconds: number;
  idleSeconds: number;
  bytesIn: number;
  bytesOut: number;
  request: { line: string; truncated: boolean; seconds: number } | null;
  ending: string | null;
};

export type ConnectionList = { total: number; matched: number; connections: Connection[] };

/** The orders GET /connections knows: oldest first, longest idle first, most bytes first. */
export const SORTS = ['age', 'bytes', 'idle'] as const;
export type Sort = (typeof SORTS)[number];

/** Everything one frame shows. render.ts turns it into lines; top.ts keeps it up to date. */
export type View = {
  /** The admin endpoint, as the user named it. */
  target: string;
  stats: Stats | null;
  connections: ConnectionList | null;
  /** The proxy process's CPU use since the previous frame (100 = one core), or null. */
  cpuPercent: number | null;
  /** Why the last poll failed (shown over the last good data), or null. */
  error: string | null;
  sort: Sort;
  help: boolean;
};

/** A line of a frame: plain text no wider than the frame, and how the terminal should paint it. */
export type Line = { text: string; style: LineStyle };
export type LineStyle = 'plain' | 'title' | 'head' | 'error' | 'bad' | 'warn' | 'dim';
