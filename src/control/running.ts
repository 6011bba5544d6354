// A running proxy on the main thread: its plan, the route tables by stable index (registry.ts), the
// workers (supervisor.ts), the health checks (health.ts), and the changes made while it runs. A reload
// takes a whole new config; addFrontend(), removeFrontend(), setServers() and the toxic calls (addToxic...)
// edit the current one and run it; the toxiproxy server (toxiproxy-host.ts) runs plans it builds itself
// (runPlan). All of them run one after another. A config that cannot be applied (a problem in it, a port in
// use) changes nothing.
//
//   reload(config) ──> plan (config-file.ts: every problem, with its place) ──> the tables it would make
//     ──> listeners for the new frontends (a port in use: nothing changed) ──> the workers told (mailbox)
//     ──> the tables committed, the health checks brought in line

import { MAX_FRONTENDS } from '../core/counters.js';
import { LEVEL_NAMES, type LevelName, type Logger, levelNumber } from '../core/log.js';
import { parserLayout } from '../http/parser.js';
import { type BackendConfig, type FrontendConfig, MAX_SERVERS, SRV, type ServerConfig, type ToxicConfig } from '../route/index.js';
import { CODES, ProxyError, type Address } from '../sys/index.js';
import { loadConfigFile, planFromDocument } from './config-file.js';
import { adminProblem, resolveOptions, type StartOptions } from './config.js';
import { type ConfigDocument, documentFromPlan } from './document.js';
import { checkAccessLogs } from './accesslog.js';
import { ApiError, type ToxicChange, type ToxicJson, changeToxic, listOrder, modeProblem, readToxic, toxicJson } from './config-toxics.js';
import { HealthChecker } from './health.js';
import { type Sources, serverStateName } from './metrics.js';
import type { ProxyPlan } from './plan.js';
import { RouteRegistry } from './registry.js';
import type { WorkerSet, WorkerSetOptions } from './supervisor.js';

/** What an operator may set a server to: `ready` (health decides), `drain` (no new connections), `maint` (the same, and its idle ones closed). */
export const ADMIN_STATES = ['ready', 'drain', 'maint'] as const;
export type AdminState = (typeof ADMIN_STATES)[number];

/** What start() needs to make the workers once the plan is known. */
export type Launch = (o: Pick<WorkerSetOptions, 'frontends' | 'backends' | 'join' | 'serverState'>) => Promise<WorkerSet>;

export class Running {
  private plan: ProxyPlan;
  private readonly registry = new RouteRegistry();
  private readonly health: HealthChecker;
  private readonly serverState = new SharedArrayBuffer(MAX_SERVERS * 4);
  private set!: WorkerSet;
  /** Weights an operator set, by server id: kept across reloads while the server stays. */
  private readonly weights = new Map<number, number>();
  /** Reloads run one after another. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    plan: ProxyPlan,
    private readonly log: Logger,
  ) {
    this.plan = plan;
    this.health = new HealthChecker(new Int32Array(this.serverState), log, (id) => this.set.serverDown(id));
  }

  /** Binds and starts the workers for `plan` (throws as WorkerSet.start does), then the health checks. */
  static async start(plan: ProxyPlan, log: Logger, launch: Launch): Promise<Running> {
    checkToxicModes(plan.frontends);
    const r = new Running(plan, log);
    const prepared = r.registry.prepare(plan);
    r.set = await launch({ frontends: prepared.frontends, backends: prepared.backends, join: plan.join, serverState: r.serverState });
    r.registry.commit(prepared);
    r.health.update(r.registry.backends);
    return r;
  }

  get workers(): WorkerSet {
    return this.set;
  }

  /** The config as it now runs. */
  current(): ProxyPlan {
    return this.plan;
  }

  /** Where each frontend listens, by name (with the real port when 0 was asked for). */
  listening(): { name: string; address: Address }[] {
    const out: { name: string; address: Address }[] = [];
    this.registry.frontends.forEach((f, i) => {
      const a = this.set.addresses[i];
      if (f !== null && a) out.push({ name: f.name, address: a });
    });
    return out;
  }

  /**
   * Runs `config` (a file's path, or a document) from now on: see the header. Process-wide settings that
   * only a restart can change (workers, processes, max-connections) are kept, with a warning. Throws
   * ProxyError (a ConfigError with every problem, or EADDRINUSE) and then changes nothing.
   */
  reload(config: string | ConfigDocument): Promise<void> {
    return this.queued(async () => {
      const plan = typeof config === 'string' ? await loadConfigFile(config) : await planFromDocument(config);
      await this.apply(plan);
    });
  }

