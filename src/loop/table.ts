// The connection table: struct-of-arrays over one SharedArrayBuffer per worker.
//
// The main thread allocates the buffer and hands it to the worker, so both see the same memory without
// copying: the worker runs the connections, the main thread reads counters and writes control words.
//
// Byte layout (C = capacity, every column starts on an 8-byte boundary):
//
//   offset            what                          type        written by
//   0                 control words CTL.*           Int32 x 4   CMD: main thread; STATE: worker
//   16                counters CTR.*                Float64 x16 worker only
//   144               fd       (-1 when free)       Int32  x C  worker only
//   ..                gen      (bumped at release)  Uint32 x C  worker only
//   ..                peer     (paired slot or -1)  Int32  x C  worker only
//   ..                next     (free-list link)     Int32  x C  worker only
//   ..                buf      (pool buffer or -1)  Int32  x C  worker only
//   ..                bufOff   (first unsent byte)  Uint32 x C  worker only
//   ..                bufLen   (end of held bytes)  Uint32 x C  worker only
//   ..                pipe     (pool pipe or -1)    Int32  x C  worker only
//   ..                pipeLen  (bytes in the pipe)  Uint32 x C  worker only
//   ..                flags    (FL.*)               Uint16 x C  worker only
//   ..                state    (ST.*)               Uint8  x C  worker only
//   ..                kind     (KIND.*)             Uint8  x C  worker only
//
// 40 bytes a slot; a proxied TCP connection uses two (client and backend).
//
// The buffer/pipe columns of a slot describe its *outbox*: bytes read from this slot's fd that are not yet
// written to its peer. An idle connection has buf == pipe == -1 and holds no memory beyond its 40 bytes.

import { CTL, CTR, KIND, ST, flagNames, kindName, stateName } from './types.js';

const HEADER_BYTES = CTL.COUNT * 4 + CTR.COUNT * 8;
const SLOT_BYTES = 9 * 4 + 2 + 1 + 1;

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** The size of the SharedArrayBuffer a table of `capacity` slots needs. */
export function tableBytes(capacity: number): number {
  // Each column is padded to 8 bytes at most, 12 columns.
  return HEADER_BYTES + capacity * SLOT_BYTES + 12 * 8;
}

export class ConnTable {
  readonly capacity: number;
  readonly ctl: Int32Array;
  readonly ctr: Float64Array;
  readonly fd: Int32Array;
  readonly gen: Uint32Array;
  readonly peer: Int32Array;
  readonly next: Int32Array;
  readonly buf: Int32Array;
  readonly bufOff: Uint32Array;
  readonly bufLen: Uint32Array;
  readonly pipe: Int32Array;
  readonly pipeLen: Uint32Array;
  readonly flags: Uint16Array;
  readonly state: Uint8Array;
  readonly kind: Uint8Array;
  /** Head of the free list, -1 when full. Worker-local: only acquire/release touch it. */
  private freeHead = -1;
  private freeCount = 0;

  /** Views `sab` as a table of `capacity` slots. Call init() once, in the worker, before use. */
  constructor(sab: SharedArrayBuffer, capacity: number) {
    this.capacity = capacity;
    let off = 0;
    const take = <T>(make: (o: number) => T, bytes: number): T => {
      const v = make(off);
      off = align8(off + bytes);
      return v;
    };
    const C = capacity;
    this.ctl = take((o) => new Int32Array(sab, o, CTL.COUNT), CTL.COUNT * 4);
    this.ctr = take((o) => new Float64Array(sab, o, CTR.COUNT), CTR.COUNT * 8);
    this.fd = take((o) => new Int32Array(sab, o, C), C * 4);
    this.gen = take((o) => new Uint32Array(sab, o, C), C * 4);
    this.peer = take((o) => new Int32Array(sab, o, C), C * 4);
    this.next = take((o) => new Int32Array(sab, o, C), C * 4);
    this.buf = take((o) => new Int32Array(sab, o, C), C * 4);
    this.bufOff = take((o) => new Uint32Array(sab, o, C), C * 4);
    this.bufLen = take((o) => new Uint32Array(sab, o, C), C * 4);
    this.pipe = take((o) => new Int32Array(sab, o, C), C * 4);
    this.pipeLen = take((o) => new Uint32Array(sab, o, C), C * 4);
    this.flags = take((o) => new Uint16Array(sab, o, C), C * 2);
    this.state = take((o) => new Uint8Array(sab, o, C), C);
    this.kind = take((o) => new Uint8Array(sab, o, C), C);
    if (off > sab.byteLength) throw new RangeError(`table of ${capacity} slots needs ${off} bytes, got ${sab.byteLength}`);
  }

  /** Marks every slot free and threads the free list 0 -> 1 -> ... so low slots are used first. */
  init(): void {
    this.fd.fill(-1);
    this.peer.fill(-1);
    this.buf.fill(-1);
    this.pipe.fill(-1);
    for (let i = 0; i < this.capacity; i++) this.next[i] = i + 1 < this.capacity ? i + 1 : -1;
    this.freeHead = this.capacity > 0 ? 0 : -1;
    this.freeCount = this.capacity;
  }

  get free(): number {
    return this.freeCount;
  }

  /** O(1): takes a free slot for `fd`, or returns -1 when the table is full. */
  acquire(kind: number, state: number, fd: number): number {
    const i = this.freeHead;
    if (i < 0) return -1;
    this.freeHead = this.next[i];
    this.freeCount--;
    this.next[i] = -1;
    this.kind[i] = kind;
    this.state[i] = state;
    this.fd[i] = fd;
    this.flags[i] = 0;
    this.peer[i] = -1;
    return i;
  }

  /**
   * O(1): frees slot `i`. The slot's buffer and pipe must already be back in their pools. Bumping `gen`
   * makes every event the kernel still holds for the old fd stale (invariant 2 in docs/architecture.md).
   * The fd itself is closed by the caller through closeSlot(), which is the one place that closes it.
   */
  release(i: number): void {
    this.gen[i] = (this.gen[i] + 1) >>> 0;
    this.kind[i] = KIND.NONE;
    this.state[i] = ST.FREE;
    this.fd[i] = -1;
    this.flags[i] = 0;
    this.peer[i] = -1;
    this.bufOff[i] = 0;
    this.bufLen[i] = 0;
    this.pipeLen[i] = 0;
    this.next[i] = this.freeHead;
    this.freeHead = i;
    this.freeCount++;
  }

  /** One line about slot `i`, for logs and debugging views. */
  describe(i: number): string {
    return (
      `#${i}/${this.gen[i]} ${kindName(this.kind[i])} ${stateName(this.state[i])} fd=${this.fd[i]} ` +
      `peer=${this.peer[i]} flags=${flagNames(this.flags[i])} buf=${this.buf[i]}:${this.bufLen[i] - this.bufOff[i]} ` +
      `pipe=${this.pipe[i]}:${this.pipeLen[i]}`
    );
  }
}
