// The live connection list (the admin endpoint's GET /connections), read on the main thread from the
// workers' shared tables (core/table.ts) and the kernel. HAProxy's `show sess`, with the kernel's view of
// each socket: the main thread shares the workers' process, so their fds are its fds too, and getpeername()
// and TCP_INFO work on them from here.
//
// A worker may close a slot while it is read. Each entry is taken between two reads of the slot's
// generation; when they differ the slot changed under us and the entry is dropped (the fd may by then be
// another connection's, so whatever the kernel said of it is dropped with it).

import type { ConnTable } from '../core/table.js';
import { LINE_BYTES } from '../core/table.js';
import { termName } from '../core/term.js';
import { KIND, PROTO, ST, protoName, stateName } from '../core/types.js';
import type { BackendConfig, FrontendConfig } from '../route/index.js';
import { type TcpInfo, formatAddress, peerAddress, tcpInfo } from '../sys/index.js';

export type ConnectionEntry = {
  /** `worker.slot.generation`: what POST /connections/ID/close takes. */
  id: string;
  worker: number;
  client: string;
  frontend: string;
  backend: string | null;
  server: string | null;
  /** tcp, http (waiting for or reading a request), or tunnel (TCP mode, or an upgraded HTTP connection). */
  protocol: string;
  /** The client slot's state (docs/architecture.md), and its server connection's when it has one. */
  state: string;
  serverState: string | null;
  ageSeconds: number;
  idleSeconds: number;
  /** Bytes from the client (forwarded), and to it. */
  bytesIn: number;
  bytesOut: number;
  /** HTTP: the request being served, and for how long; null between requests. */
  request: { line: string; truncated: boolean; seconds: number } | null;
  /** Why it is ending, when a cause is already known. */
  ending: string | null;
  tcp: { client: TcpInfo | null; server: TcpInfo | null };
};

export type ConnectionFilter = {
  frontend?: string;
  /** A server's name, or `backend/server`. */
  server?: string;
  /** A state name (H_WAIT, PROXYING...), or a protocol (http, tcp, tunnel). */
  state?: string;
  minAgeSeconds?: number;
  /** Sort: age (oldest first, the default), idle, bytes (most first). */
  sort?: 'age' | 'idle' | 'bytes';
  limit: number;
};

export type ConnectionList = { total: number; matched: number; connections: ConnectionEntry[] };

export type ConnectionSources = {
  tables: ConnTable[];
  frontends: readonly (FrontendConfig | null)[];
  backends: readonly (BackendConfig | null)[];
};

/** The longest list one request may ask for. */
export const MAX_LIMIT = 10_000;

/** Client connections of every worker that pass `f`, sorted, at most f.limit of them (TCP_INFO only for those). */
export function listConnections(src: ConnectionSources, f: ConnectionFilter): ConnectionList {
  const now = performance.timeOrigin + performance.now();
  const servers = serverNames(src.backends);
  const picked: { w: number; s: number; gen: number; age: number; idle: number; bytes: number }[] = [];
  let total = 0;
  src.tables.forEach((t, w) => {
    for (let s = 0; s < t.capacity; s++) {
      if (t.kind[s] !== KIND.CLIENT) continue;
      total++;
      const gen = t.gen[s];
      const age = (now - t.born[s]) / 1000;
      if (f.minAgeSeconds !== undefined && age < f.minAgeSeconds) continue;
      if (f.frontend !== undefined && src.frontends[t.fe[s]]?.name !== f.frontend) continue;
      const b = t.peer[s];
      if (f.server !== undefined) {
        const name = b >= 0 && t.kind[b] === KIND.BACKEND ? servers.get(t.srv[b]) : undefined;
        if (name === undefined || (name.full !== f.server && name.server !== f.server)) continue;
      }
      if (f.state !== undefined && f.state !== stateName(t.state[s]) && f.state !== protocol(t, s)) continue;
      picked.push({ w, s, gen, age, idle: (now - t.seen[s]) / 1000, bytes: t.up[s] + t.down[s] });
    }
  });
  const key = f.sort ?? 'age';
  picked.sort((a, b) => b[key] - a[key]);
  const connections: ConnectionEntry[] = [];
  for (const p of picked) {
    if (connections.length >= f.limit) break;
    const e = entry(src, servers, p.w, p.s, p.gen, now);
    if (e !== null) connections.push(e);
  }
  return { total, matched: picked.length, connections };
}

function protocol(t: ConnTable, s: number): string {
  const p = t.proto[s];
  return p === PROTO.TUNNEL ? 'tunnel' : p === PROTO.H1_CLIENT ? 'http' : protoName(p);
}

function entry(src: ConnectionSources, servers: Map<number, Names>, w: number, s: number, gen: number, now: number): ConnectionEntry | null {
  const t = src.tables[w];
  const b = t.peer[s];
  const paired = b >= 0 && t.kind[b] === KIND.BACKEND;
  const clientFd = t.fd[s];
  const serverFd = paired ? t.fd[b] : -1;
  const peer = clientFd >= 0 ? peerAddress(clientFd) : null;
  const tcp = { client: clientFd >= 0 ? tcpInfo(clientFd) : null, server: serverFd >= 0 ? tcpInfo(serverFd) : null };
  const st = t.state[s];
  const inRequest = t.proto[s] === PROTO.H1_CLIENT && (st === ST.H_BODY || st === ST.H_WAIT);
  const n = Math.min(t.lineLen[s], LINE_BYTES);
  const line = inRequest ? Buffer.from(t.line.subarray(s * LINE_BYTES, s * LINE_BYTES + n)).toString('latin1') : '';
  const names = paired ? servers.get(t.srv[b]) : undefined;
  const e: ConnectionEntry = {
    id: `${w}.${s}.${gen}`,
    worker: w,
    client: peer ? formatAddress(peer) : '-',
    frontend: src.frontends[t.fe[s]]?.name ?? '-',
    backend: names?.backend ?? null,
    server: names?.server ?? null,
    protocol: protocol(t, s),
    state: stateName(st),
    serverState: paired ? stateName(t.state[b]) : null,
    ageSeconds: round3((now - t.born[s]) / 1000),
    idleSeconds: round3((now - t.seen[s]) / 1000),
    bytesIn: t.up[s],
    bytesOut: t.down[s],
    request: inRequest ? { line, truncated: t.lineLen[s] > LINE_BYTES, seconds: round3((now - t.since[s]) / 1000) } : null,
    ending: t.term[s] !== 0 ? termName(t.term[s]) : null,
    tcp,
  };
  // Invariant 3: read, then check the slot is still the connection we started reading.
  return t.gen[s] === gen && t.kind[s] === KIND.CLIENT ? e : null;
}

type Names = { backend: string; server: string; full: string };

function serverNames(backends: readonly (BackendConfig | null)[]): Map<number, Names> {
  const m = new Map<number, Names>();
  for (const be of backends) for (const s of be?.servers ?? []) m.set(s.id, { backend: be!.name, server: s.name, full: `${be!.name}/${s.name}` });
  return m;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
