// Per-worker pools of fixed-size buffers and of splice pipes. A connection takes one only while it holds
// bytes it could not yet write to its peer (its outbox), so an idle connection holds neither.
//
// Both pools are O(1) stacks of indices. Buffers and pipes are made on first need, up to `max` (the table's
// capacity, since each slot holds at most one of each), and at most `keepIdle` of them are kept once
// returned: a burst does not pin its peak memory or fds forever. Buffer memory beyond that goes back to the
// kernel page by page (madvise) rather than waiting for a garbage collection.
//
// Worker-only: nothing here is shared with other threads except the counters it updates.

import { bufferAddress, close, createPipe, lowMemory, pageSize, releasePages } from '../sys/index.js';
import { CTR } from './counters.js';

export class BufferPool {
  readonly size: number;
  private readonly bufs: (Buffer | null)[] = [];
  // Slab k holds buffers k*SLAB .. k*SLAB+SLAB-1: its whole allocation, viewed from offset 0.
  private readonly slabs: Buffer[] = [];
  private readonly stack: Int32Array;
  private top = 0; // stack[0..top) are free indices
  // Free indices whose pages may still be resident ("warm"); beyond keepIdle, trim() gives their pages back
  // to the kernel (madvise), so a burst does not pin its peak memory, and no garbage collection is needed
  // for it: an idle worker never collects.
  private warm = 0;
  private readonly cold: Uint8Array;
  // C address of each buffer (they never move), for llhttp's positions (HttpParser.execute).
  private readonly addr: Float64Array;
  // Where each buffer starts in its slab's allocation (its byteOffset, known without asking V8).
  private readonly offset: Float64Array;
  private readonly keepIdle: number;
  private readonly ctr: Float64Array;
  private readonly page: number;

  constructor(size: number, max: number, keepIdle: number, ctr: Float64Array) {
    this.page = pageSize();
    if (size % this.page !== 0) throw new RangeError(`buffer size ${size} is not a whole number of ${this.page}-byte pages`);
    this.size = size;
    this.stack = new Int32Array(max);
    this.addr = new Float64Array(max);
    this.offset = new Float64Array(max);
    this.cold = new Uint8Array(max).fill(1); // nothing is resident until its slab is made and it is used
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
    if (this.bufs[i] === null) this.makeSlab(i);
    else if (this.cold[i] === 0) this.warm--;
    this.cold[i] = 0;
    this.ctr[CTR.BUFFERS]++;
    return i;
  }

  get(i: number): Buffer {
    return this.bufs[i] as Buffer;
  }

  /**
   * When buffers i and j are views of one allocation, that allocation (a view of all of its ArrayBuffer),
   * else null; slabOffset(i) is where buffer i starts in it. For
   * http/head.ts's primeCopy: what V8 would be asked otherwise, through a Buffer's `buffer` and
   * `byteOffset` getters, the pool knows from the indices (docs/http.md, "Copies").
   */
  sharedSlab(i: number, j: number): Buffer | null {
    const k = (i / SLAB) | 0;
    return k === ((j / SLAB) | 0) ? this.slabs[k] : null;
  }

  slabOffset(i: number): number {
    return this.offset[i];
  }

  /** The C address of buffer i's first byte. */
  address(i: number): number {
    return this.addr[i];
  }

  release(i: number): void {
    this.warm++;
    this.stack[this.top++] = i;
    this.ctr[CTR.BUFFERS]--;
  }

  /** Free buffers with resident pages beyond keepIdle: trim() gives them back. */
  get excess(): number {
    return this.warm - this.keepIdle;
  }

  /**
   * Gives back the pages of the least recently returned free buffers until keepIdle are left warm. The
   * worker calls it at most once a second while there is an excess, so a steady load, whose buffers come
   * and go around a level, never pays for a page twice, and a burst's memory is back within a second.
   */
  trim(): void {
    for (let k = 0; k < this.top && this.warm > this.keepIdle; k++) {
      const i = this.stack[k]; // the bottom of the stack: returned longest ago
      if (this.cold[i] !== 0) continue;
      // Cannot fail on memory we own; if it did, the pages would merely stay.
      releasePages(this.bufs[i]!);
      this.cold[i] = 1;
      this.warm--;
    }
  }

  /**
   * Buffers are carved SLAB at a time from one allocation, page-aligned (madvise needs it). An allocation
   * this large is mmap'd by malloc, so its pages are only resident once touched: a buffer that only ever
   * held a small message costs a page or two, not 64 KiB.
   */
  private makeSlab(i: number): void {
    const first = i - (i % SLAB);
    const n = Math.min(SLAB, this.bufs.length - first);
    // Below 2 GiB where the platform allows (lowMemory: page-aligned, and the buffers' C addresses are
    // small integers, which the hot calls pass without allocating); else from the heap, aligned by hand.
    const low = lowMemory(n * this.size);
    const mem = low !== null ? low.bytes : Buffer.allocUnsafeSlow(n * this.size + this.page);
    // Either way an ArrayBuffer of its own, which `mem` views from offset 0.
    this.slabs[first / SLAB] = mem;
    const at = low !== null ? low.address : Number(bufferAddress(mem));
    const skew = at % this.page;
    const base = skew === 0 ? 0 : this.page - skew;
    const start = at + base;
    for (let k = 0; k < n; k++) {
      const j = first + k;
      this.bufs[j] = mem.subarray(base + k * this.size, base + (k + 1) * this.size);
      this.addr[j] = start + k * this.size;
      this.offset[j] = base + k * this.size;
      // Other indices of the slab are free already (on the stack): their memory is untouched, i.e. cold.
      if (j !== i) this.cold[j] = 1;
    }
  }
}

/**
 * Buffers per slab: 256 x 64 KiB = 16 MiB of address space, resident only where touched. Free buffers are
 * reused last-out first, so up to 256 in use at once are all in the first slab, and copies between an
 * inbox and an outbox stay inside one ArrayBuffer (copyBytes in http/head.ts: no view allocated).
 */
const SLAB = 256;

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
