// Per-worker pools of fixed-size buffers and of splice pipes. A connection takes one only while it holds
// bytes it could not yet write to its peer (its outbox), so an idle connection holds neither.
//
// Both pools are O(1) stacks of indices. Buffers and pipes are made on first need, up to `max` (the table's
// capacity, since each slot holds at most one of each), and at most `keepIdle` of them are kept once
// returned: a burst does not pin its peak memory or fds forever.
//
// Worker-only: nothing here is shared with other threads except the counters it updates.

import { close, createPipe } from '../sys/index.js';
import { CTR } from './types.js';

export class BufferPool {
  readonly size: number;
  private readonly bufs: (Buffer | null)[] = [];
  private readonly stack: Int32Array;
  private top = 0; // stack[0..top) are free indices
  private idle = 0; // how many free indices have a Buffer behind them
  private readonly keepIdle: number;
  private readonly ctr: Float64Array;

  constructor(size: number, max: number, keepIdle: number, ctr: Float64Array) {
    this.size = size;
    this.stack = new Int32Array(max);
    this.keepIdle = keepIdle;
    this.ctr = ctr;
    // Every index starts free and empty; pushed in reverse so index 0 comes out first.
    for (let i = max - 1; i >= 0; i--) this.stack[this.top++] = i;
    this.bufs.length = max;
    this.bufs.fill(null);
  }

  /** A buffer index, or -1 when all `max` are in use. */
  acquire(): number {
    if (this.top === 0) return -1;
    const i = this.stack[--this.top];
    if (this.bufs[i] === null) this.bufs[i] = Buffer.allocUnsafeSlow(this.size);
    else this.idle--;
    this.ctr[CTR.BUFFERS]++;
    return i;
  }

  get(i: number): Buffer {
    return this.bufs[i] as Buffer;
  }

  release(i: number): void {
    if (this.idle >= this.keepIdle) this.bufs[i] = null;
    else this.idle++;
    this.stack[this.top++] = i;
    this.ctr[CTR.BUFFERS]--;
  }
}

export class PipePool {
  readonly size: number;
  /** Read and write ends of pipe i; -1 when pipe i is not open. */
  readonly rfd: Int32Array;
  readonly wfd: Int32Array;
  private readonly stack: Int32Array;
  private top = 0;
  private idle = 0;
  private readonly keepIdle: number;
  private readonly ctr: Float64Array;
  private readonly fds = new Int32Array(2);
  /** The errno of the last pipe2() that failed, for the log (EMFILE is the usual one). */
  lastError = 0;

  constructor(size: number, max: number, keepIdle: number, ctr: Float64Array) {
    this.size = size;
    this.rfd = new Int32Array(max).fill(-1);
    this.wfd = new Int32Array(max).fill(-1);
    this.stack = new Int32Array(max);
    this.keepIdle = keepIdle;
    this.ctr = ctr;
    for (let i = max - 1; i >= 0; i--) this.stack[this.top++] = i;
  }

  /** An empty pipe's index, or -1 when none can be had (all in use, or no fd left): copy instead. */
  acquire(): number {
    if (this.top === 0) return -1;
    const i = this.stack[this.top - 1];
    if (this.rfd[i] < 0) {
      const r = createPipe(this.size, this.fds);
      if (r < 0) {
        this.lastError = -r;
        return -1;
      }
      this.rfd[i] = this.fds[0];
      this.wfd[i] = this.fds[1];
      this.ctr[CTR.PIPES_OPEN]++;
    } else {
      this.idle--;
    }
    this.top--;
    this.ctr[CTR.PIPES]++;
    return i;
  }

  /**
   * Returns pipe i. A pipe that still holds bytes (its connection closed mid-transfer) is closed, never
   * reused: the next user would forward someone else's bytes.
   */
  release(i: number, holdsBytes: boolean): void {
    if (holdsBytes || this.idle >= this.keepIdle) {
      close(this.rfd[i]);
      close(this.wfd[i]);
      this.rfd[i] = -1;
      this.wfd[i] = -1;
      this.ctr[CTR.PIPES_OPEN]--;
    } else {
      this.idle++;
    }
    this.stack[this.top++] = i;
    this.ctr[CTR.PIPES]--;
  }

  /** Closes every idle pipe (at worker exit). */
  closeAll(): void {
    for (let i = 0; i < this.rfd.length; i++) {
      if (this.rfd[i] >= 0) {
        close(this.rfd[i]);
        close(this.wfd[i]);
        this.rfd[i] = this.wfd[i] = -1;
      }
    }
  }
}
