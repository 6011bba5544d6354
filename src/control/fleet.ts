// `--processes P`: P proxy processes on the same ports, each with its own workers, table and open-file
// limit, so one machine holds more connections than one process may have files. The parent does no proxying:
//
//   parent: the plan (flags or config) ─> reserve each frontend's port (bound, never listening) ─> demo
//           backend if none given ─> fork P children (fleet-child.js) with the plan as a config document,
//           its ports the reserved ones ─> wait for each one's "ready" ─> supervise; pass reloads on
//   child:  start() with that document, joining the parent's ports ─> "ready" ─> serve (and reload when
//           told) until SIGTERM/SIGINT or until the parent is gone (its IPC channel closes), then drain and exit
//
// Every child binds its workers' listeners to the same ports with SO_REUSEPORT, and the kernel spreads new
// connections over all of them. The parent's reserved sockets settle port 0 and keep the ports from being
// taken between two children's lives; they are not listening, so they are never handed a connection.
//
// Supervision: a child that exits while the fleet is not stopping is logged and started again, at once the
// first time and then with a back-off (0.5 s doubling to 10 s) while it keeps dying within 10 s of its
// start. A child that cannot start at first start fails the whole start with its error. Children run in
// their own process groups, so a terminal's Ctrl-C reaches the parent alone, which sends each child one
// SIGTERM: one drain, not a drain cut short by a second signal.

import { fork, type ChildProcess } from 'node:child_process';
import type { Logger } from '../core/log.js';
import { CODES, ProxyError, type Address, type ErrorCode, checkPortFree, close, formatAddress, reservePort } from '../sys/index.js';
import { loadConfigFile, planFromDocument } from './config-file.js';
import type { StartOptions } from './config.js';
import { startDemoBackend, type DemoBackend } from './demo.js';
import { type ConfigDocument, documentFromPlan } from './document.js';
import type { ProxyPlan } from './plan.js';
import { planFromOptions } from './running.js';
import { restartDelay } from './supervisor.js';
import { TICKET_KEYS_ENV, processTicketKeys } from './tls.js';

export const MAX_PROCESSES = 64;

/** What a child says over IPC: once when it has started (or failed to), then once per reload. */
export type ChildMessage =
  | { type: 'ready'; workers: number; capacityPerWorker: number }
  | { type: 'error'; code: ErrorCode | null; message: string }
  | { type: 'reloaded'; error: string | null };

/** What the parent tells a child after it started: run this config document from now on. */
export type ParentMessage = { type: 'reload'; config: ConfigDocument };

export type Fleet = {
  address: Address;
  port: number;
  backend: Address;
  demoBackend: boolean;
  processes: number;
  /** Worker threads per process, and connections each worker can hold (as the first child reported). */
  workers: number;
  capacityPerWorker: number;
  /** The children's pids, by index (0 while one is being restarted). */
  pids(): number[];
  /** How many times a child was started again after it died. */
  restarts(): number;
  /** SIGTERM to every child (they drain for up to their drain timeout), then waits for all to exit. */
  close(): Promise<void>;
  /** SIGKILL to every child: the second Ctrl-C. */
  kill(): void;
  /** Where each frontend listens, by name (the ports the parent reserved). */
  listening(): { name: string; address: Address }[];
  /**
   * Runs another config in every child (a file's path or a document), the parent reserving the ports of new
   * frontends first. Throws (and changes nothing) when it has a problem or a port is in use; a child that
   * fails to apply it says why, and the error names it.
   */
  reload(config: string | ConfigDocument): Promise<void>;
};

type Child = {
  index: number;
  proc: ChildProcess | null;
  /** It said ready: from then on, its death is a restart, not a failed start. */
  ready: boolean;
  startedAt: number;
  backoffMs: number;
  timer: NodeJS.Timeout | null;
};

