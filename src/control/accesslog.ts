// The access log's main-thread side: every DRAIN_MS it takes the records the workers wrote into their rings
// (core/accesslog.ts), formats each in its frontend's format (accesslog-format.ts, bytes straight from the
// records) and appends the lines to its frontend's file (or stdout). Formatting and writing happen here, never on a worker. A file that cannot keep up is not
// waited for: while its stream holds more than MAX_PENDING bytes the rings are left to fill, and the
// workers drop and count what does not fit. Drops are reported (a warning a second at most, and the
// ffi_proxy_access_log_dropped_total metric).
//
//   json      one object per line (the fields are in docs/observability.md)
//   haproxy   HAProxy's httplog and tcplog lines, with the proxy's own timers and termination state
//   combined  nginx's combined format (TCP connections as "TCP frontend backend/server")

import { type WriteStream, closeSync, constants, createWriteStream, openSync } from 'node:fs';
import { CODES, ProxyError } from '../sys/index.js';
import { RING, RING_RECORDS } from '../core/accesslog.js';
import type { Logger } from '../core/log.js';
import type { BackendConfig, FrontendConfig } from '../route/index.js';
import { Formatter, Out, RingView, namesOf } from './accesslog-format.js';

// Every 50 ms: a drain's burst of formatting stays short (a few hundred microseconds under load).
const DRAIN_MS = 50;
const MAX_PENDING = 1024 * 1024;
// A file that failed (a full disk, a removed directory) is tried again this often.
const RETRY_MS = 10_000;

function countLines(b: Buffer): number {
  let n = 0;
  for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
  return n;
}

/**
 * Checks that each access log of `frontends` can be opened for appending (made if missing), so that a
 * wrong path is an error at start or reload rather than lines lost later. A FIFO without a reader yet is
 * fine. Throws ProxyError naming the file.
 */
export function checkAccessLogs(frontends: readonly ({ accessLog: string | null } | null)[]): void {
  for (const f of frontends) {
    const path = f?.accessLog;
    if (!path || path === '-') continue;
    try {
      closeSync(openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK, 0o644));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENXIO') continue; // a FIFO nobody reads yet
      throw new ProxyError(CODES.BAD_OPTION, `access log ${path}: cannot open it for appending (${code ?? (e as Error).message})`);
    }
  }
}

export type AccessLogSources = {
  rings: () => SharedArrayBuffer[];
  frontends: () => readonly (FrontendConfig | null)[];
  backends: () => readonly (BackendConfig | null)[];
};

export class AccessLogWriter {
  private readonly streams = new Map<string, WriteStream | NodeJS.WriteStream>();
  private readonly outs = new Map<string, Out>();
  private readonly views = new WeakMap<SharedArrayBuffer, RingView>();
  private readonly formatter = new Formatter();
  private timer: NodeJS.Timeout | null = null;
  /** Records written to files, and dropped (by the workers, ring full), over the process's life. */
  written = 0;
  private droppedSeen: number[] = [];
  dropped = 0;
  /** Lines formatted for a file that could not be written (counted with the drops). */
  private lost = 0;
  private readonly failed = new Map<string, number>();
  private lastWarn = 0;

  constructor(
    private readonly src: AccessLogSources,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.drain(), DRAIN_MS);
    this.timer.unref();
  }

  /** Takes what is left in the rings, then closes the files. */
  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.drain();
    const closing = [...this.streams.values()].map(
      (s) => new Promise<void>((resolve) => (s === process.stdout ? resolve() : (s as WriteStream).end(resolve))),
    );
    this.streams.clear();
    await Promise.all(closing);
  }

  /** Closes the files, to be opened again on the next line (after a log rotation moved them: SIGUSR1). */
  reopen(): void {
    this.failed.clear();
    for (const [path, s] of this.streams) if (s !== process.stdout) (s as WriteStream).end();
    this.streams.clear();
  }

  /** The files being written, and the counts. */
  report(): { written: number; dropped: number; files: string[] } {
    const files = new Set<string>();
    for (const f of this.src.frontends()) if (f?.accessLog) files.add(f.accessLog);
    return { written: this.written - this.lost, dropped: this.dropped + this.lost, files: [...files] };
  }

  /** Formats and writes every record waiting in every ring. Public for tests. */
  drain(): void {
    const frontends = this.src.frontends();
    if (!frontends.some((f) => f?.accessLog) || this.blocked()) return this.countDrops();
    const names = namesOf(frontends, this.src.backends());
    const used = new Set<Out>();
    for (const ring of this.src.rings()) {
      const hdr = new Int32Array(ring, 0, RING.WORDS);
      const w = Atomics.load(hdr, RING.WRITE);
      let r = Atomics.load(hdr, RING.READ);
      if (r === w) continue;
      let view = this.views.get(ring);
      if (view === undefined) this.views.set(ring, (view = new RingView(ring)));
      for (; r !== w; r = (r + 1) | 0) {
        view.seek(r & (RING_RECORDS - 1));
        const f = frontends[view.fe];
        if (!f?.accessLog) continue;
        let out = this.outs.get(f.accessLog);
        if (out === undefined) this.outs.set(f.accessLog, (out = new Out()));
        this.formatter.line(out, f.accessLogFormat, view, names);
        used.add(out);
        this.written++;
      }
      Atomics.store(hdr, RING.READ, w);
    }
    for (const [path, out] of this.outs) {
      if (!used.has(out)) continue;
      const bytes = out.take();
      const s = this.stream(path);
      if (s !== null) s.write(bytes);
      else this.lost += countLines(bytes);
    }
    this.countDrops();
  }

  private blocked(): boolean {
    for (const s of this.streams.values()) if (s.writableLength > MAX_PENDING) return true;
    return false;
  }

  /** The stream of `path`, opened at its first line; null while it is failed (its lines are dropped). */
  private stream(path: string): WriteStream | NodeJS.WriteStream | null {
    let s = this.streams.get(path);
    if (s !== undefined) return s;
    const failedAt = this.failed.get(path);
    if (failedAt !== undefined && Date.now() - failedAt < RETRY_MS) return null;
    if (path === '-') s = process.stdout;
    else {
      const file = createWriteStream(path, { flags: 'a' });
      file.on('error', (e) => {
        this.log.error(`access log ${path}: ${e.message}; its lines are dropped, and it is tried again every ${RETRY_MS / 1000} s (SIGUSR1: at once)`);
        this.failed.set(path, Date.now());
        if (this.streams.get(path) === file) this.streams.delete(path);
      });
      s = file;
    }
    this.streams.set(path, s);
    return s;
  }

  private countDrops(): void {
    let total = 0;
    this.src.rings().forEach((ring, i) => {
      const n = Atomics.load(new Int32Array(ring, 0, RING.WORDS), RING.DROPPED);
      total += n - (this.droppedSeen[i] ?? 0);
      this.droppedSeen[i] = n;
    });
    if (total === 0) return;
    this.dropped += total;
    const now = Date.now();
    if (now - this.lastWarn >= 1000) {
      this.lastWarn = now;
      this.log.warn(`access log: ${this.dropped} record(s) dropped so far: the workers' rings were full (the log's files could not keep up)`);
    }
  }
}
