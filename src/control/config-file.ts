// A config file (YAML, or JSON, which is YAML) or a plain document object, checked and resolved into a
// ProxyPlan. Its keys are the flags' names; a frontend or backend key overrides the same key at the top
// level, which overrides DEFAULTS (control/config.ts), so the flags are the one-frontend, one-backend case.
//
// Checking makes one pass and collects every problem, each one line that names where it is:
//   ffi-proxy.yaml:12: backends[0].servers[1]: "127.0.0.1:99999" is not a valid address: the port must be ...
// A problem is reported once: a value that fails its own check is not checked again against others (an
// unknown backend name is not reported when a backend's own name was already wrong).

import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { type Document, LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import { LEVEL, type LevelName } from '../core/log.js';
import {
  type BackendConfig,
  BALANCES,
  type Balance,
  type FrontendConfig,
  type HealthConfig,
  MODES,
  type Mode,
  type RouteConfig,
  type ServerConfig,
  SPLICE_MODES,
  type SpliceMode,
} from '../route/index.js';
import { CODES, ProxyError, type Address, type AddressSpec, formatAddress, ipv6Bytes, parseAddress } from '../sys/index.js';
import { DEFAULTS, MAX_HEADER_SIZE_LIMIT, SEND_PROXY, resolveAddress } from './config.js';
import type { ProxyPlan } from './plan.js';

export type ConfigOptions = {
  /** Turns a host name into an address; default resolveAddress (DNS). Tests pass their own to avoid DNS. */
  resolve?: (spec: AddressSpec, role: string) => Promise<Address>;
};

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
] as const;
const BACKEND_OPTION_KEYS = ['balance', 'send-proxy', 'retries'] as const;
const PROCESS_KEYS = ['workers', 'processes', 'drain-timeout', 'log-level', 'max-connections'] as const;
const KEYS = {
  top: ['frontends', 'backends', ...PROCESS_KEYS, ...FRONTEND_OPTION_KEYS, ...BACKEND_OPTION_KEYS],
  frontend: ['name', 'listen', 'mode', 'backend', 'routes', ...FRONTEND_OPTION_KEYS],
  route: ['host', 'path', 'backend', 'strip-prefix'],
  backend: ['name', 'balance', 'servers', 'health', 'send-proxy', 'retries'],
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
};
const LOG_LEVELS = Object.keys(LEVEL) as LevelName[];

// Limits. workers and max-connections as control/config.ts checks the flags; --processes is the CLI's.
const MAX_WORKERS = 256;
const MAX_PROCESSES = 64;
const MAX_CONNECTIONS = 1 << 24;
const MAX_RETRIES = 10;
const MAX_WEIGHT = 256;
const MAX_RISE_FALL = 100;
// Node's timers hold at most 2^31-1 ms (about 24.8 days); a longer one fires at once (TimeoutOverflowWarning).
const MAX_TIME_MS = 2 ** 31 - 1;
// A name shows up in log lines and in `check`'s output, one word each. Address texts are names too: a
// server's default name is its address, and a backend made from --backend is named after it.
const NAME_RE = /^[^\s\x00-\x1f\x7f]+$/u;
// A route's host: a DNS name or an IPv4 address, optionally `*.` before it; matched lower case, without port.
const HOST_RE = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;
// A path prefix or a health check's target: it goes in a request line, so visible ASCII only.
const PATH_RE = /^\/[\x21-\x7e]*$/;
const TIME_RE = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$/;
const TIME_UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const SIZE_RE = /^([0-9]+)(k|kb|m|mb|g|gb)$/i;
const SIZE_UNITS: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
const TIME_SYNTAX = 'seconds (10, 0.5) or a string with a unit (500ms, 10s, 2m, 1h)';
const SIZE_SYNTAX = 'bytes, or a string with a unit (16k, 16kb, 1m)';
const LISTEN_SYNTAX = 'HOST:PORT or [IPv6]:PORT';
const SERVER_SYNTAX = 'HOST:PORT, [IPv6]:PORT or unix:/path';

