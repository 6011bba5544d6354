// `--processes P`: P proxy processes on one port, each with its own workers, table and open-file limit, so
// one machine holds more connections than one process may have files. The parent does no proxying:
//
//   parent: check options ─> reserve the port (bound, never listening) ─> demo backend if none given
//           ─> fork P children (fleet-child.js) ─> wait for each one's "ready" ─> supervise
//   child:  start() with the resolved listen and backend addresses ─> "ready" ─> serve until SIGTERM/SIGINT
//           or until the parent is gone (its IPC channel closes), then drain and exit
//
// Every child binds its workers' listeners to the same port with SO_REUSEPORT, and the kernel spreads new
// connections over all of them. The parent's reserved socket settles port 0 and keeps the port from being
// taken between two children's lives; it is not listening, so it is never handed a connection.
//
// Supervision: a child that exits while the fleet is not stopping is logged and started again, at once the
// first time and then with a back-off (0.5 s doubling to 10 s) while it keeps dying within 10 s of its
// start. A child that cannot start at first start fails the whole start with its error. Children run in
// their own process groups, so a terminal's Ctrl-C reaches the parent alone, which sends each child one
// SIGTERM: one drain, not a drain cut short by a second signal.

import { fork, type ChildProcess } from 'node:child_process';
import type { Logger } from '../core/log.js';
import { startDemoBackend, type DemoBackend } from './demo.js';
import { CODES, ProxyError, type Address, type ErrorCode, checkPortFree, close, formatAddress, reservePort } from '../sys/index.js';
import { resolveOptions, type StartOptions } from './config.js';
import { restartDelay } from './supervisor.js';

export const MAX_PROCESSES = 64;

/** What a child says over IPC: once when it has started (or failed to), never after. */
export type ChildMessage =
  | { type: 'ready'; workers: number; capacityPerWorker: number }
  | { type: 'error'; code: ErrorCode | null; message: string };

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
  // The children check the options again; checking here first makes a bad flag one line, not P.
  const o = await resolveOptions(options);
  if (!o.join) checkPortFree(o.frontend.listen);
  const reserved = reservePort(o.frontend.listen);
  const address = reserved.address;
  let demo: DemoBackend | null = null;
  let backend = o.backend;
  if (backend === null) {
    demo = await startDemoBackend(() => formatAddress(address));
    backend = { family: 'ipv4', host: demo.host, port: demo.port };
  }
  // Strings, as StartOptions takes them; JSON on the child's command line.
  // The children join the port the parent holds (and one another), on purpose.
  const childOptions: StartOptions = { ...options, listen: formatAddress(address), backend: formatAddress(backend), join: true };
  const children = new Children(JSON.stringify(childOptions), processes, log);
  const results = await Promise.all(children.list.map((c) => children.launch(c)));
  const failed = results.findIndex((m) => m.type !== 'ready');
  if (failed >= 0) {
    await children.stop('SIGKILL');
    await demo?.close();
    close(reserved.fd);
    const m = results[failed] as Extract<ChildMessage, { type: 'error' }>;
    throw new ProxyError(m.code ?? CODES.SYSCALL, `process ${failed}: ${m.message}`);
  }
  const first = results[0] as Extract<ChildMessage, { type: 'ready' }>;

  let closing: Promise<void> | null = null;
  return {
    address,
    port: address.family === 'unix' ? 0 : address.port,
    backend,
    demoBackend: demo !== null,
    processes,
    workers: first.workers,
    capacityPerWorker: first.capacityPerWorker,
    pids: () => children.list.map((c) => c.proc?.pid ?? 0),
    restarts: () => children.restarts,
    close() {
      closing ??= (async () => {
        await children.stop('SIGTERM');
        await demo?.close();
        close(reserved.fd);
      })();
      return closing;
    },
    kill: () => children.kill('SIGKILL'),
  };
}

/** A fleet's child processes and their supervision: each started, watched, and restarted when it dies. */
class Children {
  readonly list: Child[] = [];
  /** How many times a child was started again after it died. */
  restarts = 0;
  private stopping = false;
  private readonly entry = new URL('../fleet-child.js', import.meta.url);

  constructor(
    private readonly options: string,
    processes: number,
    private readonly log: Logger,
  ) {
    for (let i = 0; i < processes; i++) this.list.push({ index: i, proc: null, ready: false, startedAt: 0, backoffMs: 0, timer: null });
  }

  /** Starts child `c` and resolves with its first message, or with an error if it exits before sending one. */
  launch(c: Child): Promise<ChildMessage> {
    const proc = fork(this.entry, [this.options], {
      env: { ...process.env, FFIP_PROCESS: String(c.index) },
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
        else this.log.error(`process ${c.index} could not restart: ${m.message}`);
      });
    }, c.backoffMs);
  }

  kill(sig: NodeJS.Signals): void {
    for (const c of this.list) c.proc?.kill(sig);
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
