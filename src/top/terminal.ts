// The terminal as `ffi-proxy top` uses it, with plain ANSI escapes (xterm's, which every terminal emulator,
// tmux, screen and an ssh session pass through): the alternate screen, a hidden cursor, raw keys, painting a
// frame in place, and putting all of it back. restore() is synchronous and may be called any number of
// times, from any exit path (a key, a signal, an exception, process 'exit'), so the shell never inherits a
// raw terminal with no cursor.

import { writeSync } from 'node:fs';
import type { ReadStream, WriteStream } from 'node:tty';
import type { Line, LineStyle } from './types.js';

const CSI = '\x1b[';
const ENTER = `${CSI}?1049h${CSI}?25l${CSI}2J`; // alternate screen on, cursor hidden, screen cleared
const LEAVE = `${CSI}0m${CSI}?25h${CSI}?1049l`; // attributes reset, cursor shown, alternate screen off
const SGR: Record<LineStyle, string> = {
  plain: '',
  title: `${CSI}1m`,
  head: `${CSI}7m`,
  error: `${CSI}1;31m`,
  bad: `${CSI}31m`,
  warn: `${CSI}33m`,
  dim: `${CSI}2m`,
};

export class Terminal {
  private on = false;
  private onData: ((chunk: string) => void) | null = null;
  private onResize: (() => void) | null = null;

  constructor(
    private readonly out: WriteStream & { fd: number },
    private readonly input: ReadStream,
  ) {}

  /** Columns and rows; 80 × 24 when the terminal does not say. */
  get width(): number {
    return this.out.columns > 0 ? this.out.columns : 80;
  }

  get height(): number {
    return this.out.rows > 0 ? this.out.rows : 24;
  }

  /** Takes the screen: `key` gets each key pressed (escape sequences such as arrows are dropped). */
  enter(key: (k: string) => void, resize: () => void): void {
    this.on = true;
    this.out.write(ENTER);
    if (this.input.isTTY) this.input.setRawMode(true);
    this.input.setEncoding('utf8');
    this.onData = (chunk: string) => {
      if (chunk.startsWith('\x1b') && chunk.length > 1) return;
      for (const k of chunk) key(k);
    };
    this.input.on('data', this.onData);
    this.input.resume();
    this.onResize = resize;
    this.out.on('resize', resize);
  }

  /** Draws the frame over the last one: each line, then clear to its end; then clear below. */
  paint(lines: Line[], clearFirst = false): void {
    if (!this.on) return;
    const w = this.width;
    const body = lines
      .slice(0, this.height)
      .map((l) => {
        const t = l.style === 'head' ? l.text.padEnd(w).slice(0, w) : l.text.slice(0, w);
        const sgr = SGR[l.style];
        return (sgr === '' ? t : `${sgr}${t}${CSI}0m`) + `${CSI}K`;
      })
      // No newline after the last line: one at the bottom row would scroll the screen.
      .join('\r\n');
    this.out.write(`${clearFirst ? `${CSI}2J` : ''}${CSI}H${body}${CSI}J`);
  }

  /** Gives the terminal back as it was: attributes, cursor, main screen, cooked mode. Idempotent. */
  restore(): void {
    if (!this.on) return;
    this.on = false;
    if (this.onData !== null) this.input.off('data', this.onData);
    if (this.onResize !== null) this.out.off('resize', this.onResize);
    try {
      if (this.input.isTTY) this.input.setRawMode(false);
    } catch {
      // The terminal is gone (ssh hung up): nothing to restore on it.
    }
    this.input.pause();
    try {
      // Synchronous, so that it is written even when called from process 'exit'.
      writeSync(this.out.fd, LEAVE);
    } catch {
      // As above.
    }
  }
}
