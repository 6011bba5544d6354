// The admin endpoint: an HTTP server on the main thread (node:http), never on a worker's path. Everything it
// answers is read from shared memory (the tables' counters and columns, the server states) or from the
// kernel; its actions are messages to the workers (worker/mailbox.ts) or words in the shared states.
//
//   GET  /                                     the status page (page.ts)
//   GET  /metrics                              Prometheus text, or OpenMetrics when the Accept header asks
//   GET  /stats                                the same as JSON, with rates and recent latency (sampler.ts)
//   GET  /history?seconds=N                    the last N one-second samples (the status page's charts)
//   GET  /connections?frontend=&server=&state=&min_age=&sort=&limit=
//   POST /connections/ID/close                 ends one client connection (termination code `killed`)
//   POST /servers/BACKEND/SERVER/state         state=ready|drain|maint
//   POST /servers/BACKEND/SERVER/weight        weight=0..256
//   POST /log-level                            level=silent|error|warn|info|debug
//   GET|POST /frontends/NAME/toxics            a frontend's toxics; add one (docs/toxiproxy.md)
//   GET|POST|PATCH|DELETE /frontends/NAME/toxics/TOXIC
//
// A POST takes its parameters from the query string, a form body or a JSON object; the toxic routes take
// Toxiproxy's JSON bodies and answer as toxiproxy-server does (errors `{"error": ..., "status": N}`).
// Mutations are POST only (Envoy's rule; the toxic routes also take Toxiproxy's PATCH and DELETE): a GET of
// one is 405. Bound to a non-loopback address, the endpoint requires a bearer
// token (`Authorization: Bearer TOKEN`, or `?token=` for a browser), and start() refuses to run without one.

import { timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { readdirSync } from 'node:fs';
import type { Logger } from '../core/log.js';
import { type Address, CODES, ProxyError, formatAddress, getNofile, parseAddress } from '../sys/index.js';
import { ApiError, type ToxicChange, decodeJson } from './config-toxics.js';
import { type ConnectionFilter, MAX_LIMIT, listConnections } from './connections.js';
import { snapshot } from './metrics.js';
import { pageAsset } from './page.js';
import { OPENMETRICS_TYPE, type ProcessMetrics, TEXT_TYPE, exposition } from './prometheus.js';
import { ADMIN_STATES, type AdminState, type Running } from './running.js';
import { HISTORY, Sampler } from './sampler.js';

export type AdminOptions = {
  /** `HOST:PORT` (port 0: any free port). */
  listen: string;
  /** Required when `listen` is not a loopback address. */
  token: string | null;
};

/** What the admin endpoint reports beside the running proxy: the access log's counts (accesslog.ts). */
export type AdminExtras = { accessLog?: () => { written: number; dropped: number; files: string[] } };

export class AdminServer {
  private readonly sampler: Sampler;
  private readonly started = Date.now();

  private constructor(
    private readonly server: Server,
    private readonly running: Running,
    private readonly token: Buffer | null,
    private readonly extras: AdminExtras,
    readonly address: Address,
  ) {
    this.sampler = new Sampler(() => snapshot(running.sources()));
  }

  /**
   * Listens on `o.listen` and serves `running`. Throws ProxyError for a bad address, a non-loopback
   * address without a token, or a port in use (code EADDRINUSE on the error's `cause`).
   */
  static async start(o: AdminOptions, running: Running, log: Logger, extras: AdminExtras = {}): Promise<AdminServer> {
    const spec = parseAddress(o.listen);
    if (spec.family === 'unix' || spec.family === 'name') {
      throw new ProxyError(CODES.BAD_OPTION, `admin address ${o.listen}: give an IP address and a port, as 127.0.0.1:9901`);
    }
    if (!isLoopback(spec) && !o.token) {
      throw new ProxyError(CODES.BAD_OPTION, `admin address ${o.listen} is not a loopback address: give --admin-token TOKEN (clients send "Authorization: Bearer TOKEN")`);
    }
    let admin: AdminServer | null = null;
    const server = createServer((req, res) => admin!.serve(req, res));
    server.keepAliveTimeout = 5000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      const fail = (e: NodeJS.ErrnoException) => {
        const why = e.code === 'EADDRINUSE' ? 'the port is in use' : e.message;
        reject(Object.assign(new ProxyError(CODES.BAD_OPTION, `admin endpoint ${o.listen}: ${why}`), { cause: e }));
      };
      server.once('error', fail);
      server.listen(spec.port, spec.host, () => {
        server.off('error', fail);
        resolve();
      });
    });
    server.on('error', (e) => log.error(`admin endpoint: ${e.message}`));
    const a = server.address();
    const bound: Address = typeof a === 'object' && a !== null ? { ...spec, port: a.port } : spec;
    admin = new AdminServer(server, running, o.token ? Buffer.from(o.token) : null, extras, bound);
    admin.sampler.start();
    const note = admin.token ? ' (bearer token required)' : '';
    log.info(`admin endpoint on http://${formatAddress(bound)}/${note}`);
    return admin;
  }

  close(): Promise<void> {
    this.sampler.stop();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    this.route(req, res).catch((e: unknown) => {
      if (e instanceof ApiError) return send(res, e.status, { error: e.message, status: e.status });
      const bad = e instanceof ProxyError;
      send(res, bad ? 400 : 500, { error: e instanceof Error ? e.message : String(e) });
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (!this.authorized(req, url)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="ffi-proxy admin"');
      return send(res, 401, { error: 'this admin endpoint needs "Authorization: Bearer TOKEN" (or ?token=TOKEN)' });
    }
    const path = url.pathname.split('/').filter((p) => p !== '').map(decodeURIComponent);
    const get = req.method === 'GET' || req.method === 'HEAD';
    const post = req.method === 'POST';
    const only = (method: 'GET' | 'POST', run: () => unknown): unknown => {
      if (method === 'GET' ? get : post) return run();
      res.setHeader('Allow', method === 'GET' ? 'GET, HEAD' : 'POST');
      return send(res, 405, { error: `${url.pathname} takes ${method} only` });
    };
    const [head, a, b, c] = path;
    if (path.length === 0 || head === 'assets') return only('GET', () => this.asset(res, url.pathname));
    if (path.length === 1 && head === 'metrics') return only('GET', () => this.metrics(req, res));
    if (path.length === 1 && head === 'stats') return only('GET', () => send(res, 200, this.stats()));
    if (path.length === 1 && head === 'history') return only('GET', () => send(res, 200, this.history(url)));
    if (path.length === 1 && head === 'connections') return only('GET', () => send(res, 200, this.connections(url)));
    if (path.length === 3 && head === 'connections' && b === 'close') return only('POST', () => this.close1(res, a));
    if (path.length === 4 && head === 'servers' && (c === 'state' || c === 'weight')) {
      return only('POST', async () => send(res, 200, this.setServer(a, b, c, await params(req, url))));
    }
    if (path.length === 1 && head === 'log-level') {
      return only('POST', async () => {
        const level = (await params(req, url)).level;
        if (typeof level !== 'string') throw new ProxyError(CODES.BAD_OPTION, 'give level=silent|error|warn|info|debug');
        send(res, 200, { logLevel: this.running.setLogLevel(level) });
      });
    }
    if (head === 'frontends' && b === 'toxics' && (path.length === 3 || path.length === 4)) return this.toxics(req, res, a, c);
    return send(res, 404, { error: `no ${url.pathname} here: see GET / , /metrics, /stats, /history, /connections (docs/observability.md)` });
  }

  /** The toxic routes: `toxic` undefined is /frontends/NAME/toxics. Toxiproxy's statuses: 200, 204 for a delete. */
  private async toxics(req: IncomingMessage, res: ServerResponse, frontend: string, toxic: string | undefined): Promise<void> {
    const r = this.running;
    const m = req.method ?? '';
    if (toxic === undefined) {
      if (m === 'GET' || m === 'HEAD') return send(res, 200, r.toxics(frontend));
      if (m === 'POST') return send(res, 200, await r.addToxic(frontend, await jsonBody(req)));
      res.setHeader('Allow', 'GET, HEAD, POST');
    } else {
      if (m === 'GET' || m === 'HEAD') {
        const t = r.toxics(frontend).find((x) => x.name === toxic);
        if (t === undefined) throw new ApiError(404, 'toxic not found');
        return send(res, 200, t);
      }
      if (m === 'POST' || m === 'PATCH') return send(res, 200, await r.updateToxic(frontend, toxic, (await jsonBody(req)) as ToxicChange));
      if (m === 'DELETE') {
        await r.removeToxic(frontend, toxic);
        res.writeHead(204, { 'Cache-Control': 'no-store' });
        return void res.end();
      }
      res.setHeader('Allow', 'GET, HEAD, POST, PATCH, DELETE');
    }
    send(res, 405, { error: `${m} is not allowed here`, status: 405 });
  }

  private authorized(req: IncomingMessage, url: URL): boolean {
    if (this.token === null) return true;
    const auth = req.headers.authorization ?? '';
    const given = auth.startsWith('Bearer ') ? auth.slice(7).trim() : (url.searchParams.get('token') ?? '');
    const g = Buffer.from(given);
    return g.length === this.token.length && timingSafeEqual(g, this.token);
  }

  private asset(res: ServerResponse, path: string): void {
    const a = pageAsset(path === '/' ? '/index.html' : path);
    if (a === null) return send(res, 404, { error: `no ${path} here` });
    res.writeHead(200, { 'Content-Type': a.type, 'Content-Length': a.body.length, 'Cache-Control': 'no-cache' });
    res.end(a.body);
  }

  private metrics(req: IncomingMessage, res: ServerResponse): void {
    const open = /application\/openmetrics-text/.test(req.headers.accept ?? '');
    const body = exposition(snapshot(this.running.sources()), processMetrics(), open, this.extras.accessLog?.() ?? null);
    res.writeHead(200, { 'Content-Type': open ? OPENMETRICS_TYPE : TEXT_TYPE, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }

  /** GET /stats: the snapshot, the process, the workers, and the last second's rates and recent latency. */
  stats(): unknown {
    const snap = snapshot(this.running.sources());
    const latest = this.sampler.latest();
    return {
      time: new Date(snap.time).toISOString(),
      uptimeSeconds: Math.round((Date.now() - this.started) / 1000),
      process: processMetrics(),
      workers: this.running.workers.workerStats(),
      rates: latest?.total ?? null,
      totals: snap.totals,
      frontends: snap.frontends.map((f) => ({ ...f, rates: latest?.frontends[f.name] ?? null })),
      backends: snap.backends.map((b) => ({
        ...b,
        servers: b.servers.map((s) => ({ ...s, rates: latest?.servers[`${b.name}/${s.name}`] ?? null })),
      })),
      accessLog: this.extras.accessLog?.() ?? null,
    };
  }

  private history(url: URL): unknown {
    const n = intParam(url, 'seconds', HISTORY, 1, HISTORY);
    return { seconds: n, samples: this.sampler.history(n) };
  }

  private connections(url: URL): unknown {
    const q = url.searchParams;
    const sort = q.get('sort') ?? 'age';
    if (sort !== 'age' && sort !== 'idle' && sort !== 'bytes') throw new ProxyError(CODES.BAD_OPTION, `sort must be age, idle or bytes, not "${sort}"`);
    const minAge = q.get('min_age');
    const f: ConnectionFilter = {
      frontend: q.get('frontend') ?? undefined,
      server: q.get('server') ?? undefined,
      state: q.get('state') ?? undefined,
      minAgeSeconds: minAge === null ? undefined : numberParam('min_age', minAge),
      sort,
      limit: intParam(url, 'limit', 100, 1, MAX_LIMIT),
    };
    const s = this.running.sources();
    return listConnections({ tables: s.tables, frontends: s.frontends, backends: s.backends }, f);
  }

  private close1(res: ServerResponse, id: string): void {
    const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(id);
    if (m === null) return send(res, 400, { error: `a connection id is WORKER.SLOT.GENERATION, as GET /connections gives it, not "${id}"` });
    const closed = this.running.closeConnection(Number(m[1]), Number(m[2]), Number(m[3]));
    if (!closed) return send(res, 404, { error: `no connection ${id}: it has closed already, or never was` });
    send(res, 200, { closed: id });
  }

  private setServer(backend: string, server: string, what: 'state' | 'weight', p: Record<string, unknown>): unknown {
    if (what === 'state') {
      const state = p.state;
      if (typeof state !== 'string' || !(ADMIN_STATES as readonly string[]).includes(state)) {
        throw new ProxyError(CODES.BAD_OPTION, `give state=${ADMIN_STATES.join('|')}`);
      }
      return { backend, server, state: this.running.setServerState(backend, server, state as AdminState) };
    }
    const weight = typeof p.weight === 'number' ? p.weight : typeof p.weight === 'string' && p.weight.trim() !== '' ? Number(p.weight) : NaN;
    return { backend, server, weight: this.running.setServerWeight(backend, server, weight) };
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

/** A POST's parameters: the query string, then a JSON object or form body over it. At most 64 KiB. */
async function params(req: IncomingMessage, url: URL): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = Object.fromEntries(url.searchParams);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 65536) throw new ProxyError(CODES.BAD_OPTION, 'the body is over 64 KiB');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return out;
  if (text.startsWith('{')) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new ProxyError(CODES.BAD_OPTION, `the body is not JSON: ${(e as Error).message}`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ProxyError(CODES.BAD_OPTION, 'the body must be a JSON object');
    return { ...out, ...(v as Record<string, unknown>) };
  }
  return { ...out, ...Object.fromEntries(new URLSearchParams(text)) };
}

/** A JSON body, as Toxiproxy's API reads one: 400 `bad request body: ...` when it is not JSON or is empty. At most 64 KiB. */
async function jsonBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 65536) throw new ApiError(400, 'bad request body: over 64 KiB');
    chunks.push(chunk as Buffer);
  }
  return decodeJson(Buffer.concat(chunks).toString('utf8'));
}