  /**
   * Runs `plan` (already checked and resolved: the toxiproxy server builds its own), then closes every
   * connection still open on the frontends named in `kill` (a Toxiproxy proxy disabled or deleted).
   */
  runPlan(plan: ProxyPlan, kill: readonly string[] = []): Promise<number[]> {
    return this.queued(async () => {
      const before = this.registry.frontends.map((f) => f?.name ?? null);
      await this.apply(plan, true);
      const retired: number[] = [];
      before.forEach((name, fe) => {
        if (name === null || !kill.includes(name)) return;
        this.set.post({ type: 'close-frontend', fe });
        // Taken out and emptied: its index may serve again (a Toxiproxy server enables and disables
        // proxies all day; without this it would run out of indices).
        if (this.registry.frontends[fe] === null) {
          this.registry.retire(fe);
          retired.push(fe);
        }
      });
      return retired;
    });
  }

  private queued<T>(run: () => Promise<T>): Promise<T> {
    const next = this.queue.then(run);
    this.queue = next.catch(() => {});
    return next;
  }

  /** Adds a frontend (a document as in a config file's `frontends`); resolves with where it listens. */
  async addFrontend(frontend: ConfigDocument): Promise<Address> {
    const doc = documentFromPlan(this.plan);
    (doc.frontends as ConfigDocument[]).push(frontend);
    await this.reload(doc);
    const name = String(frontend.name);
    return this.listening().find((l) => l.name === name)!.address;
  }

  /** Takes frontend `name` out: it stops accepting, and its connections finish. */
  async removeFrontend(name: string): Promise<void> {
    const doc = documentFromPlan(this.plan);
    const frontends = doc.frontends as ConfigDocument[];
    const i = frontends.findIndex((f) => f.name === name);
    if (i < 0) throw new ProxyError(CODES.BAD_CONFIG, `no frontend named "${name}"`);
    frontends.splice(i, 1);
    await this.reload(doc);
  }

  /** Gives backend `name` these servers (addresses, or documents as in a config file's `servers`). */
  async setServers(name: string, servers: (string | ConfigDocument)[]): Promise<void> {
    const doc = documentFromPlan(this.plan);
    const backend = (doc.backends as ConfigDocument[]).find((b) => b.name === name);
    if (backend === undefined) throw new ProxyError(CODES.BAD_CONFIG, `no backend named "${name}"`);
    backend.servers = servers;
    await this.reload(doc);
  }

  /** Frontend `name`'s toxics, as Toxiproxy lists them (upstream first). Throws ApiError 404 for an unknown frontend. */
  toxics(frontend: string): ToxicJson[] {
    return listOrder(this.frontend(frontend).toxics, (t) => t.upstream).map((t) => toxicJson(t));
  }

  /**
   * Adds a toxic (a body of Toxiproxy's shape: docs/toxiproxy.md) to frontend `name`'s connections, live
   * ones included; resolves with it once every worker has it. Throws ApiError (400, 404, 409), changing nothing.
   */
  async addToxic(frontend: string, body: unknown): Promise<ToxicJson> {
    let added!: ToxicJson;
    await this.editToxics(frontend, (f) => {
      const { config } = readToxic(body, { mode: f.mode, taken: (n) => f.toxics.some((t) => t.name === n), strict: true });
      added = toxicJson(config);
      return [...f.toxics, config];
    });
    return added;
  }

  /** Changes toxic `name` of `frontend`: its toxicity, and the attributes given (the others kept). Throws ApiError. */
  async updateToxic(frontend: string, name: string, change: ToxicChange): Promise<ToxicJson> {
    let updated!: ToxicJson;
    const edit = (f: FrontendConfig) =>
      f.toxics.map((t) => {
        if (t.name !== name) return t;
        const u = changeToxic(t, change, true);
        updated = toxicJson(u);
        return u;
      });
    await this.editToxics(frontend, edit, name);
    return updated;
  }

  /** Takes toxic `name` off `frontend`. Throws ApiError 404. */
  removeToxic(frontend: string, name: string): Promise<void> {
    return this.editToxics(frontend, (f) => f.toxics.filter((t) => t.name !== name), name);
  }

  private frontend(name: string): FrontendConfig {
    const f = this.plan.frontends.find((x) => x.name === name);
    if (f === undefined) throw new ApiError(404, 'frontend not found');
    return f;
  }

