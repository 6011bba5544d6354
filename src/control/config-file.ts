// A config file (YAML, or JSON, which is YAML) or a plain document object, checked and resolved into a
// ProxyPlan. Its keys are the flags' names; a frontend or backend key overrides the same key at the top
// level, which overrides DEFAULTS (control/config.ts), so the flags are the one-frontend, one-backend case.
//
// Checking makes one pass and collects every problem, each one line that names where it is:
//   ffi-proxy.yaml:12: backends[0].servers[1]: "127.0.0.1:99999" is not a valid address: the port must be ...
// A problem is reported once: a value that fails its own check is not checked again against others (an
// unknown backend name is not reported when a backend's own name was already wrong).
//
// This file reads the document and walks its shape (which key goes where, what refers to what), then
// resolves the names in it. What each value must be, and Check, which collects the problems, are in
// config-check.ts; describePlan, re-exported here for `ffi-proxy check`, is in config-describe.ts.

import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, resolve as resolvePath } from 'node:path';
// The YAML parser is loaded when a config is first parsed from text: a proxy started from flags, or from a
// document object, never loads it (it costs the main thread a few MB).
import type { Document, LineCounter } from 'yaml';
type Yaml = typeof import('yaml');
import { LEVEL, type LevelName, Logger } from '../core/log.js';
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
  ACCESS_LOG_FORMATS,
  type SpliceMode,
} from '../route/index.js';
import { type Address, type AddressSpec, formatAddress, ipv6Bytes } from '../sys/index.js';
import {
  BACKEND_DEFAULTS, type BackendOptions, Check, ConfigError, FRONTEND_DEFAULTS, type FrontendOptions, HOST_RE, LOG_LEVELS,
  MAX_CONNECTIONS, MAX_PROCESSES, MAX_RETRIES, MAX_RISE_FALL, MAX_WEIGHT, MAX_WORKERS, type Obj, PATH_RE, SERVER_SYNTAX,
  child, closest, didYouMean, indexObject, isObj, item, quoteList, show,
} from './config-check.js';
import { DEFAULTS, MAX_HEADER_SIZE_LIMIT, SEND_PROXY, resolveAddress } from './config.js';
import { checkBackendTls, checkTls } from './config-tls.js';
import { checkToxics } from './config-toxics.js';
import type { ProxyPlan } from './plan.js';

export { ConfigError } from './config-check.js';
export { describePlan } from './config-describe.js';

export type ConfigOptions = {
  /** Turns a host name into an address; default resolveAddress (DNS). Tests pass their own to avoid DNS. */
  resolve?: (spec: AddressSpec, role: string) => Promise<Address>;
  /** What relative file paths (TLS certificates) are relative to: a file's own folder; a document's, the working directory. */
  baseDir?: string;
  /** Where warnings go (an expired certificate), each one line; default: the log, as warnings. */
  warn?: (msg: string) => void;
};

// Deeper than any valid document goes (top, frontends, a frontend, routes, a route, a value): beyond this
// is a mistake, and converting it further would only cost time.
const MAX_DEPTH = 32;
// A file with thousands of servers has tens of thousands of values; aliases of aliases can make billions.
const MAX_NODES = 200_000;

/**
 * Turns a YAML node into plain values (maps without a prototype), recording each path's line. `open`: the
 * collections being converted, so that an alias to one of them (a loop) is a problem, not a hang.
 */
