// `ffi-proxy top`: a live terminal view of a running proxy, read from its admin endpoint once a second
// (GET /stats and GET /connections; client.ts), drawn by render.ts, painted by terminal.ts. A client of
// the endpoint only: it imports nothing of src/ outside this folder.
//
//   start ──> poll ──> paint ──> wait interval ──> poll ...      (a key paints at once; a new sort polls)
//               └─ failed: the error on screen, over the last good answer; retried the next interval
//   q, Ctrl-C, SIGINT/SIGTERM/SIGHUP, an exception ──> restore the terminal ──> exit
//
// With --once, or when stdout is not a terminal, it prints one plain-text frame and exits: 0, or 1 with one
// line on stderr when the endpoint cannot be read (2 for a bad flag).

import type { ReadStream, WriteStream } from 'node:tty';
import { AdminClient, TOP_ERRORS, TopError, parseTarget } from './client.js';
import { cpuPercent, frame, text } from './render.js';
import { Terminal } from './terminal.js';
import { SORTS, type Sort, type Stats, type View } from './types.js';

export type TopOptions = {
  /** HOST:PORT of the admin endpoint; 127.0.0.1:9901 (the CLI's default) when not given. */
  admin?: string;
  token?: string;
  /** Seconds between polls. */
  interval?: number;
  once?: boolean;
};

export const DEFAULT_ADMIN = '127.0.0.1:9901';
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
/** A frame for a pipe or a file, when neither COLUMNS nor LINES says otherwise. */
const PLAIN_SIZE = { width: 120, height: 40 };

/** Runs top until the user quits (or, --once, for one frame); resolves with the exit code. */
export async function runTop(o: TopOptions): Promise<number> {
  const interval = o.interval ?? 1;
  if (!Number.isFinite(interval) || interval < 0.1) return complain(`--interval must be a number of seconds of 0.1 or more, not ${o.interval}`, EXIT_USAGE);
  let client: AdminClient;
  try {
    if (o.admin === 'off') throw new TopError(TOP_ERRORS.BAD_ADDRESS, '--admin off: top needs the admin endpoint\'s HOST:PORT');
    client = new AdminClient(parseTarget(o.admin ?? DEFAULT_ADMIN), o.token, Math.max(2000, interval * 1000));
  } catch (e) {
    return complain((e as Error).message, EXIT_USAGE);
  }
  if (o.once || !process.stdout.isTTY) return printOnce(client);
  return new Live(client, new Terminal(process.stdout as WriteStream & { fd: number }, process.stdin as ReadStream), interval * 1000).run();
}

function complain(msg: string, code: number): number {
  process.stderr.write(`ffi-proxy: top: ${msg.replace(/\s*\n\s*/g, ' ')}\n`);
  return code;
}

/** One plain-text frame on stdout, sized by the terminal, or COLUMNS and LINES, or PLAIN_SIZE. */
async function printOnce(client: AdminClient): Promise<number> {
  const size = (tty: number | undefined, env: string | undefined, dflt: number) => (tty && tty > 0 ? tty : Number(env) > 0 ? Number(env) : dflt);
  const width = size(process.stdout.columns, process.env.COLUMNS, PLAIN_SIZE.width);
  const height = size(process.stdout.rows, process.env.LINES, PLAIN_SIZE.height);
  try {
    const p = await client.poll(height, 'age');
    const view: View = { target: client.target.label, stats: p.stats, connections: p.connections, cpuPercent: cpuPercent(null, p.stats), error: null, sort: 'age', help: false };
    process.stdout.write(text(frame(view, width, height)));
    return 0;
  } catch (e) {
    return complain((e as Error).message, EXIT_FAILURE);
  } finally {
    client.close();
  }
}

/** The live view: polls, paints, takes keys, and gives the terminal back on every way out. */
class Live {
  private readonly view: View;
  private prev: Stats | null = null;
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  private again = false;
  private stopped = false;
  private finish: (code: number) => void = () => {};

  constructor(
    private readonly client: AdminClient,
    private readonly term: Terminal,
    private readonly intervalMs: number,
  ) {
    this.view = { target: client.target.label, stats: null, connections: null, cpuPercent: null, error: null, sort: 'age', help: false };
  }

  run(): Promise<number> {
    const done = new Promise<number>((resolve) => (this.finish = resolve));
    const fatal = (e: unknown) => this.stop(EXIT_FAILURE, `ffi-proxy: top: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.on('exit', this.restore);
    process.on('uncaughtException', fatal);
    process.on('unhandledRejection', fatal);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => this.stop(0));
    try {
      this.term.enter((k) => this.key(k), () => this.paint(true));
      this.paint();
      void this.poll();
    } catch (e) {
      fatal(e);
    }
    return done;
  }

  private readonly restore = () => this.term.restore();

  private async poll(): Promise<void> {
    if (this.stopped) return;
    if (this.polling) {
      this.again = true;
      return;
    }
    this.polling = true;
    if (this.timer !== null) clearTimeout(this.timer);
    const started = Date.now();
    try {
      const p = await this.client.poll(this.term.height, this.view.sort);
      this.view.cpuPercent = cpuPercent(this.prev, p.stats);
      this.prev = p.stats;
      Object.assign(this.view, { stats: p.stats, connections: p.connections, error: null });
    } catch (e) {
      this.view.error = `${(e as Error).message} (retrying every ${this.intervalMs / 1000}s)`;
    }
    this.polling = false;
    if (this.stopped) return;
    this.paint();
    const wait = this.again ? 0 : Math.max(0, this.intervalMs - (Date.now() - started));
    this.again = false;
    this.timer = setTimeout(() => void this.poll(), wait);
  }

  private key(k: string): void {
    if (k === 'q' || k === 'Q' || k === '\x03') return this.stop(0);
    if (k === '\x0c') return this.paint(true); // Ctrl-L
    if (this.view.help) {
      this.view.help = false;
      return this.paint();
    }
    if (k === 'h' || k === '?') {
      this.view.help = true;
      return this.paint();
    }
    const next: Record<string, Sort> = { a: 'age', b: 'bytes', i: 'idle', s: SORTS[(SORTS.indexOf(this.view.sort) + 1) % SORTS.length] };
    if (next[k] === undefined || next[k] === this.view.sort) return;
    this.view.sort = next[k];
    this.paint();
    void this.poll();
  }

  private paint(clearFirst = false): void {
    if (!this.stopped) this.term.paint(frame(this.view, this.term.width, this.term.height), clearFirst);
  }

  private stop(code: number, message = ''): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.term.restore();
    this.client.close();
    if (message !== '') process.stderr.write(message);
    this.finish(code);
  }
}