type Obj = { [key: string]: unknown };
type Where = { order: number; line: number | null; keyLine: number | null };
type Problem = { order: number; seq: number; line: number | null; text: string };
type FrontendOptions = Omit<FrontendConfig, 'name' | 'listen' | 'mode' | 'backend' | 'routes'>;
type BackendOptions = Pick<BackendConfig, 'balance' | 'sendProxy' | 'retries'>;

const FRONTEND_DEFAULTS: FrontendOptions = {
  splice: DEFAULTS.splice,
  acceptProxy: false,
  headerTimeoutMs: DEFAULTS.headerTimeoutMs,
  idleTimeoutMs: DEFAULTS.idleTimeoutMs,
  backendTimeoutMs: DEFAULTS.backendTimeoutMs,
  tunnelTimeoutMs: DEFAULTS.tunnelTimeoutMs,
  maxHeaderSize: DEFAULTS.maxHeaderSize,
  maxBodySize: DEFAULTS.maxBodySize,
  forwardedHeaders: DEFAULTS.forwardedHeaders,
};
const BACKEND_DEFAULTS: BackendOptions = { balance: DEFAULTS.balance, sendProxy: 0, retries: DEFAULTS.retries };

function child(path: string, key: string): string {
  const k = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : JSON.stringify(key);
  return path === '' ? k : `${path}.${k}`;
}

function item(path: string, i: number): string {
  return `${path}[${i}]`;
}

function isObj(v: unknown): v is Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** A value as a problem quotes it: strings as JSON (one line), collections by kind. */
function show(v: unknown): string {
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

function quoteList(xs: readonly string[]): string {
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
function closest(word: string, choices: readonly string[]): string | null {
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

function didYouMean(word: unknown, choices: readonly string[]): string {
  if (typeof word !== 'string') return '';
  const c = closest(word, choices);
  return c === null ? '' : ` (did you mean "${c}"?)`;
}

/** The problems of one document, and where each path in it is. */
class Check {
  readonly where = new Map<string, Where>();
  private readonly problems: Problem[] = [];
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
            : `unknown key; ${place === 'top' ? 'the top level' : place === 'health' ? 'health' : `a ${place}`} takes ${quoteList(allowed)}`;
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

  name(path: string, v: unknown): string | undefined {
    if (typeof v === 'string' && NAME_RE.test(v)) return v;
    this.problem(path, `must be a name: a string without spaces, not ${show(v)}`);
    return undefined;
  }

  /** Parses an address; `listen`: unix: is refused. A name is resolved later (see Build.resolveAll). */
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

/** Records where every path of a plain document is, in document order (object key order); no lines. */
function indexObject(c: Check, v: unknown, path: string, ancestors: Set<unknown>): void {
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

// Deeper than any valid document goes (top, frontends, a frontend, routes, a route, a value): beyond this
// is a mistake, and converting it further would only cost time.
const MAX_DEPTH = 32;
// A file with thousands of servers has tens of thousands of values; aliases of aliases can make billions.
const MAX_NODES = 200_000;

/**
 * Turns a YAML node into plain values (maps without a prototype), recording each path's line. `open`: the
 * collections being converted, so that an alias to one of them (a loop) is a problem, not a hang.
 */
function fromYaml(c: Check, doc: Document, lc: LineCounter, node: unknown, path: string, keyLine: number | null, open: Set<unknown>): unknown {
  const n = isAlias(node) ? node.resolve(doc) : node;
  type Ranged = { range?: [number, number, number] | null } | null | undefined;
  const range = (n as Ranged)?.range ?? (node as Ranged)?.range;
  const line = range ? lc.linePos(range[0]).line : keyLine;
  c.where.set(path, { order: c.where.size, line, keyLine });
  if (isAlias(node) && n === undefined) {
    c.unreadable(path, `*${node.source} refers to no anchor (&${node.source})`);
    return null;
  }
  if (open.has(n)) {
    c.unreadable(path, `*${(node as { source?: string }).source ?? ''} refers to a map or list that contains it`);
    return null;
  }
  if (c.where.size > MAX_NODES) {
    c.problem(path, `over ${MAX_NODES} values: is an alias repeated many times over?`);
    throw c.error();
  }
  if (open.size > MAX_DEPTH) {
    c.unreadable(path, `nested too deep (over ${MAX_DEPTH} levels)`);
    return null;
  }
  if (isMap(n)) {
    open.add(n);
    const o: Obj = Object.create(null);
    for (const pair of n.items) {
      const key = pair.key;
      const kRange = (key as { range?: [number, number, number] } | null)?.range;
      const kLine = kRange ? lc.linePos(kRange[0]).line : line;
      if (key !== null && !isScalar(key)) {
        c.problem(path, 'a key must be a plain string, not a list or a map');
        continue;
      }
      const k = key === null || key.value === null ? '' : String(key.value);
      o[k] = fromYaml(c, doc, lc, pair.value, child(path, k), kLine, open);
    }
    open.delete(n);
    return o;
  }
  if (isSeq(n)) {
    open.add(n);
    const list = n.items.map((x, i) => fromYaml(c, doc, lc, x, item(path, i), line, open));
    open.delete(n);
    return list;
  }
  if (isScalar(n)) return n.value;
  return null;
}

/** Plain words for the errors reading a file can meet. */
const READ_HINTS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'a directory, not a file',
  ENOTDIR: 'a part of the path is not a directory',
};

/** Reads, parses, checks and resolves a config file. Throws ConfigError with every problem found. */
export async function loadConfigFile(file: string, opts: ConfigOptions = {}): Promise<ProxyPlan> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new ConfigError([`${file}: cannot read: ${code}${READ_HINTS[code] ? ` (${READ_HINTS[code]})` : ''}`]);
  }
  return parseConfig(text, file, opts);
}

/** Parses YAML or JSON `text` (`file` names it in problems), then checks and resolves it as planFromDocument does. */
export async function parseConfig(text: string, file: string, opts: ConfigOptions = {}): Promise<ProxyPlan> {
  const c = new Check(file);
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  // A syntax error leaves the document's shape in doubt: report those alone, or the rest would echo them.
  const last = Math.max(0, text.trimEnd().length - 1);
  for (const e of [...doc.errors, ...doc.warnings]) {
    let what = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    if (e.code === 'DUPLICATE_KEY') {
      // The error's range is the key's first character: take the key up to its colon.
      const key = /^("[^"]*"|'[^']*'|[^:\n]*)/.exec(text.slice(e.pos[0]))?.[1].trim().replace(/^["']|["']$/g, '') ?? '';
      what = `the key ${JSON.stringify(key)} is already in this map`;
    }
    c.fileProblem(lc.linePos(Math.min(e.pos[0], last)).line, `not valid YAML: ${what}`);
  }
  if (c.count > 0) throw c.error();
  const root = fromYaml(c, doc, lc, doc.contents, '', null, new Set());
  return build(c, root, opts);
}