function fromYaml(y: Yaml, c: Check, doc: Document, lc: LineCounter, node: unknown, path: string, keyLine: number | null, open: Set<unknown>): unknown {
  const { isAlias, isMap, isScalar, isSeq } = y;
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
      o[k] = fromYaml(y, c, doc, lc, pair.value, child(path, k), kLine, open);
    }
    open.delete(n);
    return o;
  }
  if (isSeq(n)) {
    open.add(n);
    const list = n.items.map((x, i) => fromYaml(y, c, doc, lc, x, item(path, i), line, open));
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
  const y: Yaml = await import('yaml');
  const lc = new y.LineCounter();
  const doc = y.parseDocument(text, { lineCounter: lc, prettyErrors: false });
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
  const root = fromYaml(y, c, doc, lc, doc.contents, '', null, new Set());
  return build(c, root, { baseDir: dirname(resolvePath(file)), ...opts });
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
  /** The `tls` value and its path, read once the shape of the rest is known (config-tls.ts reads files). */
  tls: { path: string; value: unknown } | undefined;
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
    accessLog: o['access-log'] === undefined ? base.accessLog : c.accessLog(child(path, 'access-log'), o['access-log']),
    accessLogFormat: get('access-log-format', (p, v) => c.oneOf(p, v, ACCESS_LOG_FORMATS), base.accessLogFormat),
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
  const settings = processSettings(c, top);
  const frontendBase = frontendOptions(c, '', top, FRONTEND_DEFAULTS);
  const backendBase = backendOptions(c, '', top, BACKEND_DEFAULTS);

  // Backends first: frontends and routes name them. Problems are sorted into document order at the end.
  const backends = checkBackends(c, backendsValue, backendBase, pending);
  const drafts = checkFrontends(c, frontendsValue, frontendBase);
  linkBackends(c, drafts, backends, pending);
  const unresolved = await resolveAll(c, pending, resolve);
  checkListens(c, drafts, unresolved);
  const baseDir = opts.baseDir ?? process.cwd();
  await Promise.all(drafts.map(async (d) => d.tls && (d.config.tls = (await checkTls(c, d.tls.path, d.tls.value, baseDir)) ?? null)));

  if (c.count > 0) throw c.error();
  const warn = opts.warn ?? ((m: string) => new Logger(LEVEL[settings.logLevel ?? 'info'], 'main').warn(m));
  for (const w of c.warnings) warn(w);
  let id = 0;
  for (const b of backends.list) for (const s of b.servers) s.id = id++;
  // No problem was found, so no setting is undefined.
  return {
    frontends: drafts.map((d) => d.config),
    backends: backends.list,
    workers: settings.workers as number,
    processes: settings.processes as number,
    drainTimeoutMs: settings.drainTimeoutMs as number,
    logLevel: settings.logLevel as LevelName,
    maxConnections: settings.maxConnections ?? null,
    join: false,
    admin: settings.admin ?? null,
    adminToken: settings.adminToken ?? null,
  };
}

/** The process-wide settings, each undefined after a problem. */
type Settings = {
  workers: number | undefined;
  processes: number | undefined;
  drainTimeoutMs: number | undefined;
  logLevel: LevelName | undefined;
  maxConnections: number | null | undefined;
  admin: string | undefined;
  adminToken: string | undefined;
};

function processSettings(c: Check, top: Obj): Settings {
  return {
    workers: top.workers === undefined ? availableParallelism() : c.int('workers', top.workers, 1, MAX_WORKERS),
    processes: top.processes === undefined ? 1 : c.int('processes', top.processes, 1, MAX_PROCESSES),
    drainTimeoutMs: top['drain-timeout'] === undefined ? DEFAULTS.drainTimeoutMs : c.time('drain-timeout', top['drain-timeout'], true),
    logLevel: top['log-level'] === undefined ? DEFAULTS.logLevel : c.oneOf('log-level', top['log-level'], LOG_LEVELS),
    maxConnections:
      top['max-connections'] === undefined || top['max-connections'] === null
        ? null
        : c.int('max-connections', top['max-connections'], 1, MAX_CONNECTIONS),
    admin: top.admin === undefined ? undefined : c.admin('admin', top.admin),
    adminToken: top['admin-token'] === undefined ? undefined : c.text('admin-token', top['admin-token']),
  };
}

/** The backends checked, in document order, and the index of each name. */
type Backends = {
  list: BackendConfig[];
  index: Map<string, number>;
  // False when a backend's name is missing or wrong: a reference to an unknown name may then mean that one.
  allNamed: boolean;
};

