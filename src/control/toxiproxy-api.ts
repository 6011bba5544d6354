// The toxiproxy server (docs/toxiproxy.md): toxiproxy-server 2.12's HTTP API on the main thread (node:http),
// over the state of toxiproxy.ts and the workers of toxiproxy-host.ts, and toxiproxy(), which starts the
// three. Routes, statuses and words are toxiproxy-server's (gorilla/mux's defaults included: an unknown
// path is `404 page not found`, a known one with another method 405 with no body, `//x` a 301 to `/x`):
//
//   GET  /proxies                     POST /proxies                   POST /populate
//   GET|POST|PATCH|DELETE /proxies/P  GET|POST /proxies/P/toxics      GET|POST|PATCH|DELETE /proxies/P/toxics/T
//   POST /reset                       GET  /version                   /metrics (any method)
//
// An error is `{"error": "...", "status": N}`. A request whose User-Agent starts with `Mozilla/` gets 403,
// as from toxiproxy-server: a web page must not be able to drive it. No call waits on a connection: a
// change is a message to the workers, which apply it between two epoll_waits.

import { readFile } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { posix } from 'node:path';
import { LEVEL_NAMES, type LevelName, Logger, levelNumber } from '../core/log.js';
import { type Address, CODES, ProxyError, formatAddress, parseAddress } from '../sys/index.js';
import { ApiError, decodeJson } from './config-toxics.js';
import { PopulateError, ToxiproxyState } from './toxiproxy.js';
import { type ByteCount, ToxiproxyHost, lookupHost } from './toxiproxy-host.js';

/** What GET /version answers: the toxiproxy-server release whose API this one is. */
export const TOXIPROXY_VERSION = '2.12.0';

export type ToxiproxyOptions = {
  /** Where the API listens: a host name or an address (default `localhost`, that is 127.0.0.1). */
  host?: string;
  /** Its port (default 8474; 0: any free port, see `address`). */
  port?: number;
  /** Proxies to create first, as POST /populate takes them: a JSON file's path, or the list itself. */
  config?: string | unknown[];
  /** Seed of the toxics' random draws (toxicity, jitter...), for runs that repeat; default: random. */
  seed?: number;
  /** Worker threads that carry the proxies' connections (default 1: a test tool). */
  workers?: number;
  logLevel?: LevelName;
};

export type ToxiproxyServer = {
  /** Where the API listens, with the real port when 0 was asked for. */
  address: Address;
  /** `http://HOST:PORT`, for a client: `new Toxiproxy(server.url)`. */
  url: string;
  workers: number;
  /** Closes the API, every proxy's listener and connection, and ends the workers. Safe to call more than once. */
  close(): Promise<void>;
};

// Request bodies are small: a populate of a thousand proxies is well under this.
const MAX_BODY = 8 << 20;

/**
 * Starts a toxiproxy server: its workers, the proxies of `config`, then the API. Throws ProxyError: a bad
 * option, a config that is not a list of proxies or that cannot be populated (BAD_CONFIG, where
 * toxiproxy-server only logs it), the API's port in use.
 */
export async function toxiproxy(o: ToxiproxyOptions = {}): Promise<ToxiproxyServer> {
  if (process.platform !== 'linux') {
    throw new ProxyError(CODES.UNSUPPORTED_PLATFORM, `ffi-proxy runs on Linux only (this is ${process.platform})`);
  }
  const { listen, workers, seed, logLevel } = await checkOptions(o);
  const log = new Logger(levelNumber(logLevel), 'main');
  const host = await ToxiproxyHost.start({ workers, logLevel, seed }, log);
  let api: ToxiproxyApi;
  try {
    const state = new ToxiproxyState(host, log);
    if (o.config !== undefined) await populateConfig(state, o.config);
    api = await ToxiproxyApi.start(listen, state, host, log);
  } catch (e) {
    await host.stop();
    throw e;
  }
  let closing: Promise<void> | null = null;
  return {
    address: api.address,
    url: `http://${formatAddress(api.address)}`,
    workers,
    close() {
      closing ??= api.close().then(() => host.stop());
      return closing;
    },
  };
}

