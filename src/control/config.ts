// Options shared by the CLI and the library: their defaults, their checks, and name resolution. Every
// problem is a ProxyError with a stable code and one line that says what to change.

import { lookup } from 'node:dns/promises';
import { availableParallelism } from 'node:os';
import { Logger, type LevelName, levelNumber } from '../core/log.js';
import { ACCESS_LOG_FORMATS, type AccessLogFormat, type Balance, type FrontendConfig, MODES, type Mode, SPLICE_MODES, type SpliceMode } from '../route/index.js';
import { CODES, ProxyError, type Address, type AddressSpec, formatAddress, parseAddress } from '../sys/index.js';
import type { ProxyPlan } from './plan.js';
import { tlsFromOptions } from './tls.js';

export { MODES, SPLICE_MODES, type Mode, type SpliceMode };

export const DEFAULTS = {
  listen: '127.0.0.1:8080',
  mode: 'tcp' as Mode,
  // Chosen by docs/benchmarks.md: auto copies small messages and splices bulk transfers.
  splice: 'auto' as SpliceMode,
  drainTimeoutMs: 10_000,
  logLevel: 'info' as LevelName,
  // HTTP mode. A head must arrive within 10 s (HAProxy's docs suggest a few seconds for `timeout
  // http-request`; nginx's client_header_timeout is 60 s); a backend gets 30 s to start answering.
  headerTimeoutMs: 10_000,
  // An idle keep-alive client is closed after 60 s (nginx's keepalive_timeout is 75 s).
  idleTimeoutMs: 60_000,
  backendTimeoutMs: 30_000,
  // A tunnel (TCP mode, or an upgraded HTTP connection) in which nothing moves either way this long is
  // closed: nginx's stream proxy_timeout default (HAProxy's `timeout tunnel` has none, and warns).
  tunnelTimeoutMs: 600_000,
  // HAProxy's default buffer (tune.bufsize) is 16 KiB and a request head must fit in it.
  maxHeaderSize: 16 * 1024,
  maxBodySize: 0,
  forwardedHeaders: true,
  // Backends: HAProxy's and nginx's default balance; HAProxy's `retries 3`; its `check inter 2s rise 2
  // fall 3`, with a check's timeout its interval (HAProxy's default when `timeout check` is not set).
  balance: 'round-robin' as Balance,
  // HAProxy's httplog/tcplog lines: the timers and the termination state in a line a person reads, and
  // cheaper to write than JSON's (docs/benchmarks.md).
  accessLogFormat: 'haproxy' as AccessLogFormat,
  retries: 3,
  healthIntervalMs: 2000,
  healthRise: 2,
  healthFall: 3,
};

/** A head must fit, with room for the X-Forwarded-* lines, in the 64 KiB inbox and outbox buffers. */
export const MAX_HEADER_SIZE_LIMIT = 32 * 1024;

/** Options of start(). Everything is optional; see DEFAULTS and the README for what each means. */
export type StartOptions = {
  /**
   * A config file's path, or a config document (docs/config.md): frontends and backends, instead of the
   * listen/backend/mode options and the options for them. Beside it only workers, drainTimeoutMs,
   * logLevel, maxConnections and join may be given, and they win over the config's.
   */
  config?: string | Record<string, unknown>;
  /** `HOST:PORT` or `[IPv6]:PORT` to listen on; port 0 picks a free port (see Proxy.address). */
  listen?: string;
  /** `HOST:PORT`, `[IPv6]:PORT` or `unix:/path`. Omitted: a built-in demo backend is started. */
  backend?: string;
  mode?: Mode;
  /** Worker threads, each with its own event loop and listening socket. Default: the number of CPUs. */
  workers?: number;
  splice?: SpliceMode;
  /** How long close() (and SIGTERM in the CLI) lets open connections finish, in milliseconds. */
  drainTimeoutMs?: number;
  logLevel?: LevelName;
  /** Upper bound on proxied connections per worker; default: what the open-file limit allows. */
  maxConnections?: number;
  /** HTTP: a request head not complete this long after its first byte gets 408. */
  headerTimeoutMs?: number;
  /** HTTP: a keep-alive client that sends nothing this long after a response is closed. */
  idleTimeoutMs?: number;
  /**
   * A backend connect that has not finished this long fails (TCP: the client is closed; HTTP: 504). HTTP:
   * also the longest wait for a response to start, and then for more of it.
   */
  backendTimeoutMs?: number;
  /**
   * A tunnel (every TCP-mode connection; an upgraded HTTP one) in which no byte moves either way this long
   * is closed. 0: never.
   */
  tunnelTimeoutMs?: number;
  /** HTTP: request heads over this many bytes get 431. */
  maxHeaderSize?: number;
  /** HTTP: request bodies over this many bytes get 413; 0 = no limit. */
  maxBodySize?: number;
  /** HTTP: add X-Forwarded-For/-Proto/-Host (default true). */
  forwardedHeaders?: boolean;
  /**
   * Every client connection starts with a PROXY protocol header (v1 or v2) from a load balancer in front;
   * it names the client for X-Forwarded-For and --send-proxy. One without a valid header is closed.
   */
  acceptProxy?: boolean;
  /** Start each backend connection with a PROXY protocol header of this version naming the client. */
  sendProxy?: SendProxy;
  /**
   * Listen even when other SO_REUSEPORT sockets of this user already hold the port (another ffi-proxy,
   * handing over to this one): the kernel then spreads new connections over both. Without it a port in use
   * is an error (EADDRINUSE), whoever holds it.
   */
  join?: boolean;
  /**
   * The admin endpoint (docs/observability.md): `HOST:PORT`, `auto` (127.0.0.1:9901 when that port is
   * free, else none, with a warning) or `off`. Default: what the config says, else `adminFallback`.
   */
  admin?: string;
  /** The bearer token the admin endpoint requires; needed when it listens on a non-loopback address. */
  adminToken?: string;
  /** Log each HTTP request and TCP connection to this file, or '-' for stdout (docs/observability.md). */
  accessLog?: string;
  /** haproxy (default), json or combined. */
  accessLogFormat?: AccessLogFormat;
  /** The admin endpoint when neither `admin` nor the config names one: `off` (the default) or the CLI's `auto`. */
  adminFallback?: string;
  /**
   * Terminate TLS on the frontend (docs/tls.md): a PEM certificate file (its chain may follow it) and its
   * private key's PEM file, both or neither. Relative paths are relative to the working directory.
   */
  tlsCert?: string;
  tlsKey?: string;
  /**
   * TLS with neither file given: a self-signed certificate for localhost is made at start (EC P-256, 30
   * days) in a new private temp folder, removed when the process exits. For demos and tests.
   */
  tls?: boolean;
};