function checkBackends(c: Check, value: unknown, base: BackendOptions, pending: Pending[]): Backends {
  const backends: Backends = { list: [], index: new Map(), allNamed: false };
  const list = value === undefined ? undefined : c.list('backends', value, 'backends', true);
  if (!list) return backends;
  backends.allNamed = true;
  list.forEach((v, i) => {
    const at = item('backends', i);
    const o = c.map(at, v, 'a map with name and servers');
    if (!o) {
      backends.allNamed = false;
      return;
    }
    c.keys(at, o, 'backend');
    const n = c.required(at, o, 'name');
    const name = n === undefined ? undefined : c.name(child(at, 'name'), n);
    if (name === undefined) backends.allNamed = false;
    else if (backends.index.has(name)) c.problem(child(at, 'name'), `${show(name)} is already the name of backends[${backends.index.get(name)}]`);
    else backends.index.set(name, i);
    const s = c.required(at, o, 'servers');
    const serverList = s === undefined ? [] : servers(c, child(at, 'servers'), s, pending);
    const h = o.health === undefined ? null : health(c, child(at, 'health'), o.health);
    const options = backendOptions(c, at, o, base);
    const tls = o.tls === undefined ? null : checkBackendTls(c, child(at, 'tls'), o.tls, process.cwd());
    backends.list.push({ name: name ?? '', servers: serverList, health: h ?? null, ...options, ...(tls === null ? {} : { tls }) });
  });
  return backends;
}

/** The frontends that are maps, in document order; the rest are only problems. */
function checkFrontends(c: Check, value: unknown, base: FrontendOptions): FrontendDraft[] {
  const drafts: FrontendDraft[] = [];
  const names = new Map<string, number>();
  const list = value === undefined ? undefined : c.list('frontends', value, 'frontends', true);
  list?.forEach((v, i) => {
    const draft = frontend(c, i, v, base, names);
    if (draft) drafts.push(draft);
  });
  return drafts;
}

function frontend(c: Check, i: number, v: unknown, base: FrontendOptions, names: Map<string, number>): FrontendDraft | undefined {
  const at = item('frontends', i);
  const o = c.map(at, v, 'a map with name, listen and backend');
  if (!o) return undefined;
  c.keys(at, o, 'frontend');
  const n = c.required(at, o, 'name');
  const name = n === undefined ? undefined : c.name(child(at, 'name'), n);
  if (name !== undefined) {
    if (names.has(name)) c.problem(child(at, 'name'), `${show(name)} is already the name of frontends[${names.get(name)}]`);
    else names.set(name, i);
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
  const { routes, refs } = frontendRoutes(c, at, o, mode);
  const options = frontendOptions(c, at, o, base);
  const toxics = o.toxics === undefined ? [] : checkToxics(c, child(at, 'toxics'), o.toxics, mode);
  return {
    config: { name: name ?? '', listen: listen as Address, mode: mode ?? DEFAULTS.mode, backend: -1, routes, toxics, ...options },
    listen,
    listenPath: child(at, 'listen'),
    backend,
    routes: refs,
    tls: o.tls === undefined || o.tls === null ? undefined : { path: child(at, 'tls'), value: o.tls },
  };
}

/** A frontend's routes that are maps, and the backend each names (one per route). */
function frontendRoutes(c: Check, at: string, o: Obj, mode: Mode | undefined): { routes: RouteConfig[]; refs: (Ref | undefined)[] } {
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
  return { routes, refs };
}

/** Sets each frontend's and route's backend index from its name; queues the listen addresses still to resolve. */
function linkBackends(c: Check, drafts: FrontendDraft[], backends: Backends, pending: Pending[]): void {
  const lookup = (ref: Ref | undefined): number => {
    if (ref === undefined) return -1;
    const i = backends.index.get(ref.name);
    if (i !== undefined) return i;
    if (backends.allNamed) {
      const names = [...backends.index.keys()];
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
}

/** Resolves every pending name into its place; returns the paths of those that failed (each a problem). */
async function resolveAll(c: Check, pending: Pending[], resolve: NonNullable<ConfigOptions['resolve']>): Promise<Set<string>> {
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
  return unresolved;
}

function checkListens(c: Check, drafts: FrontendDraft[], unresolved: Set<string>): void {
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
}