/**
 * Checks and resolves a document given as a plain object (`start({ config })`, `proxy.reload(doc)`): the
 * same keys as the file. Problems name `file` and no line.
 */
export async function planFromDocument(doc: unknown, file = 'config', opts: ConfigOptions = {}): Promise<ProxyPlan> {
  const c = new Check(file);
  indexObject(c, doc, '', new Set());
  return build(c, doc, opts);
}

/** What the frontends' `backend`s refer to: a name, where it was written, and the index once known. */
type Ref = { path: string; name: string };
type FrontendDraft = {
  config: FrontendConfig;
  listen: AddressSpec | undefined;
  listenPath: string;
  backend: Ref | undefined;
  /** One per route in config.routes. */
  routes: (Ref | undefined)[];
};
/** An address still to be resolved, and where to put it. */
type Pending = { path: string; spec: AddressSpec; set: (a: Address) => void };

function frontendOptions(c: Check, path: string, o: Obj, base: FrontendOptions): FrontendOptions {
  const get = <T>(key: string, read: (p: string, v: unknown) => T | undefined, dflt: T): T =>
    o[key] === undefined ? dflt : (read(child(path, key), o[key]) ?? dflt);
  return {
    splice: get<SpliceMode>('splice', (p, v) => c.oneOf(p, v, SPLICE_MODES), base.splice),
    acceptProxy: get('accept-proxy', (p, v) => c.bool(p, v), base.acceptProxy),
    headerTimeoutMs: get('header-timeout', (p, v) => c.time(p, v, false), base.headerTimeoutMs),
    idleTimeoutMs: get('idle-timeout', (p, v) => c.time(p, v, false), base.idleTimeoutMs),
    backendTimeoutMs: get('backend-timeout', (p, v) => c.time(p, v, false), base.backendTimeoutMs),
    tunnelTimeoutMs: get('tunnel-timeout', (p, v) => c.time(p, v, true), base.tunnelTimeoutMs),
    maxHeaderSize: get('max-header-size', (p, v) => c.size(p, v, 1024, MAX_HEADER_SIZE_LIMIT), base.maxHeaderSize),
    maxBodySize: get('max-body-size', (p, v) => c.size(p, v, 0, Number.MAX_SAFE_INTEGER), base.maxBodySize),
    forwardedHeaders: get('forwarded-headers', (p, v) => c.bool(p, v), base.forwardedHeaders),
  };
}

