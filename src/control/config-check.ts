// What a config document's values must be, apart from where they go (config-file.ts): the keys each place
// takes, the limits, the forms of names, hosts, paths, times, sizes and addresses, the options a frontend or
// backend starts from, and Check, which reads one value at a time against them and collects every problem
// into one ConfigError. Kept apart so that config-file.ts holds the walk through the document alone.
//
// Each problem is one line that names where it is, and they come out in document order whatever order
// they were found in:
//   ffi-proxy.yaml:12: backends[0].servers[1]: "127.0.0.1:99999" is not a valid address: the port must be ...

import { LEVEL, type LevelName } from '../core/log.js';
import type { BackendConfig, FrontendConfig } from '../route/index.js';
import { CODES, ProxyError, type AddressSpec, parseAddress } from '../sys/index.js';
import { DEFAULTS, adminProblem } from './config.js';

/** A document the proxy cannot run. `problems` holds every problem found, in document order; `message` is the first. */
export class ConfigError extends ProxyError {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(CODES.BAD_CONFIG, problems[0] ?? 'bad config');
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

// The keys each place takes. Top-level copies of frontend and backend options are defaults for all of them.
const FRONTEND_OPTION_KEYS = [
  'splice',
  'accept-proxy',
  'header-timeout',
  'idle-timeout',
  'backend-timeout',
  'tunnel-timeout',
  'max-header-size',
  'max-body-size',
  'forwarded-headers',
  'access-log',
  'access-log-format',
] as const;
const BACKEND_OPTION_KEYS = ['balance', 'send-proxy', 'retries'] as const;
const PROCESS_KEYS = ['workers', 'processes', 'drain-timeout', 'log-level', 'max-connections', 'admin', 'admin-token'] as const;
const KEYS = {
  top: ['frontends', 'backends', ...PROCESS_KEYS, ...FRONTEND_OPTION_KEYS, ...BACKEND_OPTION_KEYS],
  frontend: ['name', 'listen', 'mode', 'backend', 'routes', 'toxics', 'tls', ...FRONTEND_OPTION_KEYS],
  tls: ['cert', 'key', 'certificates'],
  certificate: ['cert', 'key'],
  toxic: ['name', 'type', 'stream', 'toxicity', 'attributes'],
  route: ['host', 'path', 'backend', 'strip-prefix'],
  backend: ['name', 'balance', 'servers', 'health', 'send-proxy', 'retries', 'tls'],
  backendTls: ['verify', 'ca', 'server-name', 'cert', 'key'],
  server: ['address', 'weight', 'backup', 'name'],
  health: ['tcp', 'http', 'interval', 'timeout', 'rise', 'fall'],
} as const;
type Place = keyof typeof KEYS;
const PLACE_NAMES: Record<Place, string> = {
  top: 'at the top level',
  frontend: 'in a frontend',
  route: 'in a route',
  backend: 'in a backend',
  server: 'in a server',
  health: 'in health',
  toxic: 'in a toxic',
  tls: 'in tls',
  certificate: 'in one of tls.certificates',
  backendTls: "in a backend's tls",
};
export const LOG_LEVELS = Object.keys(LEVEL) as LevelName[];

// Limits. workers and max-connections as control/config.ts checks the flags; --processes is the CLI's.
export const MAX_WORKERS = 256;
export const MAX_PROCESSES = 64;
export const MAX_CONNECTIONS = 1 << 24;
export const MAX_RETRIES = 10;
export const MAX_WEIGHT = 256;
export const MAX_RISE_FALL = 100;
// Node's timers hold at most 2^31-1 ms (about 24.8 days); a longer one fires at once (TimeoutOverflowWarning).
const MAX_TIME_MS = 2 ** 31 - 1;
// A name shows up in log lines and in `check`'s output, one word each. Address texts are names too: a
// server's default name is its address, and a backend made from --backend is named after it.
const NAME_RE = /^[^\s\x00-\x1f\x7f]+$/u;
// A route's host: a DNS name or an IPv4 address, optionally `*.` before it; matched lower case, without port.
export const HOST_RE = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;
// A path prefix or a health check's target: it goes in a request line, so visible ASCII only.
export const PATH_RE = /^\/[\x21-\x7e]*$/;
const TIME_RE = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$/;
const TIME_UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const SIZE_RE = /^([0-9]+)(k|kb|m|mb|g|gb)$/i;
const SIZE_UNITS: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
const TIME_SYNTAX = 'seconds (10, 0.5) or a string with a unit (500ms, 10s, 2m, 1h)';
const SIZE_SYNTAX = 'bytes, or a string with a unit (16k, 16kb, 1m)';
const LISTEN_SYNTAX = 'HOST:PORT or [IPv6]:PORT';
export const SERVER_SYNTAX = 'HOST:PORT, [IPv6]:PORT or unix:/path';

export type Obj = { [key: string]: unknown };
type Where = { order: number; line: number | null; keyLine: number | null };
type Problem = { order: number; seq: number; line: number | null; text: string };
export type FrontendOptions = Omit<FrontendConfig, 'name' | 'listen' | 'mode' | 'backend' | 'routes' | 'toxics' | 'tls'>;
export type BackendOptions = Pick<BackendConfig, 'balance' | 'sendProxy' | 'retries'>;

export const FRONTEND_DEFAULTS: FrontendOptions = {
  splice: DEFAULTS.splice,
  acceptProxy: false,
  headerTimeoutMs: DEFAULTS.headerTimeoutMs,
  idleTimeoutMs: DEFAULTS.idleTimeoutMs,
  backendTimeoutMs: DEFAULTS.backendTimeoutMs,
  tunnelTimeoutMs: DEFAULTS.tunnelTimeoutMs,
  maxHeaderSize: DEFAULTS.maxHeaderSize,
  maxBodySize: DEFAULTS.maxBodySize,
  forwardedHeaders: DEFAULTS.forwardedHeaders,
  accessLog: null,
  accessLogFormat: DEFAULTS.accessLogFormat,
};
export const BACKEND_DEFAULTS: BackendOptions = { balance: DEFAULTS.balance, sendProxy: 0, retries: DEFAULTS.retries };

export function child(path: string, key: string): string {
  const k = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : JSON.stringify(key);
  return path === '' ? k : `${path}.${k}`;
}

export function item(path: string, i: number): string {
  return `${path}[${i}]`;
}

export function isObj(v: unknown): v is Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Records where every path of a plain document is, in document order (object key order); no lines. */
export function indexObject(c: Check, v: unknown, path: string, ancestors: Set<unknown>): void {
  c.where.set(path, { order: c.where.size, line: null, keyLine: null });
  if (ancestors.has(v)) return;
  if (Array.isArray(v)) {
    ancestors.add(v);
    v.forEach((x, i) => indexObject(c, x, item(path, i), ancestors));
    ancestors.delete(v);
  } else if (isObj(v)) {
    ancestors.add(v);
    for (const k of Object.keys(v)) indexObject(c, v[k], child(path, k), ancestors);
    ancestors.delete(v);
  }
}

/** A value as a problem quotes it: strings as JSON (one line), collections by kind. */
export function show(v: unknown): string {
  if (typeof v === 'string') {
    const s = JSON.stringify(v);
    return s.length > 80 ? `${s.slice(0, 76)}..."` : s;
  }
  if (v === null) return 'null';
  if (Array.isArray(v)) return v.length === 0 ? 'an empty list' : 'a list';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'object') return isObj(v) ? 'a map' : `a ${v.constructor?.name ?? 'object'}`;
  return `a ${typeof v}`;
}

