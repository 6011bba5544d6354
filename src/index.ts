// The library: `const proxy = await start({ listen, backend, mode })`, for test suites and embedding.
// The CLI (cli.ts) is a thin layer over this.

import type { Mode, StartOptions } from './control/config.js';
import type { ConfigDocument } from './control/document.js';
import { AccessLogWriter } from './control/accesslog.js';
import { AdminServer } from './control/admin.js';
import { DEFAULT_ADMIN } from './control/config.js';
import { Running, planFromOptions } from './control/running.js';
import type { ToxicBody, ToxicChange, ToxicJson } from './control/config-toxics.js';
import { DEFAULT_BACKLOG, WorkerSet, type Stats, type WorkerStats } from './control/supervisor.js';
import { Logger, levelNumber } from './core/log.js';
import { startDemoBackend, type DemoBackend } from './control/demo.js';
import { parserLayout } from './http/parser.js';
import { backendReserve } from './http/state.js';
import { CODES, ProxyError, type Address, formatAddress } from './sys/index.js';
import { BUFFER_SIZE, planCapacity } from './control/capacity.js';

export { planCapacity } from './control/capacity.js';

export type { StartOptions, Mode, SpliceMode } from './control/config.js';
export type { Stats, WorkerStats } from './control/supervisor.js';
export type { Address } from './sys/index.js';
export { CODES, ProxyError, SysError } from './sys/index.js';
export { DEFAULTS } from './control/config.js';
export type { ConfigDocument } from './control/document.js';
export { ConfigError } from './control/config-file.js';
export { ApiError, type ToxicJson as Toxic, type ToxicBody, type ToxicChange } from './control/config-toxics.js';
// The toxiproxy server (docs/toxiproxy.md); also `ffi-proxy/toxiproxy`.
export { toxiproxy, TOXIPROXY_VERSION, type ToxiproxyOptions, type ToxiproxyServer } from './control/toxiproxy-api.js';

export type Proxy = {
  /** Where it listens, with the real port when 0 was asked for. */
  address: Address;
  host: string;
  port: number;
  backend: Address;
  /** True when no backend was given and the built-in demo backend answers. */
  demoBackend: boolean;
  mode: Mode;
  workers: number;
  /**
   * Connections each worker can hold at once (from the open-file limit): in TCP mode client/backend pairs,
   * in HTTP mode client connections (some slots are kept for backend connections).
   */
  capacityPerWorker: number;
  /** Counters summed over the workers, read from the shared tables without stopping anything. */
  stats(): Stats;
  /** Per worker: accepted and open connections, state, and how often it was restarted after dying. */
  workerStats(): WorkerStats[];
  /** Where each frontend listens, by name, with the real port when 0 was asked for. */
  listening(): { name: string; address: Address }[];
  /** Where the admin endpoint listens (docs/observability.md); null when it is off. */
  admin: Address | null;
  /** Access log lines written, and records dropped because the workers' rings were full. */
  accessLogStats(): { written: number; dropped: number; files: string[] };
  /** Closes the access log files, to open them again at the next line (after logrotate moved them). */
  reopenLogs(): void;
  /**
   * Runs another config from now on (a file's path, or a document as in a config file): new frontends start
   * listening, removed ones stop accepting and their connections finish, changed backends apply to new
   * connections; unchanged listeners keep their sockets. A config with a problem, or a port in use, throws
   * (ProxyError) and changes nothing. docs/config.md.
   */
  reload(config: string | ConfigDocument): Promise<void>;
  /** Adds a frontend (a document as in a config's `frontends`); resolves with where it listens. */
  addFrontend(frontend: ConfigDocument): Promise<Address>;
  /** Takes a frontend out by name: it stops accepting; its connections finish. */
  removeFrontend(name: string): Promise<void>;
  /** Gives a backend these servers: addresses, or documents as in a config's `servers`. */
  setServers(backend: string, servers: (string | ConfigDocument)[]): Promise<void>;
  /**
   * Adds a toxic (a fault: docs/toxiproxy.md) to a frontend's connections, live ones included, in Toxiproxy's
   * shape: `{ type: 'latency', attributes: { latency: 100 } }` is `latency_downstream`. Resolves with it, every
   * attribute filled in, once every worker has it. Throws ApiError (status 400, 404 or 409), changing nothing.
   */
  addToxic(frontend: string, toxic: ToxicBody): Promise<ToxicJson>;
  /** Changes a toxic's toxicity and the attributes given (the others stay). Throws ApiError. */
  updateToxic(frontend: string, name: string, change: ToxicChange): Promise<ToxicJson>;
  /** Takes a toxic off a frontend. Throws ApiError (404). */
  removeToxic(frontend: string, name: string): Promise<void>;
  /** A frontend's toxics: upstream ones first, each in the order it was added. Throws ApiError (404). */
  toxics(frontend: string): ToxicJson[];
  /**
   * Stops accepting, lets open connections finish for up to `drainTimeoutMs` (default: the start option),
   * closes the rest and ends the workers. Safe to call more than once.
   */
  close(drainTimeoutMs?: number): Promise<void>;
};