function backendOptions(c: Check, path: string, o: Obj, base: BackendOptions): BackendOptions {
  const get = <T>(key: string, read: (p: string, v: unknown) => T | undefined, dflt: T): T =>
    o[key] === undefined ? dflt : (read(child(path, key), o[key]) ?? dflt);
  return {
    balance: get<Balance>('balance', (p, v) => c.oneOf(p, v, BALANCES), base.balance),
    sendProxy: get<0 | 1 | 2>('send-proxy', (p, v) => sendProxy(c, p, v), base.sendProxy),
    retries: get('retries', (p, v) => c.int(p, v, 0, MAX_RETRIES), base.retries),
  };
}

function sendProxy(c: Check, path: string, v: unknown): 0 | 1 | 2 | undefined {
  if (v === false) return 0;
  if (v === 'v1') return 1;
  if (v === 'v2') return 2;
  c.problem(path, `must be one of ${quoteList(SEND_PROXY)}, or false for none, not ${show(v)}${didYouMean(v, SEND_PROXY)}`);
  return undefined;
}

function health(c: Check, path: string, v: unknown): HealthConfig | null | undefined {
  const o = c.map(path, v, 'a map with tcp: true or http: "/path"');
  if (!o) return undefined;
  c.keys(path, o, 'health');
  let kind: 'tcp' | 'http' | undefined;
  let target = '';
  if (o.tcp !== undefined && o.http !== undefined) {
    c.problem(path, 'takes one of tcp and http, not both');
  } else if (o.tcp !== undefined) {
    if (o.tcp === true) kind = 'tcp';
    else c.problem(child(path, 'tcp'), `must be true (a check is a connect that succeeds), not ${show(o.tcp)}; without checks, leave health out`);
  } else if (o.http !== undefined) {
    if (typeof o.http === 'string' && PATH_RE.test(o.http)) {
      kind = 'http';
      target = o.http;
    } else {
      c.problem(child(path, 'http'), `must be the path the check GETs, starting with / and without spaces ("/health"), not ${show(o.http)}`);
    }
  } else {
    c.problem(path, 'needs tcp: true or http: "/path"');
  }
  const intervalMs = o.interval === undefined ? DEFAULTS.healthIntervalMs : c.time(child(path, 'interval'), o.interval, false);
  const timeoutMs = o.timeout === undefined ? intervalMs : c.time(child(path, 'timeout'), o.timeout, false);
  const rise = o.rise === undefined ? DEFAULTS.healthRise : c.int(child(path, 'rise'), o.rise, 1, MAX_RISE_FALL);
  const fall = o.fall === undefined ? DEFAULTS.healthFall : c.int(child(path, 'fall'), o.fall, 1, MAX_RISE_FALL);
  if (kind === undefined || intervalMs === undefined || timeoutMs === undefined || rise === undefined || fall === undefined) return undefined;
  return { kind, path: target, intervalMs, timeoutMs, rise, fall };
}