export function quoteList(xs: readonly string[]): string {
  return xs.join(', ');
}

/** Optimal string alignment distance: a swap of two neighbours counts as one edit ('tpc' -> 'tcp'). */
function distance(a: string, b: string): number {
  const d: number[][] = [];
  for (let i = 0; i <= a.length; i++) d.push([i]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * The choice `word` was probably meant to be, or null. Case, '-' and '_' do not count, nor the library's
 * 'Ms' suffix, so camelCase option names (`drainTimeoutMs`) find their keys (`drain-timeout`).
 */
export function closest(word: string, choices: readonly string[]): string | null {
  const norm = (s: string): string => s.toLowerCase().replace(/[-_\s]/g, '');
  const w = norm(word);
  const bare = w.endsWith('ms') ? w.slice(0, -2) : w;
  let best: string | null = null;
  let bestD = Math.max(1, Math.floor(w.length / 3)) + 1;
  for (const c of choices) {
    const n = norm(c);
    const d = n === w || n === bare ? 0 : distance(w, n);
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

export function didYouMean(word: unknown, choices: readonly string[]): string {
  if (typeof word !== 'string') return '';
  const c = closest(word, choices);
  return c === null ? '' : ` (did you mean "${c}"?)`;
}

/** The problems of one document, and where each path in it is. */
export class Check {
  readonly where = new Map<string, Where>();
  private readonly problems: Problem[] = [];
  /** What is not wrong but deserves a word (an expired certificate), each `FILE:LINE: PATH: WHAT`, in the order found. */
  readonly warnings: string[] = [];
  // The keys each map's unknown keys were taken for: a missing one of them is that problem, not another.
  private readonly meant = new WeakMap<Obj, Set<string>>();
  // Values that could not be read from the YAML (an alias to nothing): their null says nothing more.
  private readonly unread = new Set<string>();

  constructor(readonly file: string) {}

  /** Records a problem at `path` ('' is the document); `atKey` points at the key's line rather than its value's. */
  problem(path: string, what: string, atKey = false): void {
    if (this.unread.has(path)) return;
    let p = path;
    let w = this.where.get(p);
    // A path that is not in the document (a missing key) takes its nearest parent's place.
    while (w === undefined && p !== '') {
      const parent = p.replace(/(\.[^.[]+|\.".*"|\[[0-9]+\])$/, '');
      p = parent === p ? '' : parent;
      w = this.where.get(p);
    }
    const line = w === undefined ? null : atKey ? (w.keyLine ?? w.line) : w.line;
    const text = `${this.file}${line === null ? '' : `:${line}`}: ${path === '' ? '(top)' : path}: ${what}`;
    this.problems.push({ order: w?.order ?? 0, seq: this.problems.length, line, text });
  }

  /** Records a warning at `path`, written as a problem is; it does not stop the document from running. */
  warning(path: string, what: string): void {
    const line = this.where.get(path)?.line ?? null;
    this.warnings.push(`${this.file}${line === null ? '' : `:${line}`}: ${path}: ${what}`);
  }

  /** Reports that the value at `path` could not be read: it is left out of every later check. */
  unreadable(path: string, what: string): void {
    this.problem(path, what);
    this.unread.add(path);
  }

  /** A problem of the file itself (cannot read, YAML syntax): no path. */
  fileProblem(line: number | null, what: string): void {
    const text = `${this.file}${line === null ? '' : `:${line}`}: ${what}`;
    this.problems.push({ order: line ?? 0, seq: this.problems.length, line, text });
  }

  get count(): number {
    return this.problems.length;
  }

  error(): ConfigError {
    const sorted = [...this.problems].sort((a, b) => a.order - b.order || a.seq - b.seq);
    return new ConfigError(sorted.map((p) => p.text));
  }

  // Readers. Each takes a value that is present and returns it checked, or undefined after a problem.

  map(path: string, v: unknown, what: string): Obj | undefined {
    if (isObj(v)) return v;
    this.problem(path, `must be ${what}, not ${show(v)}`);
    return undefined;
  }

  list(path: string, v: unknown, what: string, nonEmpty: boolean): unknown[] | undefined {
    if (!Array.isArray(v)) {
      this.problem(path, `must be a list of ${what}, not ${show(v)}`);
      return undefined;
    }
    if (nonEmpty && v.length === 0) {
      this.problem(path, `must be a non-empty list of ${what}, not an empty list`);
      return undefined;
    }
    return v;
  }

  /** Unknown keys of a map at `path`, with a suggestion or where the key belongs. */
  keys(path: string, o: Obj, place: Place): void {
    const allowed: readonly string[] = KEYS[place];
    for (const k of Object.keys(o)) {
      if (allowed.includes(k) || o[k] === undefined) continue;
      const guess = closest(k, allowed);
      let hint: string;
      if (guess !== null) {
        hint = `unknown key (did you mean "${guess}"?)`;
        const meant = this.meant.get(o) ?? new Set<string>();
        this.meant.set(o, meant.add(guess));
      } else {
        const elsewhere = (Object.keys(KEYS) as Place[]).filter((p) => (KEYS[p] as readonly string[]).includes(k));
        hint =
          elsewhere.length > 0
            ? `unknown key here: "${k}" belongs ${elsewhere.map((p) => PLACE_NAMES[p]).join(' or ')}`
            : `unknown key; ${place === 'top' ? 'the top level' : place === 'health' || place === 'tls' ? place : place === 'backendTls' ? "a backend's tls" : `a ${place}`} takes ${quoteList(allowed)}`;
      }
      this.problem(child(path, k), hint, true);
    }
  }

  required(path: string, o: Obj, key: string): unknown {
    const v = o[key];
    if (v === undefined || v === null) {
      if (!this.meant.get(o)?.has(key) && !this.unread.has(child(path, key))) this.problem(path, `"${key}" is required`);
      return undefined;
    }
    return v;
  }

  int(path: string, v: unknown, min: number, max: number): number | undefined {
    if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
    this.problem(path, `must be a whole number from ${min} to ${max}, not ${show(v)}`);
    return undefined;
  }

  bool(path: string, v: unknown): boolean | undefined {
    if (typeof v === 'boolean') return v;
    this.problem(path, `must be true or false, not ${show(v)}`);
    return undefined;
  }

  oneOf<T extends string>(path: string, v: unknown, choices: readonly T[]): T | undefined {
    if (typeof v === 'string' && (choices as readonly string[]).includes(v)) return v as T;
    this.problem(path, `must be one of ${quoteList(choices)}, not ${show(v)}${didYouMean(v, choices)}`);
    return undefined;
  }

  /** A time in milliseconds, from seconds or a string with a unit; `zero`: 0 is allowed (it means never, or at once). */
  time(path: string, v: unknown, zero: boolean): number | undefined {
    let ms = NaN;
    if (typeof v === 'number' && Number.isFinite(v)) ms = v * 1000;
    else if (typeof v === 'string') {
      const m = TIME_RE.exec(v.trim());
      if (m) ms = Number(m[1]) * TIME_UNITS[m[2] as keyof typeof TIME_UNITS];
    }
    // To the microsecond, so that 1.1 (seconds) is 1100 ms, not 1100.0000000000002.
    ms = Math.round(ms * 1000) / 1000;
    if (!(ms >= 0) || (ms === 0 && !zero)) {
      this.problem(path, `must be a time ${zero ? 'of 0 or more' : 'above 0'}: ${TIME_SYNTAX}; not ${show(v)}`);
      return undefined;
    }
    if (ms > MAX_TIME_MS) {
      this.problem(path, `must be a time of at most ${MAX_TIME_MS / 1000}s (about 24 days), not ${show(v)}`);
      return undefined;
    }
    return ms;
  }

  size(path: string, v: unknown, min: number, max: number): number | undefined {
    let n = NaN;
    if (typeof v === 'number' && Number.isInteger(v)) n = v;
    else if (typeof v === 'string') {
      const m = SIZE_RE.exec(v.trim());
      if (m) n = Number(m[1]) * SIZE_UNITS[m[2][0].toLowerCase()];
    }
    if (n >= min && n <= max) return n;
    const range = max === Number.MAX_SAFE_INTEGER ? `of ${min} or more` : `from ${min} to ${max}`;
    this.problem(path, `must be a size ${range}: ${SIZE_SYNTAX}; not ${show(v)}`);
    return undefined;
  }

  /** The admin endpoint: HOST:PORT, auto or off (false too). */
  admin(path: string, v: unknown): string | undefined {
    const value = v === false ? 'off' : v;
    const problem = adminProblem(value);
    if (problem !== null) this.problem(path, problem);
    return problem === null ? (value as string) : undefined;
  }

  /** An access log: a file's path, '-' (stdout), or off (false too: null). */
  accessLog(path: string, v: unknown): string | null {
    if (v === false || v === 'off') return null;
    if (typeof v === 'string' && v !== '' && !v.includes('\0')) return v;
    this.problem(path, `must be a file's path, - (stdout) or off, not ${show(v)}`);
    return null;
  }

  /** A string of printable characters without spaces (a token, a file's path). */
  text(path: string, v: unknown): string | undefined {
    if (typeof v === 'string' && /^[\x21-\x7e]+$/.test(v)) return v;
    this.problem(path, `must be a string of printable characters without spaces, not ${show(v)}`);
    return undefined;
  }

  name(path: string, v: unknown): string | undefined {
    if (typeof v === 'string' && NAME_RE.test(v)) return v;
    this.problem(path, `must be a name: a string without spaces, not ${show(v)}`);
    return undefined;
  }

  /** Parses an address; `listen`: unix: is refused. A name is resolved later (see resolveAll in config-file.ts). */
  address(path: string, v: unknown, listen: boolean): AddressSpec | undefined {
    const syntax = listen ? LISTEN_SYNTAX : SERVER_SYNTAX;
    if (typeof v !== 'string') {
      this.problem(path, `must be an address, ${syntax}, not ${show(v)}`);
      return undefined;
    }
    let spec: AddressSpec;
    try {
      spec = parseAddress(v);
    } catch (e) {
      // parseAddress says `bad address 'TEXT': WHY`: keep the why.
      const msg = (e as Error).message;
      const prefix = `bad address '${v}': `;
      this.problem(path, `${show(v)} is not a valid address: ${msg.startsWith(prefix) ? msg.slice(prefix.length) : msg}`);
      return undefined;
    }
    if (spec.family === 'ipv6' && spec.host.includes('%')) {
      // isIPv6 takes a zone id (fe80::1%eth0); the sockaddr encoder does not.
      this.problem(path, `${show(v)} is not a valid address: IPv6 zone ids are not supported`);
      return undefined;
    }
    if (listen && spec.family === 'unix') {
      this.problem(path, `must be ${syntax}, not ${show(v)}: a frontend listens on TCP (unix: is for servers)`);
      return undefined;
    }
    if (!listen && spec.family !== 'unix' && spec.port === 0) {
      this.problem(path, `${show(v)}: a server's port must not be 0`);
      return undefined;
    }
    return spec;
  }
}