  /** Runs the current plan with frontend `name`'s toxics replaced by `edit`'s; `toxic`: one that must exist (404). */
  private editToxics(name: string, edit: (f: FrontendConfig) => ToxicConfig[], toxic?: string): Promise<void> {
    return this.queued(async () => {
      const f = this.frontend(name);
      if (toxic !== undefined && !f.toxics.some((t) => t.name === toxic)) throw new ApiError(404, 'toxic not found');
      const toxics = edit(f);
      await this.apply({ ...this.plan, frontends: this.plan.frontends.map((x) => (x === f ? { ...f, toxics } : x)) }, true);
    });
  }

  stop(): void {
    this.health.stop();
  }

  /** What the metrics snapshot (metrics.ts) reads. */
  sources(): Sources {
    return {
      tables: this.set.tables(),
      frontends: this.registry.frontends,
      backends: this.registry.backends,
      addresses: this.set.addresses,
      serverState: new Int32Array(this.serverState),
      checked: (id) => this.health.checked(id),
      transitions: (id) => this.health.transitions.get(id) ?? 0,
    };
  }

  /** Server `server` of backend `backend`, or a ProxyError saying which name is unknown. */
  private server(backend: string, server: string): ServerConfig {
    const be = this.registry.backends.find((b): b is BackendConfig => b !== null && b.name === backend);
    if (be === undefined) throw new ProxyError(CODES.BAD_OPTION, `no backend named "${backend}"`);
    const s = be.servers.find((x) => x.name === server);
    if (s === undefined) throw new ProxyError(CODES.BAD_OPTION, `backend "${backend}" has no server named "${server}"`);
    return s;
  }

  /**
   * Sets an operator's state on a server (HAProxy's `set server state`): drain and maint keep new
   * connections away (connections open on it finish), and close its idle pooled ones; ready gives it back to
   * its health. Lasts across reloads while the server stays. Returns the state before and after.
   */
  setServerState(backend: string, server: string, want: AdminState): { from: string; to: string } {
    const id = this.server(backend, server).id;
    const words = new Int32Array(this.serverState);
    const from = serverStateName(Atomics.load(words, id));
    Atomics.and(words, id, ~(SRV.DRAIN | SRV.MAINT));
    if (want !== 'ready') {
      Atomics.or(words, id, want === 'drain' ? SRV.DRAIN : SRV.MAINT);
      this.set.serverDown(id);
    }
    const to = serverStateName(Atomics.load(words, id));
    if (from !== to) this.log.warn(`backend ${backend}/${server}: ${from} -> ${to} (admin)`);
    return { from, to };
  }

  /** Sets a server's weight (0..256; 0 takes no new connections). Lasts across reloads while the server stays. */
  setServerWeight(backend: string, server: string, weight: number): { from: number; to: number } {
    if (!Number.isInteger(weight) || weight < 0 || weight > 256) throw new ProxyError(CODES.BAD_OPTION, `weight must be an integer from 0 to 256, not ${weight}`);
    const s = this.server(backend, server);
    const from = s.weight;
    s.weight = weight;
    this.weights.set(s.id, weight);
    this.set.post({ type: 'weight', id: s.id, weight });
    if (from !== weight) this.log.warn(`backend ${backend}/${server}: weight ${from} -> ${weight} (admin)`);
    return { from, to: weight };
  }

  /** Closes the client connection in worker `worker`'s slot `slot` if that slot still holds generation `gen`. */
  closeConnection(worker: number, slot: number, gen: number): boolean {
    const t = this.set.tables()[worker];
    if (t === undefined || slot < 0 || slot >= t.capacity || t.gen[slot] !== gen || t.fd[slot] < 0) return false;
    return this.set.postTo(worker, { type: 'close', slot, gen });
  }

  /** Sets the log level of the main thread and every worker; returns the one before and after. */
  setLogLevel(name: string): { from: LevelName; to: LevelName } {
    if (!(LEVEL_NAMES as readonly string[]).includes(name)) throw new ProxyError(CODES.BAD_OPTION, `log level must be one of ${LEVEL_NAMES.join(', ')}, not "${name}"`);
    const from = LEVEL_NAMES[this.log.level];
    const level = levelNumber(name);
    this.log.level = level;
    this.set.post({ type: 'log-level', level });
    return { from, to: name as LevelName };
  }

  /** Starts with no frontend: the toxiproxy server's proxies come later (runPlan). */
  static empty(base: Omit<ProxyPlan, 'frontends' | 'backends'>, log: Logger, launch: Launch): Promise<Running> {
    return Running.start({ ...base, frontends: [], backends: [] }, log, launch);
  }