function servers(c: Check, path: string, v: unknown, pending: Pending[]): ServerConfig[] {
  const list = c.list(path, v, 'servers', true);
  if (!list) return [];
  const out: ServerConfig[] = [];
  const seen = new Map<string, number>();
  list.forEach((s, i) => {
    const at = item(path, i);
    let addrPath = at;
    let addrValue: unknown = s;
    let name: string | undefined;
    let weight = 1;
    let backup = false;
    if (isObj(s)) {
      c.keys(at, s, 'server');
      addrPath = child(at, 'address');
      addrValue = c.required(at, s, 'address');
      if (s.name !== undefined) name = c.name(child(at, 'name'), s.name) ?? '';
      if (s.weight !== undefined) weight = c.int(child(at, 'weight'), s.weight, 0, MAX_WEIGHT) ?? weight;
      if (s.backup !== undefined) backup = c.bool(child(at, 'backup'), s.backup) ?? backup;
    } else if (typeof s !== 'string') {
      c.problem(at, `must be an address (${SERVER_SYNTAX}) or a map with address and weight, backup or name; not ${show(s)}`);
      return;
    }
    const spec = addrValue === undefined ? undefined : c.address(addrPath, addrValue, false);
    // The default name is the address as written; an address already refused has no name to compare.
    if (name === undefined && spec !== undefined) name = addrValue as string;
    if (name) {
      const first = seen.get(name);
      if (first !== undefined) {
        const namePath = isObj(s) && s.name !== undefined ? child(at, 'name') : addrPath;
        c.problem(namePath, `${show(name)} is already the name of ${item(path, first).replace(/^.*\./, '')}; give each server its own name`);
      } else {
        seen.set(name, i);
      }
    }
    if (spec === undefined || !name) return;
    // Ids count from 0 over every backend's servers in document order: a fresh plan's. A reload maps
    // them onto the running ones' (a server that keeps its backend and name keeps its id).
    const server: ServerConfig = { id: -1, name, address: spec as Address, weight, backup };
    if (spec.family === 'name') pending.push({ path: addrPath, spec, set: (a) => (server.address = a) });
    out.push(server);
  });
  return out;
}

/**
 * A route checked; `ref` is its backend's name, looked up once every backend is known, also when the rest of
 * the route has a problem (that one is its own).
 */
function route(
  c: Check,
  routesPath: string,
  index: number,
  v: unknown,
  seen: Map<string, number>,
): { route: RouteConfig; ref: Ref | undefined } | undefined {
  const path = item(routesPath, index);
  const o = c.map(path, v, 'a map with host, path, backend and strip-prefix');
  if (!o) return undefined;
  c.keys(path, o, 'route');
  let host: string | null = null;
  let prefix: string | null = null;
  let ok = true;
  if (o.host !== undefined) {
    const h = typeof o.host === 'string' ? o.host.toLowerCase() : undefined;
    if (h !== undefined && /:[0-9]*$/.test(h) && HOST_RE.test(h.replace(/:[0-9]*$/, ''))) {
      c.problem(child(path, 'host'), `${show(o.host)}: a route's host is matched without its port; write ${show(h.replace(/:[0-9]*$/, ''))}`);
      ok = false;
    } else if (h === undefined || !HOST_RE.test(h)) {
      c.problem(child(path, 'host'), `must be a host name ("api.example.com") or "*.example.com", not ${show(o.host)}`);
      ok = false;
    } else {
      host = h;
    }
  }
  if (o.path !== undefined) {
    if (typeof o.path === 'string' && PATH_RE.test(o.path)) prefix = o.path;
    else {
      c.problem(child(path, 'path'), `must be a path prefix starting with / and without spaces ("/v2/"), not ${show(o.path)}`);
      ok = false;
    }
  }
  if (o.host === undefined && o.path === undefined) {
    c.problem(path, 'a route needs a host, a path or both');
    ok = false;
  }
  let stripPrefix = false;
  if (o['strip-prefix'] !== undefined) {
    const s = c.bool(child(path, 'strip-prefix'), o['strip-prefix']);
    if (s === undefined) ok = false;
    else if (s && o.path === undefined) {
      c.problem(child(path, 'strip-prefix'), 'needs a path: it removes the matched path prefix');
      ok = false;
    } else stripPrefix = s;
  }
  const b = c.required(path, o, 'backend');
  let ref: Ref | undefined;
  if (b !== undefined) {
    if (typeof b === 'string') ref = { path: child(path, 'backend'), name: b };
    else c.problem(child(path, 'backend'), `must be the name of a backend, not ${show(b)}`);
  }
  // Two routes with the same host and path: the later one could never be chosen.
  if (ok) {
    const key = `${host ?? ''}\n${prefix ?? ''}`;
    const first = seen.get(key);
    if (first !== undefined) c.problem(path, `same host and path as ${item(routesPath, first).replace(/^.*\./, '')}: it would never be used`);
    else seen.set(key, index);
  }
  return { route: { host, path: prefix, backend: -1, stripPrefix }, ref };
}