export async function start(options: StartOptions = {}): Promise<Proxy> {
  if (process.platform !== 'linux') {
    throw new ProxyError(CODES.UNSUPPORTED_PLATFORM, `ffi-proxy runs on Linux only (this is ${process.platform})`);
  }
  const { plan, demo: wantDemo } = await planFromOptions(options);
  // HTTP reads llhttp's struct from the node binary: check it here, once, so an unknown layout is one clear
  // line at start rather than a failure in every worker.
  if (plan.frontends.some((f) => f.mode === 'http')) parserLayout();
  const log = new Logger(levelNumber(plan.logLevel), 'main');
  const { slots, pipes } = planCapacity(plan.workers, plan.maxConnections);

  let demo: DemoBackend | null = null;
  let running: Running | null = null;
  if (wantDemo) {
    demo = await startDemoBackend(() => formatAddress(running ? running.workers.address : plan.frontends[0].listen));
    plan.backends[0].servers[0].address = { family: 'ipv4', host: demo.host, port: demo.port };
  }
  try {
    running = await Running.start(plan, log, (o) =>
      WorkerSet.start({ ...o, workers: plan.workers, capacity: slots, bufferSize: BUFFER_SIZE, maxPipes: pipes, backlog: DEFAULT_BACKLOG, log }),
    );
  } catch (e) {
    await demo?.close();
    throw e;
  }
  const r = running;
  const sources = () => r.sources();
  const accessLog = new AccessLogWriter({ rings: () => r.workers.rings(), frontends: () => sources().frontends, backends: () => sources().backends }, log);
  accessLog.start();
  let admin: AdminServer | null = null;
  try {
    admin = await startAdmin(plan.admin ?? options.adminFallback ?? 'off', plan.adminToken, r, log, accessLog);
  } catch (e) {
    r.stop();
    await r.workers.stop(0);
    await accessLog.stop();
    await demo?.close();
    throw e;
  }
  const workers = r.workers;
  const address = workers.address;
  const mode = plan.frontends[0].mode;
  let closing: Promise<void> | null = null;
  return {
    address,
    host: address.family === 'unix' ? '' : address.host,
    port: address.family === 'unix' ? 0 : address.port,
    backend: plan.backends[plan.frontends[0].backend].servers[0].address,
    demoBackend: demo !== null,
    mode,
    workers: plan.workers,
    // TCP: a connection is a client and its backend. HTTP: clients, with some slots kept for backends.
    capacityPerWorker: mode === 'http' ? slots - 2 - backendReserve(slots) : Math.floor((slots - 2) / 2),
    stats: () => workers.stats(),
    workerStats: () => workers.workerStats(),
    listening: () => r.listening(),
    admin: admin?.address ?? null,
    accessLogStats: () => accessLog.report(),
    reopenLogs: () => accessLog.reopen(),
    reload: (config) => r.reload(config),
    addFrontend: (frontend) => r.addFrontend(frontend),
    removeFrontend: (name) => r.removeFrontend(name),
    setServers: (backend, servers) => r.setServers(backend, servers),
    addToxic: (frontend, toxic) => r.addToxic(frontend, toxic),
    updateToxic: (frontend, name, change) => r.updateToxic(frontend, name, change),
    removeToxic: (frontend, name) => r.removeToxic(frontend, name),
    toxics: (frontend) => r.toxics(frontend),
    close(drainTimeoutMs = r.current().drainTimeoutMs) {
      closing ??= (async () => {
        await admin?.close();
        r.stop();
        await workers.stop(drainTimeoutMs);
        await accessLog.stop();
        await demo?.close();
      })();
      return closing;
    },
  };
}


/** The admin endpoint `spec` asks for (`off`, `auto` or HOST:PORT); `auto` gives way, with a warning, to whatever holds its port. */
async function startAdmin(spec: string, token: string | null, r: Running, log: Logger, accessLog: AccessLogWriter): Promise<AdminServer | null> {
  if (spec === 'off') return null;
  const auto = spec === 'auto';
  try {
    return await AdminServer.start({ listen: auto ? DEFAULT_ADMIN : spec, token }, r, log, { accessLog: () => accessLog.report() });
  } catch (e) {
    if (!auto || (e as { cause?: NodeJS.ErrnoException }).cause?.code !== 'EADDRINUSE') throw e;
    log.info(`no admin endpoint: ${DEFAULT_ADMIN} is in use (give --admin HOST:PORT, or --admin off)`);
    return null;
  }
}