function numberParam(name: string, text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0) throw new ProxyError(CODES.BAD_OPTION, `${name} must be a number of 0 or more, not "${text}"`);
  return n;
}

function intParam(url: URL, name: string, dflt: number, min: number, max: number): number {
  const text = url.searchParams.get(name);
  if (text === null) return dflt;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new ProxyError(CODES.BAD_OPTION, `${name} must be an integer from ${min} to ${max}, not "${text}"`);
  return n;
}

function isLoopback(a: Address): boolean {
  if (a.family === 'ipv4') return a.host.startsWith('127.');
  return a.family === 'ipv6' && (a.host === '::1' || a.host === '0:0:0:0:0:0:0:1');
}

const startTimeSeconds = Date.now() / 1000 - process.uptime();

/** The process's own metrics: CPU (every thread), resident memory, open fds. */
export function processMetrics(): ProcessMetrics {
  const cpu = process.cpuUsage();
  let openFds = 0;
  try {
    openFds = readdirSync('/proc/self/fd').length - 1; // less the directory's own fd
  } catch {
    openFds = 0;
  }
  return {
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    residentBytes: process.memoryUsage.rss(),
    openFds,
    maxFds: getNofile()[0],
    startTimeSeconds: Math.round(startTimeSeconds),
  };
}