/** The key two frontends may not share: family, host (IPv6 in its 16 bytes) and port. */
function listenKey(a: Address): string | null {
  if (a.family === 'unix' || a.port === 0) return null;
  const host = a.family === 'ipv6' ? Buffer.from(ipv6Bytes(a.host)).toString('hex') : a.host;
  return `${a.family} ${host} ${a.port}`;
}

async function build(c: Check, root: unknown, opts: ConfigOptions): Promise<ProxyPlan> {
  const resolve = opts.resolve ?? resolveAddress;
  if (root === null || root === undefined) {
    c.problem('', 'the document is empty; it needs frontends and backends');
    throw c.error();
  }
  const top = c.map('', root, 'a map with frontends and backends');
  if (!top) throw c.error();
  c.keys('', top, 'top');
  const pending: Pending[] = [];
  const frontendsValue = c.required('', top, 'frontends');
  const backendsValue = c.required('', top, 'backends');

  const workers = top.workers === undefined ? availableParallelism() : c.int('workers', top.workers, 1, MAX_WORKERS);
  const processes = top.processes === undefined ? 1 : c.int('processes', top.processes, 1, MAX_PROCESSES);
  const drainTimeoutMs = top['drain-timeout'] === undefined ? DEFAULTS.drainTimeoutMs : c.time('drain-timeout', top['drain-timeout'], true);
  const logLevel = top['log-level'] === undefined ? DEFAULTS.logLevel : c.oneOf('log-level', top['log-level'], LOG_LEVELS);
  const maxConnections =
    top['max-connections'] === undefined || top['max-connections'] === null
      ? null
      : c.int('max-connections', top['max-connections'], 1, MAX_CONNECTIONS);
  const frontendBase = frontendOptions(c, '', top, FRONTEND_DEFAULTS);
  const backendBase = backendOptions(c, '', top, BACKEND_DEFAULTS);

  // Backends first: frontends and routes name them. Problems are sorted into document order at the end.
  const backends: BackendConfig[] = [];
  const backendIndex = new Map<string, number>();
  // False when a backend's name is missing or wrong: a reference to an unknown name may then mean that one.
  let allBackendsNamed = false;
  const backendList = backendsValue === undefined ? undefined : c.list('backends', backendsValue, 'backends', true);
  if (backendList) {
    allBackendsNamed = true;
    backendList.forEach((v, i) => {
      const at = item('backends', i);
      const o = c.map(at, v, 'a map with name and servers');
      if (!o) {
        allBackendsNamed = false;
        return;
      }
      c.keys(at, o, 'backend');
      const n = c.required(at, o, 'name');
      const name = n === undefined ? undefined : c.name(child(at, 'name'), n);
      if (name === undefined) allBackendsNamed = false;
      else if (backendIndex.has(name)) c.problem(child(at, 'name'), `${show(name)} is already the name of backends[${backendIndex.get(name)}]`);
      else backendIndex.set(name, i);
      const s = c.required(at, o, 'servers');
      const list = s === undefined ? [] : servers(c, child(at, 'servers'), s, pending);
      const h = o.health === undefined ? null : health(c, child(at, 'health'), o.health);
      const options = backendOptions(c, at, o, backendBase);
      backends.push({ name: name ?? '', servers: list, health: h ?? null, ...options });
    });
  }

  const drafts: FrontendDraft[] = [];
  const frontendNames = new Map<string, number>();
  const frontendList = frontendsValue === undefined ? undefined : c.list('frontends', frontendsValue, 'frontends', true);
  frontendList?.forEach((v, i) => {
    const at = item('frontends', i);
    const o = c.map(at, v, 'a map with name, listen and backend');
    if (!o) return;
    c.keys(at, o, 'frontend');
    const n = c.required(at, o, 'name');
    const name = n === undefined ? undefined : c.name(child(at, 'name'), n);
    if (name !== undefined) {
      if (frontendNames.has(name)) c.problem(child(at, 'name'), `${show(name)} is already the name of frontends[${frontendNames.get(name)}]`);
      else frontendNames.set(name, i);
    }
    const l = c.required(at, o, 'listen');
    const listen = l === undefined ? undefined : c.address(child(at, 'listen'), l, true);
    const mode: Mode | undefined = o.mode === undefined ? DEFAULTS.mode : c.oneOf(child(at, 'mode'), o.mode, MODES);
    const b = c.required(at, o, 'backend');
    let backend: Ref | undefined;
    if (b !== undefined) {
      if (typeof b === 'string') backend = { path: child(at, 'backend'), name: b };
      else c.problem(child(at, 'backend'), `must be the name of a backend, not ${show(b)}`);
    }
    const routes: RouteConfig[] = [];
    const refs: (Ref | undefined)[] = [];
    if (o.routes !== undefined) {
      const list = c.list(child(at, 'routes'), o.routes, 'routes', false);
      if (list && list.length > 0 && mode === 'tcp') {
        c.problem(child(at, 'routes'), `routes need mode: http; this frontend is tcp${o.mode === undefined ? ' (the default)' : ''}`);
      }
      const seen = new Map<string, number>();
      list?.forEach((r, j) => {
        const checked = route(c, child(at, 'routes'), j, r, seen);
        if (checked) {
          routes.push(checked.route);
          refs.push(checked.ref);
        }
      });
    }
    const options = frontendOptions(c, at, o, frontendBase);
    drafts.push({
      config: { name: name ?? '', listen: listen as Address, mode: mode ?? DEFAULTS.mode, backend: -1, routes, ...options },
      listen,
      listenPath: child(at, 'listen'),
      backend,
      routes: refs,
    });
  });

  const lookup = (ref: Ref | undefined): number => {
    if (ref === undefined) return -1;
    const i = backendIndex.get(ref.name);
    if (i !== undefined) return i;
    if (allBackendsNamed) {
      const names = [...backendIndex.keys()];
      const guess = closest(ref.name, names);
      const hint = guess !== null ? ` (did you mean "${guess}"?)` : `; the backends are ${quoteList(names)}`;
      c.problem(ref.path, `no backend named ${show(ref.name)}${hint}`);
    }
    return -1;
  };
  for (const d of drafts) {
    d.config.backend = lookup(d.backend);
    d.config.routes.forEach((r, j) => (r.backend = lookup(d.routes[j])));
    const spec = d.listen;
    if (spec?.family === 'name') pending.push({ path: d.listenPath, spec, set: (a) => (d.config.listen = a) });
  }

  // Every name at once: a file with many servers should not wait for one lookup after another.
  const unresolved = new Set<string>();
  await Promise.all(
    pending.map(async (p) => {
      try {
        p.set(await resolve(p.spec, p.path));
      } catch (e) {
        unresolved.add(p.path);
        // resolveAddress says `ROLE ADDRESS: cannot resolve ...`; the path already names the role.
        const msg = e instanceof Error ? e.message : String(e);
        c.problem(p.path, msg.startsWith(`${p.path} `) ? msg.slice(p.path.length + 1) : msg);
      }
    }),
  );

  // Two frontends on one address would split its connections between them without a word.
  const listening = new Map<string, number>();
  drafts.forEach((d, i) => {
    if (d.listen === undefined || unresolved.has(d.listenPath)) return;
    const key = listenKey(d.config.listen);
    if (key === null) return;
    const first = listening.get(key);
    if (first === undefined) listening.set(key, i);
    else {
      const other = drafts[first].config.name;
      c.problem(d.listenPath, `${formatAddress(d.config.listen)} is already where frontends[${first}]${other ? ` (${other})` : ''} listens`);
    }
  });

  if (c.count > 0) throw c.error();
  let id = 0;
  for (const b of backends) for (const s of b.servers) s.id = id++;
  return {
    frontends: drafts.map((d) => d.config),
    backends,
    workers: workers as number,
    processes: processes as number,
    drainTimeoutMs: drainTimeoutMs as number,
    logLevel: logLevel as LevelName,
    maxConnections: maxConnections ?? null,
    join: false,
  };
}