/** Where `admin: auto` listens. */
export const DEFAULT_ADMIN = '127.0.0.1:9901';

/** What is wrong with an admin setting (`off`, `auto` or an IP address and port), or null. */
export function adminProblem(v: unknown): string | null {
  if (v === 'off' || v === 'auto') return null;
  if (typeof v !== 'string') return `admin must be HOST:PORT, auto or off, not ${JSON.stringify(v)}`;
  try {
    const a = parseAddress(v);
    if (a.family === 'ipv4' || a.family === 'ipv6') return null;
  } catch (e) {
    return (e as Error).message;
  }
  return `admin must be an IP address and port (as ${DEFAULT_ADMIN}), auto or off, not '${v}'`;
}

export const SEND_PROXY = ['v1', 'v2'] as const;
export type SendProxy = (typeof SEND_PROXY)[number];

/** start()'s flags checked and resolved: the plan, and whether its backend is the demo backend to start. */
export type Resolved = {
  plan: ProxyPlan;
  /** No backend was given: the caller starts the demo backend and puts its address in backend 0's server. */
  demo: boolean;
};

function badOption(msg: string): ProxyError {
  return new ProxyError(CODES.BAD_OPTION, msg);
}

function millis(name: string, v: unknown, dflt: number, zero = false): number {
  const x = v === undefined ? dflt : v;
  if (typeof x !== 'number' || !Number.isFinite(x) || x < 0 || (x === 0 && !zero)) {
    throw badOption(`${name} must be a time ${zero ? 'of 0 (never) or more' : 'above 0'}, not ${String(v)}`);
  }
  return x;
}

function bytes(name: string, v: unknown, dflt: number, min: number, max: number): number {
  const x = v === undefined ? dflt : v;
  if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) {
    throw badOption(`${name} must be a whole number of bytes from ${min} to ${max}, not ${String(v)}`);
  }
  return x;
}

function positiveInt(name: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    throw badOption(`${name} must be a whole number from 1 to ${max}, not ${String(v)}`);
  }
  return v;
}

/**
 * The address `spec` names: itself, or a host name looked up once (the resolver's first answer, as Node's
 * own clients take it). Throws ProxyError(FFIP_ERR_BAD_ADDRESS) naming `role` when it cannot be resolved.
 */
export async function resolveAddress(spec: AddressSpec, role: string): Promise<Address> {
  if (spec.family !== 'name') return spec;
  try {
    const { address, family } = await lookup(spec.host);
    return { family: family === 6 ? 'ipv6' : 'ipv4', host: address, port: spec.port };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new ProxyError(CODES.BAD_ADDRESS, `${role} ${formatAddress(spec)}: cannot resolve '${spec.host}' (${code})`);
  }
}

function oneOf<T extends string>(name: string, v: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(v as T)) throw badOption(`${name} must be one of ${allowed.join(', ')}, not '${String(v)}'`);
  return v as T;
}

/** An access log's file: a path, or '-' (stdout); null for none. */
export function accessLogPath(v: unknown): string | null {
  if (v === undefined || v === null || v === 'off') return null;
  if (typeof v !== 'string' || v === '' || v.includes('\0')) throw badOption(`access log must be a file's path, - (stdout) or off, not ${JSON.stringify(v)}`);
  return v;
}

