// Fault lanes: where a direction of a toxic connection keeps what it read and has not yet sent. A lane is
// one pool buffer of LANE_BYTES, taken when a read brings bytes and given back once they are all sent, so
// an idle toxic connection holds none. Its first PIECE_AREA bytes are the piece ring, the rest a byte ring:
//
//   [ piece ring: MAX_PIECES x (start, len, due) as Float64 ][ bytes ......................................]
//                                                             ^ DATA_START                        LANE_BYTES ^
//
// A piece is what one read brought (its due time set by the latency toxics when it was read), and never
// wraps round the end of the byte ring: a read goes where the room after the last piece is, or back at the
// start when the room there is larger. Pieces leave in order (head of line, as Toxiproxy's channel does);
// the head piece shrinks from its start as parts of it are sent.

import { BufferPool } from '../core/pools.js';

/** Bytes of a lane: its piece ring and its byte ring. */
export const LANE_BYTES = 256 * 1024;
/** Pieces a lane holds at most; a full ring stops reads (backpressure) until the head piece leaves. */
export const MAX_PIECES = 256;
const PIECE_AREA = 8192; // >= MAX_PIECES * 24, a whole number of Float64
/** Where the byte ring starts in a lane. */
export const DATA_START = PIECE_AREA;
/** A read is worth placing after the last piece only with this much room; else it goes back to the start. */
const MIN_READ = 4096;

export class LanePool {
  private readonly pool: BufferPool;
  /** Per lane: the piece ring as Float64 over the lane's own memory, made with the lane's buffer. */
  private readonly rings: (Float64Array | null)[];
  /** Per lane: index of the head piece, and how many pieces it holds. */
  readonly head: Int32Array;
  readonly count: Int32Array;
  /** Where the next read goes and how much room it has (set by room()). */
  at = 0;

  constructor(max: number, keepIdle: number, ctr: Float64Array) {
    this.pool = new BufferPool(LANE_BYTES, max, keepIdle, ctr);
    this.rings = new Array<Float64Array | null>(max).fill(null);
    this.head = new Int32Array(max);
    this.count = new Int32Array(max);
  }

  /** A lane, empty, or -1 when none is left. */
  acquire(): number {
    const i = this.pool.acquire();
    if (i < 0) return -1;
    if (this.rings[i] === null) {
      const b = this.pool.get(i);
      this.rings[i] = new Float64Array(b.buffer, b.byteOffset, PIECE_AREA / 8);
    }
    this.head[i] = 0;
    this.count[i] = 0;
    return i;
  }

  release(i: number): void {
    this.pool.release(i);
  }

  get excess(): number {
    return this.pool.excess;
  }

  trim(): void {
    this.pool.trim();
  }

  /** The C address of byte `off` of lane i. */
  address(i: number, off: number): number {
    return this.pool.address(i) + off;
  }

  /**
   * Room for the next read in lane i: its size (0 when full), with `at` set to where it goes. Coalescing a
   * read into the last piece is only possible when `at` is that piece's end.
   */
  room(i: number): number {
    const n = this.count[i];
    if (n === MAX_PIECES) return 0;
    if (n === 0) {
      this.at = DATA_START;
      return LANE_BYTES - DATA_START;
    }
    const r = this.rings[i]!;
    const first = r[3 * this.head[i]];
    const li = 3 * ((this.head[i] + n - 1) % MAX_PIECES);
    const lastEnd = r[li] + r[li + 1];
    if (r[li] < first) {
      // Wrapped: the room is between the last piece and the first.
      this.at = lastEnd;
      return first - lastEnd;
    }
    const after = LANE_BYTES - lastEnd;
    const before = first - DATA_START;
    if (after >= MIN_READ || after >= before) {
      this.at = lastEnd;
      return after;
    }
    this.at = DATA_START;
    return before;
  }

  /** Adds `len` bytes just read at `at` (room()'s) as a piece due at `due`; joined to the last one when they can be. */
  add(i: number, at: number, len: number, due: number): void {
    const r = this.rings[i]!;
    const n = this.count[i];
    if (n > 0) {
      const li = 3 * ((this.head[i] + n - 1) % MAX_PIECES);
      if (r[li] + r[li + 1] === at && r[li + 2] === due) {
        r[li + 1] += len;
        return;
      }
    }
    const k = 3 * ((this.head[i] + n) % MAX_PIECES);
    r[k] = at;
    r[k + 1] = len;
    r[k + 2] = due;
    this.count[i] = n + 1;
  }

  /** The head piece's start, length and due time. */
  headStart(i: number): number {
    return this.rings[i]![3 * this.head[i]];
  }

  headLen(i: number): number {
    return this.rings[i]![3 * this.head[i] + 1];
  }

  headDue(i: number): number {
    return this.rings[i]![3 * this.head[i] + 2];
  }

  /** m bytes of the head piece were sent; a piece sent whole leaves the ring. */
  consume(i: number, m: number): void {
    const r = this.rings[i]!;
    const k = 3 * this.head[i];
    if (m < r[k + 1]) {
      r[k] += m;
      r[k + 1] -= m;
      return;
    }
    this.head[i] = (this.head[i] + 1) % MAX_PIECES;
    this.count[i]--;
  }

  /** Every piece may leave by `when`: a toxic that delayed them was taken away (its queued data flushed). */
  dueBy(i: number, when: number): void {
    const r = this.rings[i]!;
    for (let n = 0; n < this.count[i]; n++) {
      const k = 3 * ((this.head[i] + n) % MAX_PIECES) + 2;
      if (r[k] > when) r[k] = when;
    }
  }
}
