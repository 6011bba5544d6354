// A running proxy on the main thread: its plan, the route tables by stable index (registry.ts), the
// workers (supervisor.ts), the health checks (health.ts), and the changes made while it runs. A reload
// takes a whole new config; addFrontend(), removeFrontend() and setServers() edit the current one and
// reload it. A config that cannot be applied (a problem in it, a port in use) changes nothing.
//
//   reload(config) ──> plan (config-file.ts: every problem, with its place) ──> the tables it would make
//     ──> listeners for the new frontends (a port in use: nothing changed) ──> the workers told (mailbox)
//     ──> the tables committed, the health checks brought in line

import type { Logger } from '../core/log.js';
import { parserLayout } from '../http/parser.js';
import { type FrontendConfig, MAX_SERVERS } from '../route/index.js';
import { CODES, ProxyError, type Address } from '../sys/index.js';
import { loadConfigFile, planFromDocument } from './config-file.js';
import { resolveOptions, type StartOptions } from './config.js';
import { type ConfigDocument, documentFromPlan } from './document.js';
import { HealthChecker } from './health.js';
import type { ProxyPlan } from './plan.js';
import { RouteRegistry } from './registry.js';
import type { WorkerSet, WorkerSetOptions } from './supervisor.js';

/** What start() needs to make the workers once the plan is known. */
export type Launch = (o: Pick<WorkerSetOptions, 'frontends' | 'backends' | 'join' | 'serverState'>) => Promise<WorkerSet>;

export class Running {
  private plan: ProxyPlan;
  private readonly registry = new RouteRegistry();
  private readonly health: HealthChecker;
  private readonly serverState = new SharedArrayBuffer(MAX_SERVERS * 4);
  private set!: WorkerSet;
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
    const next = this.queue.then(async () => {
      const plan = typeof config === 'string' ? await loadConfigFile(config) : await planFromDocument(config);
      await this.apply(plan);
    });
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

  stop(): void {
    this.health.stop();
  }

  private async apply(plan: ProxyPlan): Promise<void> {
    if (plan.frontends.some((f: FrontendConfig) => f.mode === 'http')) parserLayout();
    for (const [key, now, then] of [
      ['workers', this.plan.workers, plan.workers],
      ['processes', this.plan.processes, plan.processes],
      ['max-connections', this.plan.maxConnections, plan.maxConnections],
    ] as const) {
      if (now !== then) this.log.warn(`reload: ${key} ${then} in the new config, ${now} running: a restart applies it`);
    }
    const prepared = this.registry.prepare(plan, this.set.addresses);
    await this.set.reroute(prepared.frontends, prepared.backends, prepared.changes.added, prepared.changes.removed, this.plan.join);
    this.registry.commit(prepared);
    this.health.update(this.registry.backends);
    this.plan = { ...plan, workers: this.plan.workers, processes: this.plan.processes, maxConnections: this.plan.maxConnections, join: this.plan.join };
    const c = prepared.changes;
    this.log.info(`reloaded: ${plan.frontends.length} frontend(s) (${c.added.length} new, ${c.removed.length} taken out), ${plan.backends.length} backend(s)`);
  }
}

/**
 * The plan start() runs: from `options.config` (a file's path or a document), with the few options that may
 * go beside it applied over it; else from the flag options, a config of one frontend and one backend.
 */
export async function planFromOptions(options: StartOptions): Promise<{ plan: ProxyPlan; demo: boolean }> {
  if (options.config === undefined) return resolveOptions({ logLevel: 'warn', ...options });
  const beside = new Set(['config', 'workers', 'drainTimeoutMs', 'logLevel', 'maxConnections', 'join']);
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
  return { plan, demo: false };
}
