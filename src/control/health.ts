// Active health checks, on the main thread (never on a worker's path), as HAProxy's `check inter rise
// fall`: each server of a backend with checks is tried every `interval`, by a TCP connect or by a GET of a
// path answered 2xx or 3xx within `timeout`. `fall` failures in a row take an up server down; `rise`
// successes in a row bring a down server up. The verdict goes to the server states that every worker reads
// (route/routes.ts), with no message; a server going down also has the workers close their idle connections
// to it. Every transition is logged once: here, or by the worker that took a server down for its failed
// connects (route/connect.ts), which a check then finds and goes on from.
//
// Servers start up, as HAProxy's do: traffic flows at once, and a dead one is found by its first `fall`
// checks, or sooner by the connects that fail on it (which the backend's retries send elsewhere).

import http from 'node:http';
import net from 'node:net';
import type { Logger } from '../core/log.js';
import { type BackendConfig, type HealthConfig, SRV, type ServerConfig } from '../route/index.js';
import { formatAddress } from '../sys/index.js';

type Watch = {
  server: ServerConfig;
  backend: string;
  check: HealthConfig;
  /** What this checker last knew; the shared state may have been moved to DOWN by a worker since. */
  up: boolean;
  successes: number;
  failures: number;
  timer: NodeJS.Timeout | null;
  /** The check in flight, to cancel at stop. */
  inFlight: net.Socket | http.ClientRequest | null;
};

export class HealthChecker {
  private readonly watches = new Map<number, Watch>();
  /** Per server id: how often it went down or up (by its checks, or found down after a worker's passive mark). */
  readonly transitions = new Map<number, number>();
  private stopped = false;

  constructor(
    private readonly state: Int32Array,
    private readonly log: Logger,
    /** Called when a server goes down (by a check, or found down by a worker): the workers close its pools. */
    private readonly onDown: (id: number) => void,
  ) {}

  /** Checks the servers of `backends` as they now are: new ones start being checked, gone ones stop. */
  update(backends: readonly (BackendConfig | null)[]): void {
    const keep = new Set<number>();
    for (const be of backends) {
      if (be === null || be.health === null) continue;
      for (const server of be.servers) {
        keep.add(server.id);
        const w = this.watches.get(server.id);
        if (w !== undefined) {
          w.check = be.health;
          continue;
        }
        const watch: Watch = { server, backend: be.name, check: be.health, up: (Atomics.load(this.state, server.id) & SRV.DOWN) === 0, successes: 0, failures: 0, timer: null, inFlight: null };
        this.watches.set(server.id, watch);
        // The first checks are spread over one interval, so that many servers are not all tried at once.
        this.schedule(watch, Math.floor(Math.random() * be.health.intervalMs));
      }
    }
    for (const [id, w] of this.watches) {
      if (keep.has(id)) continue;
      this.cancel(w);
      this.watches.delete(id);
      // Without checks a server counts as up (passive marks need checks to undo them).
      Atomics.and(this.state, id, ~SRV.DOWN);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.watches.values()) this.cancel(w);
    this.watches.clear();
  }

  private counted(id: number): void {
    this.transitions.set(id, (this.transitions.get(id) ?? 0) + 1);
  }

  /** Whether server `id` has checks. */
  checked(id: number): boolean {
    return this.watches.has(id);
  }

  private cancel(w: Watch): void {
    if (w.timer !== null) clearTimeout(w.timer);
    w.timer = null;
    w.inFlight?.destroy();
    w.inFlight = null;
  }

  private schedule(w: Watch, ms: number): void {
    w.timer = setTimeout(() => {
      w.timer = null;
      this.run(w);
    }, ms);
    w.timer.unref();
  }

  private run(w: Watch): void {
    let settled = false;
    const done = (ok: boolean, why: string) => {
      if (settled) return;
      settled = true;
      w.inFlight?.destroy();
      w.inFlight = null;
      if (this.stopped || this.watches.get(w.server.id) !== w) return;
      this.verdict(w, ok, why);
      this.schedule(w, w.check.intervalMs);
    };
    const a = w.server.address;
    const target = a.family === 'unix' ? { path: a.path } : { host: a.host, port: a.port };
    if (w.check.kind === 'tcp') {
      const s = net.connect(target);
      w.inFlight = s;
      s.setTimeout(w.check.timeoutMs, () => done(false, `no connection within ${w.check.timeoutMs} ms`));
      s.once('connect', () => done(true, ''));
      s.once('error', (e: NodeJS.ErrnoException) => done(false, `connect: ${e.code ?? e.message}`));
      return;
    }
    const req = http.request({
      ...(a.family === 'unix' ? { socketPath: a.path } : { host: a.host, port: a.port }),
      method: 'GET',
      path: w.check.path,
      headers: { host: a.family === 'unix' ? 'localhost' : formatAddress(a), 'user-agent': 'ffi-proxy-health-check', connection: 'close' },
      timeout: w.check.timeoutMs,
      agent: false,
    });
    w.inFlight = req;
    req.once('timeout', () => done(false, `no answer within ${w.check.timeoutMs} ms`));
    req.once('error', (e: NodeJS.ErrnoException) => done(false, `GET ${w.check.path}: ${e.code ?? e.message}`));
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      done(status >= 200 && status < 400, `GET ${w.check.path}: ${status}`);
    });
    req.end();
  }

  private verdict(w: Watch, ok: boolean, why: string): void {
    const id = w.server.id;
    const name = `backend ${w.backend}/${w.server.name}`;
    if (w.up && (Atomics.load(this.state, id) & SRV.DOWN) !== 0) {
      // A worker took it down for its failed connects (and said so): the other workers' pools go too.
      w.up = false;
      w.successes = 0;
      this.counted(id);
      this.onDown(id);
    }
    if (ok) {
      w.failures = 0;
      if (w.up || ++w.successes < w.check.rise) return;
      w.up = true;
      this.counted(id);
      Atomics.and(this.state, id, ~SRV.DOWN);
      this.log.info(`${name} is UP: ${w.check.rise} check(s) in a row passed`);
      return;
    }
    w.successes = 0;
    if (!w.up || ++w.failures < w.check.fall) return;
    w.up = false;
    this.counted(id);
    Atomics.or(this.state, id, SRV.DOWN);
    this.log.warn(`${name} is DOWN: ${why} (${w.check.fall} check(s) in a row failed)`);
    this.onDown(id);
  }
}