/** Checks `o` and resolves host names. Throws ProxyError (FFIP_ERR_BAD_OPTION / FFIP_ERR_BAD_ADDRESS). */
export async function resolveOptions(o: StartOptions): Promise<Resolved> {
  const mode = o.mode ?? DEFAULTS.mode;
  if (!MODES.includes(mode)) throw badOption(`mode must be one of ${MODES.join(', ')}, not '${mode}'`);
  const splice = o.splice ?? DEFAULTS.splice;
  if (!SPLICE_MODES.includes(splice)) throw badOption(`splice must be one of ${SPLICE_MODES.join(', ')}, not '${splice}'`);
  const workers = o.workers === undefined ? availableParallelism() : positiveInt('workers', o.workers, 256);
  const drainTimeoutMs = o.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs;
  if (typeof drainTimeoutMs !== 'number' || !(drainTimeoutMs >= 0) || !Number.isFinite(drainTimeoutMs)) {
    throw badOption(`drain timeout must be a number of milliseconds >= 0, not ${String(drainTimeoutMs)}`);
  }
  const maxConnections = o.maxConnections === undefined ? null : positiveInt('maxConnections', o.maxConnections, 1 << 24);
  for (const a of [o.admin, o.adminFallback]) {
    const problem = a === undefined ? null : adminProblem(a);
    if (problem !== null) throw badOption(problem);
  }
  const listenSpec = parseAddress(o.listen ?? DEFAULTS.listen);
  if (listenSpec.family === 'unix') throw badOption('listen must be HOST:PORT or [IPv6]:PORT; unix: is for --backend');
  const listen = await resolveAddress(listenSpec, 'listen');
  const backend = o.backend === undefined ? null : await resolveAddress(parseAddress(o.backend), 'backend');
  if (backend && backend.family !== 'unix' && backend.port === 0) throw badOption('backend port must not be 0');
  const headerTimeoutMs = millis('header timeout', o.headerTimeoutMs, DEFAULTS.headerTimeoutMs);
  const backendTimeoutMs = millis('backend timeout', o.backendTimeoutMs, DEFAULTS.backendTimeoutMs);
  const tunnelTimeoutMs = millis('tunnel timeout', o.tunnelTimeoutMs, DEFAULTS.tunnelTimeoutMs, true);
  const sendProxy = o.sendProxy ?? null;
  if (sendProxy !== null && !SEND_PROXY.includes(sendProxy)) {
    throw badOption(`send-proxy must be one of ${SEND_PROXY.join(', ')}, not '${sendProxy}'`);
  }
  const tls = await tlsFromOptions(o, (m) => new Logger(levelNumber(o.logLevel ?? DEFAULTS.logLevel), 'main').warn(m));
  // HTTP's own options are checked in HTTP mode only; a TCP frontend carries their defaults, unused.
  const http = mode === 'http';
  const frontend: FrontendConfig = {
    name: 'default',
    listen,
    mode,
    backend: 0,
    routes: [],
    splice,
    acceptProxy: o.acceptProxy === true,
    headerTimeoutMs,
    backendTimeoutMs,
    tunnelTimeoutMs,
    idleTimeoutMs: http ? millis('idle timeout', o.idleTimeoutMs, DEFAULTS.idleTimeoutMs) : DEFAULTS.idleTimeoutMs,
    maxHeaderSize: http ? bytes('max header size', o.maxHeaderSize, DEFAULTS.maxHeaderSize, 1024, MAX_HEADER_SIZE_LIMIT) : DEFAULTS.maxHeaderSize,
    maxBodySize: http ? bytes('max body size', o.maxBodySize, DEFAULTS.maxBodySize, 0, Number.MAX_SAFE_INTEGER) : DEFAULTS.maxBodySize,
    forwardedHeaders: o.forwardedHeaders ?? DEFAULTS.forwardedHeaders,
    accessLog: accessLogPath(o.accessLog),
    accessLogFormat: oneOf('access log format', o.accessLogFormat ?? DEFAULTS.accessLogFormat, ACCESS_LOG_FORMATS),
    toxics: [],
    ...(tls === null ? {} : { tls }),
  };
  const address: Address = backend ?? { family: 'ipv4', host: '127.0.0.1', port: 0 };
  const name = backend === null ? 'demo' : formatAddress(backend);
  return {
    plan: {
      frontends: [frontend],
      backends: [
        {
          name,
          balance: DEFAULTS.balance,
          servers: [{ id: 0, name, address, weight: 1, backup: false }],
          health: null,
          sendProxy: sendProxy === 'v1' ? 1 : sendProxy === 'v2' ? 2 : 0,
          retries: DEFAULTS.retries,
        },
      ],
      workers,
      processes: 1,
      drainTimeoutMs,
      logLevel: o.logLevel ?? DEFAULTS.logLevel,
      maxConnections,
      join: o.join === true,
      admin: o.admin ?? null,
      adminToken: o.adminToken ?? null,
    },
    demo: backend === null,
  };
}
