// Logging for the main thread and the workers. Lines go to stderr with a synchronous write: a worker spends
// its life inside epoll_wait and never runs Node's event loop, so an asynchronous stream would not flush.
//
//   2026-11-25T18:30:00.123Z ffi-proxy[w0] warn: backend 127.0.0.1:9: connect: ECONNREFUSED; closed the client [backend_refused]

import { writeSync } from 'node:fs';
import { termName } from './term.js';

export const LEVEL = { silent: 0, error: 1, warn: 2, info: 3, debug: 4 } as const;
export type LevelName = keyof typeof LEVEL;
/** A rate-limit key: a name, or a termination code (term.ts), which the line then names. */
type Key = string | number;
const NAMES = ['silent', 'error', 'warn', 'info', 'debug'];
/** The levels by number. */
export const LEVEL_NAMES = NAMES as readonly LevelName[];

export class Logger {
  /** The most verbose level printed; the admin endpoint may change it while the proxy runs. */
  level: number;
  private readonly who: string;
  // Rate limiting per key: when the window started, and how many lines were held back in it.
  private readonly windows = new Map<Key, { start: number; held: number; printed: string; level: number }>();

  constructor(level: number, who: string) {
    this.level = level;
    // In a --processes fleet, each child's lines say which process they come from: [p2.w0].
    const proc = process.env.FFIP_PROCESS;
    this.who = proc === undefined ? who : `p${proc}.${who}`;
  }

  log(level: number, msg: string): void {
    if (level > this.level) return;
    const line = `${new Date().toISOString()} ffi-proxy[${this.who}] ${NAMES[level]}: ${msg}\n`;
    try {
      writeSync(2, line);
    } catch {
      // stderr closed or full (EAGAIN on a non-blocking pipe): a lost log line must not stop the proxy.
    }
  }

  error(msg: string): void {
    this.log(LEVEL.error, msg);
  }
  warn(msg: string): void {
    this.log(LEVEL.warn, msg);
  }
  info(msg: string): void {
    this.log(LEVEL.info, msg);
  }
  debug(msg: string): void {
    this.log(LEVEL.debug, msg);
  }

  /**
   * At most one line per `key` per second, so a flood (a full table, a dead backend under load) cannot
   * turn the log into the bottleneck. Lines held back are counted: the next line of the key says how many,
   * and so does flushHeld() once the second is over, if no line of the key comes after them.
   */
  limited(level: number, key: Key, msg: string): void {
    if (!this.admits(level, key)) return;
    const w = this.windows.get(key);
    const held = w ? w.held : 0;
    if (held > 0) this.pending--;
    // A line keyed by a termination code names it, for grep: `... [backend_refused]`.
    const line = typeof key === 'number' ? `${msg} [${termName(key)}]` : msg;
    this.windows.set(key, { start: Date.now(), held: 0, printed: line, level });
    this.log(level, held > 0 ? `${line} (and ${held} more like it in the last second)` : line);
  }

  /**
   * Whether limited(level, key, ...) would print a line now. When it would not (the level is off, or the
   * key's second is not over), the line is counted as held back here, as limited() would count it: a hot
   * path asks this first and builds the line only on a yes (`if (log.admits(l, k)) log.limited(l, k, text)`).
   */
  admits(level: number, key: Key): boolean {
    if (level > this.level) return false;
    const w = this.windows.get(key);
    if (w === undefined || Date.now() - w.start >= 1000) return true;
    if (w.held++ === 0) this.pending++;
    w.level = level;
    return false;
  }

  /** Keys with lines held back whose second is not yet reported. */
  pending = 0;

  /**
   * Reports the lines held back in every window that has ended: the line the window printed, and how many
   * like it followed. Returns the ms until the next window with held lines ends, or -1 if none: the worker
   * bounds its epoll_wait by it, so a flood that stops is still counted in the log.
   */
  flushHeld(now: number): number {
    let next = -1;
    for (const [key, w] of this.windows) {
      if (w.held === 0) continue;
      const left = w.start + 1000 - now;
      if (left > 0) {
        next = next < 0 ? left : Math.min(next, left);
        continue;
      }
      this.log(w.level, `${w.printed} (${w.held} like it in the last second)`);
      this.pending--;
      this.windows.set(key, { start: now, held: 0, printed: w.printed, level: w.level });
    }
    return next;
  }
}

export function levelNumber(name: string): number {
  const n = (LEVEL as Record<string, number>)[name];
  if (n === undefined) throw new RangeError(`unknown log level '${name}'`);
  return n;
}