async function checkOptions(o: ToxiproxyOptions): Promise<{ listen: Address; workers: number; seed: number | null; logLevel: LevelName }> {
  const bad = (what: string) => new ProxyError(CODES.BAD_OPTION, what);
  const port = o.port ?? 8474;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw bad(`port must be a whole number from 0 to 65535, not ${String(o.port)}`);
  const workers = o.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1 || workers > 256) throw bad(`workers must be a whole number from 1 to 256, not ${String(o.workers)}`);
  // Go's seed is an int64; a larger one than 2^53 (a time in ns) is taken, with its low bits rounded.
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw bad(`seed must be a whole number, not ${String(o.seed)}`);
  const logLevel = o.logLevel ?? 'warn';
  if (!LEVEL_NAMES.includes(logLevel)) throw bad(`log level must be one of ${LEVEL_NAMES.join(', ')}, not ${String(logLevel)}`);
  const host = o.host ?? 'localhost';
  const spec = parseAddress(host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`);
  const listen = spec.family === 'unix' ? null : await lookupHost(spec);
  if (listen === null) throw new ProxyError(CODES.BAD_ADDRESS, `host ${host}: cannot resolve it`);
  return { listen, workers, seed: o.seed ?? null, logLevel };
}

/** A config (a file's path, or the list) populated; anything wrong is ProxyError BAD_CONFIG naming the file. */
async function populateConfig(state: ToxiproxyState, config: string | unknown[]): Promise<void> {
  const where = typeof config === 'string' ? config : 'config';
  let list: unknown = config;
  try {
    if (typeof config === 'string') list = JSON.parse(await readFile(config, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ProxyError(CODES.BAD_CONFIG, `${where}: ${code ? `cannot read: ${code}` : `not JSON: ${(e as Error).message}`}`);
  }
  if (!Array.isArray(list)) {
    throw new ProxyError(CODES.BAD_CONFIG, `${where}: must be a JSON list of proxies as POST /populate takes them ({"name", "listen", "upstream"}, and "enabled", "mode", "toxics")`);
  }
  try {
    await state.populate(list);
  } catch (e) {
    throw new ProxyError(CODES.BAD_CONFIG, `${where}: ${(e as Error).message.replace(/^bad request body: /, '')}`);
  }
}

type Reply = { status: number; body?: unknown };
type Handler = (req: IncomingMessage, p: string, t: string) => Promise<Reply>;

class ToxiproxyApi {
  private readonly routes: [RegExp, Record<string, Handler>][];

  private constructor(
    private readonly server: Server,
    state: ToxiproxyState,
    private readonly host: ToxiproxyHost,
    private readonly log: Logger,
    readonly address: Address,
  ) {
    const s = state;
    const body = readBody;
    const ok = (b: unknown): Reply => ({ status: 200, body: b });
    const none = (): Reply => ({ status: 204 });
    // As toxiproxy-server: an unknown proxy or toxic is 404 before the body is read.
    const updateProxy: Handler = async (r, p) => (s.get(p), ok(await s.update(p, await body(r))));
    const updateToxic: Handler = async (r, p, t) => (s.toxic(p, t), ok(await s.updateToxic(p, t, await body(r))));
    this.routes = [
      [/^\/proxies$/, { GET: async () => ok(s.list()), POST: async (r) => ({ status: 201, body: await s.create(await body(r)) }) }],
      [/^\/populate$/, { POST: async (r) => ({ status: 201, body: { proxies: await s.populate(await body(r)) } }) }],
      [/^\/proxies\/([^/]+)$/, { GET: async (_, p) => ok(s.get(p)), POST: updateProxy, PATCH: updateProxy, DELETE: async (_, p) => (await s.remove(p), none()) }],
      [/^\/proxies\/([^/]+)\/toxics$/, { GET: async (_, p) => ok(s.toxics(p)), POST: async (r, p) => (s.get(p), ok(await s.addToxic(p, await body(r)))) }],
      [
        /^\/proxies\/([^/]+)\/toxics\/([^/]+)$/,
        { GET: async (_, p, t) => ok(s.toxic(p, t)), POST: updateToxic, PATCH: updateToxic, DELETE: async (_, p, t) => (await s.removeToxic(p, t), none()) },
      ],
      [/^\/reset$/, { POST: async () => (await s.reset(), none()) }],
      [/^\/version$/, { GET: async () => ok(VERSION_BODY) }],
      [/^\/metrics$/, { '*': async () => ok(METRICS) }],
    ];
  }

  /** Listens on `listen`; throws ProxyError (SYSCALL) when it cannot. */
  static async start(listen: Address, state: ToxiproxyState, host: ToxiproxyHost, log: Logger): Promise<ToxiproxyApi> {
    let api: ToxiproxyApi | null = null;
    const server = createServer((req, res) => api!.serve(req, res));
    server.keepAliveTimeout = 60_000;
    server.headersTimeout = 15_000;
    server.requestTimeout = 15_000;
    if (listen.family === 'unix') throw new ProxyError(CODES.BAD_ADDRESS, 'the API listens on TCP');
    await new Promise<void>((resolve, reject) => {
      const fail = (e: NodeJS.ErrnoException) => {
        const why = e.code === 'EADDRINUSE' ? 'EADDRINUSE (address already in use)' : (e.code ?? e.message);
        reject(Object.assign(new ProxyError(CODES.SYSCALL, `listen ${formatAddress(listen)}: ${why}`), { cause: e }));
      };
      server.once('error', fail);
      server.listen(listen.port, listen.host, () => {
        server.off('error', fail);
        resolve();
      });
    });
    server.on('error', (e) => log.error(`toxiproxy API: ${e.message}`));
    const a = server.address();
    api = new ToxiproxyApi(server, state, host, log, { ...listen, port: typeof a === 'object' && a !== null ? a.port : listen.port });
    log.info(`toxiproxy API on http://${formatAddress(api.address)}`);
    return api;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    this.route(req, res).catch((e: unknown) => {
      if (e instanceof ApiError) return sendError(res, e);
      this.log.error(`toxiproxy API: ${req.method} ${req.url}: ${(e as Error).stack ?? e}`);
      sendError(res, new ApiError(500, e instanceof Error ? e.message : String(e)));
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const rawPath = q < 0 ? raw : raw.slice(0, q);
    let path: string;
    try {
      path = decodeURIComponent(rawPath);
    } catch {
      return sendText(res, 400, '400 Bad Request');
    }
    const clean = cleanPath(rawPath);
    if (clean !== rawPath) {
      res.writeHead(301, { Location: clean + (q < 0 ? '' : raw.slice(q)) });
      return void res.end();
    }
    for (const [re, methods] of this.routes) {
      const m = re.exec(path);
      if (m === null) continue;
      const handler = methods[req.method ?? ''] ?? methods['*'];
      if (handler === undefined) {
        res.writeHead(405);
        return void res.end();
      }
      if ((req.headers['user-agent'] ?? '').startsWith('Mozilla/')) return sendText(res, 403, 'User agent not allowed');
      const reply = await handler(req, m[1] ?? '', m[2] ?? '');
      return this.send(res, reply);
    }
    sendText(res, 404, '404 page not found');
  }

  private send(res: ServerResponse, r: Reply): void {
    if (r.body === VERSION_BODY) {
      const text = `{"version": "${TOXIPROXY_VERSION}"}\n`;
      res.writeHead(200, { 'Content-Type': 'application/json;charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
      return void res.end(text);
    }
    if (r.body === METRICS) {
      const text = metricsText(this.host.byteCounts());
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
      return void res.end(text);
    }
    if (r.body === undefined) {
      res.writeHead(r.status);
      return void res.end();
    }
    sendJson(res, r.status, r.body);
  }
}

// Markers for the two replies that are not JSON objects.
const VERSION_BODY = Symbol('version');
const METRICS = Symbol('metrics');

/** A request's body as JSON; 400 `bad request body: ...` when it is not (an empty one is `EOF`). */
async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new ApiError(400, `bad request body: over ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  return decodeJson(Buffer.concat(chunks).toString('utf8'));
}

/** `/a//b/./c/..` as gorilla/mux cleans it (`/a/b`), its trailing slash kept. */
function cleanPath(p: string): string {
  if (p === '' || p[0] !== '/') p = `/${p}`;
  let clean = posix.normalize(p);
  if (clean.startsWith('//')) clean = clean.replace(/^\/+/, '/');
  if (p.endsWith('/') && clean !== '/' && !clean.endsWith('/')) clean += '/';
  return clean;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** `{"error": "...", "status": N}` (a populate's also lists the proxies it made before it stopped). */
export function sendError(res: ServerResponse, e: ApiError): void {
  const body: Record<string, unknown> = { error: e.message, status: e.status };
  if (e instanceof PopulateError) body.proxies = e.proxies;
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(e.status, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
  res.end(`${text}\n`);
}

/**
 * Toxiproxy's two byte counters in Prometheus text, read live from the workers' counters (toxiproxy-server
 * adds a connection's bytes only when it closes). Both count the bytes the proxy moved: received from the
 * source side and sent to the other are the same bytes, as long as no toxic drops any.
 */
export function metricsText(counts: readonly ByteCount[]): string {
  const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  const lines: string[] = [];
  for (const [name, help] of [
    ['toxiproxy_proxy_received_bytes_total', 'Bytes the proxy received, by direction (upstream: from the client; downstream: from the upstream).'],
    ['toxiproxy_proxy_sent_bytes_total', 'Bytes the proxy sent, by direction (upstream: to the upstream; downstream: to the client).'],
  ]) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
    for (const c of counts) {
      for (const [direction, value] of [['upstream', c.up], ['downstream', c.down]] as const) {
        lines.push(`${name}{direction="${direction}",listener="${esc(c.listener)}",proxy="${esc(c.proxy)}",upstream="${esc(c.upstream)}"} ${value}`);
      }
    }
  }
  return `${lines.join('\n')}\n`;
}