export async function startFleet(options: StartOptions, processes: number, log: Logger): Promise<Fleet> {
  if (!Number.isInteger(processes) || processes < 1 || processes > MAX_PROCESSES) {
    throw new ProxyError(CODES.BAD_OPTION, `processes must be a whole number from 1 to ${MAX_PROCESSES}, not ${processes}`);
  }
  // The children check the plan again; checking here first makes a problem one line, not P.
  const { plan, demo: wantDemo } = await planFromOptions(options);
  // Each child has its own counters and tables; one admin endpoint over all of them is not built yet.
  const admin = plan.admin ?? options.adminFallback ?? 'off';
  if (admin !== 'off' && admin !== 'auto') {
    throw new ProxyError(CODES.BAD_OPTION, `the admin endpoint runs with one process only, not with processes ${processes}: give --admin off`);
  }
  if (admin === 'auto') log.debug(`no admin endpoint with ${processes} processes (it runs with one process only)`);
  const ports = new Ports(plan.join);
  ports.reserve(plan);
  let demo: DemoBackend | null = null;
  if (wantDemo) {
    demo = await startDemoBackend(() => formatAddress(plan.frontends[0].listen));
    plan.backends[0].servers[0].address = { family: 'ipv4', host: demo.host, port: demo.port };
  }
  // The children join the ports the parent holds (and one another's), on purpose.
  const childOptions = (p: ProxyPlan): StartOptions => ({ config: documentFromPlan(p), join: true, admin: 'off' });
  const children = new Children(JSON.stringify(childOptions(plan)), processes, log);
  const results = await Promise.all(children.list.map((c) => children.launch(c)));
  const failed = results.findIndex((m) => m.type !== 'ready');
  if (failed >= 0) {
    await children.stop('SIGKILL');
    await demo?.close();
    ports.closeAll();
    const m = results[failed] as Extract<ChildMessage, { type: 'error' }>;
    throw new ProxyError(m.code ?? CODES.SYSCALL, `process ${failed}: ${m.message}`);
  }
  const first = results[0] as Extract<ChildMessage, { type: 'ready' }>;
  const address = plan.frontends[0].listen;
  let current = plan;

  let closing: Promise<void> | null = null;
  return {
    address,
    port: address.family === 'unix' ? 0 : address.port,
    backend: plan.backends[plan.frontends[0].backend].servers[0].address,
    demoBackend: demo !== null,
    processes,
    workers: first.workers,
    capacityPerWorker: first.capacityPerWorker,
    pids: () => children.list.map((c) => c.proc?.pid ?? 0),
    restarts: () => children.restarts,
    listening: () => current.frontends.map((f) => ({ name: f.name, address: f.listen })),
    async reload(config) {
      const next = typeof config === 'string' ? await loadConfigFile(config) : await planFromDocument(config);
      next.workers = plan.workers;
      ports.reserve(next);
      const options = childOptions(next);
      children.options = JSON.stringify(options);
      await children.reload(options.config as ConfigDocument);
      ports.keepOnly(next);
      current = next;
    },
    close() {
      closing ??= (async () => {
        await children.stop('SIGTERM');
        await demo?.close();
        ports.closeAll();
      })();
      return closing;
    },
    kill: () => children.kill('SIGKILL'),
  };
}

/**
 * The ports a fleet's parent holds, one reserved socket per frontend address: it settles port 0 (the plan's
 * listen addresses are then the real ones) and keeps the port the children's while they come and go.
 */
class Ports {
  private readonly held = new Map<string, { fd: number; address: Address }>();
  constructor(private readonly join: boolean) {}

  /** Reserves the port of each of `plan`'s frontends not held yet (a port in use throws), and writes the real addresses into the plan. */
  reserve(plan: ProxyPlan): void {
    const taken: number[] = [];
    try {
      for (const f of plan.frontends) {
        const key = `${f.name}\u0000${formatAddress(f.listen)}`;
        // Held under the address first asked for (port 0, say), or given now as the address it got.
        let h = this.held.get(key) ?? [...this.held.entries()].find(([k, v]) => k.startsWith(`${f.name}\u0000`) && formatAddress(v.address) === formatAddress(f.listen))?.[1];
        if (h === undefined) {
          if (!this.join) checkPortFree(f.listen);
          const r = reservePort(f.listen);
          taken.push(r.fd);
          h = r;
          this.held.set(key, h);
        }
        f.listen = h.address;
      }
    } catch (e) {
      for (const [k, h] of this.held) if (taken.includes(h.fd)) this.held.delete(k);
      for (const fd of taken) close(fd);
      throw e;
    }
  }

  /** Gives back the ports of frontends `plan` no longer has (reserve() wrote its real addresses). */
  keepOnly(plan: ProxyPlan): void {
    const keep = new Set(plan.frontends.map((f) => `${f.name}\u0000${formatAddress(f.listen)}`));
    for (const [k, h] of this.held) {
      if (keep.has(k) || keep.has(`${k.slice(0, k.indexOf('\u0000'))}\u0000${formatAddress(h.address)}`)) continue;
      close(h.fd);
      this.held.delete(k);
    }
  }