  /** Makes `plan` the running one; `quiet`: a change made through an API, logged at debug rather than info. */
  private async apply(plan: ProxyPlan, quiet = false): Promise<void> {
    if (plan.frontends.some((f: FrontendConfig) => f.mode === 'http')) parserLayout();
    checkAccessLogs(plan.frontends);
    checkToxicModes(plan.frontends);
    for (const [key, now, then] of [
      ['workers', this.plan.workers, plan.workers],
      ['processes', this.plan.processes, plan.processes],
      ['max-connections', this.plan.maxConnections, plan.maxConnections],
      ['admin', this.plan.admin, plan.admin],
      ['admin-token', this.plan.adminToken, plan.adminToken],
    ] as const) {
      if (now === then) continue;
      if (key === 'admin-token') this.log.warn('reload: admin-token changed in the new config: a restart applies it');
      else this.log.warn(`reload: ${key} ${then} in the new config, ${now} running: a restart applies it`);
    }
    const prepared = this.registry.prepare(plan, this.set.addresses);
    // A frontend index is never given twice (registry.ts), and the counters have room for MAX_FRONTENDS.
    if (prepared.frontends.length > MAX_FRONTENDS) {
      throw new ProxyError(CODES.BAD_CONFIG, `more than ${MAX_FRONTENDS} frontends over this process's life: restart it`);
    }
    // An operator's weights stay while their servers do.
    const kept = new Set<number>();
    for (const be of prepared.backends) {
      for (const s of be?.servers ?? []) {
        kept.add(s.id);
        s.weight = this.weights.get(s.id) ?? s.weight;
      }
    }
    for (const id of this.weights.keys()) if (!kept.has(id)) this.weights.delete(id);
    await this.set.reroute(prepared.frontends, prepared.backends, prepared.changes.added, prepared.changes.removed, this.plan.join);
    this.registry.commit(prepared);
    this.health.update(this.registry.backends);
    const p = this.plan;
    this.plan = { ...plan, workers: p.workers, processes: p.processes, maxConnections: p.maxConnections, join: p.join, admin: p.admin, adminToken: p.adminToken };
    const c = prepared.changes;
    const line = `reloaded: ${plan.frontends.length} frontend(s) (${c.added.length} new, ${c.removed.length} taken out), ${plan.backends.length} backend(s)`;
    if (quiet) this.log.debug(line);
    else this.log.info(line);
  }
}

/** HTTP toxics only on HTTP frontends: a config file reports it with its place; this catches any other way in. */
function checkToxicModes(frontends: readonly FrontendConfig[]): void {
  for (const f of frontends) {
    for (const t of f.toxics) {
      const problem = modeProblem(t.type, f.mode);
      if (problem !== null) throw new ProxyError(CODES.BAD_CONFIG, `frontend ${f.name}: toxic ${t.name}: ${problem}`);
    }
  }
}

/**
 * The plan start() runs: from `options.config` (a file's path or a document), with the few options that may
 * go beside it applied over it; else from the flag options, a config of one frontend and one backend.
 */
export async function planFromOptions(options: StartOptions): Promise<{ plan: ProxyPlan; demo: boolean }> {
  if (options.config === undefined) {
    const resolved = await resolveOptions({ logLevel: 'warn', ...options });
    checkAccessLogs(resolved.plan.frontends);
    return resolved;
  }
  const beside = new Set(['config', 'workers', 'drainTimeoutMs', 'logLevel', 'maxConnections', 'join', 'admin', 'adminToken', 'adminFallback']);
  const extra = Object.keys(options).filter((k) => !beside.has(k) && (options as Record<string, unknown>)[k] !== undefined);
  if (extra.length > 0) {
    throw new ProxyError(CODES.BAD_OPTION, `${extra[0]} cannot be given with config: say it in the config (docs/config.md)`);
  }
  const plan = typeof options.config === 'string' ? await loadConfigFile(options.config) : await planFromDocument(options.config);
  const o = await resolveOptions({ workers: options.workers, drainTimeoutMs: options.drainTimeoutMs, maxConnections: options.maxConnections, logLevel: options.logLevel });
  if (options.workers !== undefined) plan.workers = o.plan.workers;
  if (options.drainTimeoutMs !== undefined) plan.drainTimeoutMs = o.plan.drainTimeoutMs;
  if (options.maxConnections !== undefined) plan.maxConnections = o.plan.maxConnections;
  if (options.logLevel !== undefined) plan.logLevel = options.logLevel;
  plan.join = options.join === true;
  checkAccessLogs(plan.frontends);
  for (const a of [options.admin, options.adminFallback]) {
    const problem = a === undefined ? null : adminProblem(a);
    if (problem !== null) throw new ProxyError(CODES.BAD_OPTION, problem);
  }
  if (options.admin !== undefined) plan.admin = options.admin;
  if (options.adminToken !== undefined) plan.adminToken = options.adminToken;
  return { plan, demo: false };
}