// describePlan: what `ffi-proxy check` prints. Times and sizes are written as the file writes them.

function showTime(ms: number): string {
  if (ms === 0) return '0';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms < 1000) return `${ms}ms`;
  return `${ms / 1000}s`;
}

function showSize(n: number): string {
  if (n > 0 && n % 1024 ** 2 === 0) return `${n / 1024 ** 2}m`;
  if (n > 0 && n % 1024 === 0) return `${n / 1024}k`;
  return String(n);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * What a plan would run, as `ffi-proxy check` prints it: a line of process-wide settings, then one block
 * per frontend and per backend. Tests match on it: change it only on purpose.
 */
export function describePlan(plan: ProxyPlan): string {
  const lines: string[] = [];
  const maxConn = plan.maxConnections === null ? 'max-connections from the open-file limit' : `max-connections ${plan.maxConnections}`;
  const drain = showTime(plan.drainTimeoutMs);
  lines.push(`global: workers ${plan.workers}, processes ${plan.processes}, drain-timeout ${drain}, log-level ${plan.logLevel}, ${maxConn}`);
  const backendName = (i: number): string => plan.backends[i]?.name ?? `#${i}`;
  for (const f of plan.frontends) {
    let head = `frontend ${f.name}: listen ${formatAddress(f.listen)}, ${f.mode}, backend ${backendName(f.backend)}`;
    if (f.routes.length > 0) {
      const routes = f.routes.map((r) => `${r.host ?? ''}${r.path ?? ''} -> ${backendName(r.backend)}${r.stripPrefix ? ' (strip prefix)' : ''}`);
      head += `; routes: ${routes.join(', ')}`;
    }
    lines.push(head);
    const o = [`splice ${f.splice}`];
    if (f.acceptProxy) o.push('accept-proxy');
    // The other mode's options are carried and not used: only what applies is shown.
    if (f.mode === 'http' || f.acceptProxy) o.push(`header-timeout ${showTime(f.headerTimeoutMs)}`);
    if (f.mode === 'http') o.push(`idle-timeout ${showTime(f.idleTimeoutMs)}`);
    o.push(`backend-timeout ${showTime(f.backendTimeoutMs)}`);
    o.push(`tunnel-timeout ${f.tunnelTimeoutMs === 0 ? '0 (never)' : showTime(f.tunnelTimeoutMs)}`);
    if (f.mode === 'http') {
      o.push(`max-header-size ${showSize(f.maxHeaderSize)}`);
      o.push(`max-body-size ${f.maxBodySize === 0 ? '0 (no limit)' : showSize(f.maxBodySize)}`);
      o.push(`forwarded-headers ${f.forwardedHeaders ? 'on' : 'off'}`);
    }
    lines.push(`  ${o.join(', ')}`);
  }
  for (const b of plan.backends) {
    const backups = b.servers.filter((s) => s.backup).length;
    let head = `backend ${b.name}: ${b.balance} over ${plural(b.servers.length, 'server')}`;
    if (backups > 0) head += ` (${plural(backups, 'backup')})`;
    const h = b.health;
    if (h === null) head += ', no health check';
    else {
      head += `, ${h.kind} health check ${h.kind === 'http' ? `GET ${h.path} ` : ''}every ${showTime(h.intervalMs)}`;
      if (h.timeoutMs !== h.intervalMs) head += `, timeout ${showTime(h.timeoutMs)}`;
      head += `, rise ${h.rise}, fall ${h.fall}`;
    }
    head += `; retries ${b.retries}`;
    if (b.sendProxy !== 0) head += `; send-proxy v${b.sendProxy}`;
    lines.push(head);
    for (const s of b.servers) {
      const address = formatAddress(s.address);
      let line = `  server ${s.name}`;
      if (address !== s.name) line += ` at ${address}`;
      if (s.weight !== 1) line += ` weight ${s.weight}`;
      if (s.backup) line += ' backup';
      lines.push(line);
    }
  }
  return lines.join('\n');
}