  closeAll(): void {
    for (const h of this.held.values()) close(h.fd);
    this.held.clear();
  }
}

/** A fleet's child processes and their supervision: each started, watched, and restarted when it dies. */
class Children {
  readonly list: Child[] = [];
  /** How many times a child was started again after it died. */
  restarts = 0;
  private stopping = false;
  private readonly entry = new URL('../fleet-child.js', import.meta.url);

  constructor(
    /** The children's start options, JSON: a restarted child starts with the config as last reloaded. */
    public options: string,
    processes: number,
    private readonly log: Logger,
  ) {
    for (let i = 0; i < processes; i++) this.list.push({ index: i, proc: null, ready: false, startedAt: 0, backoffMs: 0, timer: null });
  }

  /** Starts child `c` and resolves with its first message, or with an error if it exits before sending one. */
  launch(c: Child): Promise<ChildMessage> {
    const proc = fork(this.entry, [this.options], {
      // The parent's TLS ticket keys, so that a session resumes in any child (in the environment: argv is public).
      env: { ...process.env, FFIP_PROCESS: String(c.index), [TICKET_KEYS_ENV]: Buffer.from(processTicketKeys()).toString('base64') },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      detached: true,
    });
    c.proc = proc;
    c.ready = false;
    c.startedAt = Date.now();
    proc.once('exit', (code, sig) => this.died(c, proc, sig ?? `exit code ${code}`));
    return new Promise<ChildMessage>((resolve) => {
      proc.once('message', (m) => {
        c.ready = (m as ChildMessage).type === 'ready';
        resolve(m as ChildMessage);
      });
      proc.once('exit', (code, sig) =>
        resolve({ type: 'error', code: null, message: `exited during start (${sig ?? `code ${code}`})` }),
      );
    });
  }

  /** Child c's process `proc` exited: once it had said ready, and unless the fleet is stopping, a restart. */
  private died(c: Child, proc: ChildProcess, how: string): void {
    if (c.proc === proc) c.proc = null;
    if (this.stopping || !c.ready) return;
    const lived = Date.now() - c.startedAt;
    c.backoffMs = restartDelay(lived, c.backoffMs);
    this.log.warn(
      `process ${c.index} (pid ${proc.pid}) died (${how}) after ${Math.round(lived / 1000)} s; ` +
        (c.backoffMs ? `restarting in ${c.backoffMs / 1000} s` : 'restarting'),
    );
    c.timer = setTimeout(() => {
      c.timer = null;
      if (this.stopping) return;
      this.restarts++;
      this.launch(c).then((m) => {
        if (m.type === 'ready') this.log.info(`process ${c.index} restarted (pid ${c.proc?.pid})`);
        else if (m.type === 'error') this.log.error(`process ${c.index} could not restart: ${m.message}`);
      });
    }, c.backoffMs);
  }

  kill(sig: NodeJS.Signals): void {
    for (const c of this.list) c.proc?.kill(sig);
  }

  /** Tells every running child to run `config`; rejects with the first child's error, naming it. */
  async reload(config: ConfigDocument): Promise<void> {
    const replies = this.list.map((c) => {
      const proc = c.proc;
      if (proc === null || !c.ready) return Promise.resolve(null); // (re)starting: it gets `options`
      return new Promise<string | null>((resolve) => {
        const onMessage = (m: ChildMessage) => {
          if (m.type !== 'reloaded') return;
          proc.off('message', onMessage);
          proc.off('exit', onExit);
          resolve(m.error === null ? null : `process ${c.index}: ${m.error}`);
        };
        const onExit = () => {
          proc.off('message', onMessage);
          resolve(null); // it died: it restarts with `options`
        };
        proc.on('message', onMessage);
        proc.once('exit', onExit);
        proc.send({ type: 'reload', config } satisfies ParentMessage);
      });
    });
    const errors = (await Promise.all(replies)).filter((e) => e !== null);
    if (errors.length > 0) throw new ProxyError(CODES.BAD_CONFIG, errors[0]!);
  }

  /** No more restarts: `sig` to every child, then waits until each has exited. */
  async stop(sig: NodeJS.Signals): Promise<void> {
    this.stopping = true;
    for (const c of this.list) if (c.timer) clearTimeout(c.timer);
    this.kill(sig);
    await Promise.all(this.list.map((c) => exited(c)));
  }
}

function exited(c: Child): Promise<void> {
  const p = c.proc;
  return p === null || p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise((resolve) => p.once('exit', () => resolve()));
}
