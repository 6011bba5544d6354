// The connection table: struct-of-arrays over one SharedArrayBuffer per worker.
//
// The main thread allocates the buffer and hands it to the worker, so both see the same memory without
// copying: the worker runs the connections and writes every column; the main thread reads the counters and
// the worker's state word (and, after a worker died, the fds it left).
//
// Byte layout (C = capacity, N = counterSlots(); every column starts on an 8-byte boundary):
//
//   offset            what                          type        meaning
//   0                 control words CTL.*           Int32 x 4   the worker's state (WSTATE)
//   16                counters (counters.ts)        Float64 x N worker block, then terminations by code
//   16 + 8N           born     (clock ms)           Float64 x C client: accepted; backend: connect started
//   ..                since    (clock ms)           Float64 x C the current phase's start (below)
//   ..                seen     (clock ms)           Float64 x C client: when bytes last moved either way
//   ..                up       (bytes)              Float64 x C client: bytes from it, forwarded
//   ..                down     (bytes)              Float64 x C client: bytes forwarded to it
//   ..                fd       (-1 when free)       Int32  x C
//   ..                gen      (bumped at release)  Uint32 x C
//   ..                peer     (paired slot or -1)  Int32  x C
//   ..                next     (free-list link)     Int32  x C
//   ..                buf      (pool buffer or -1)  Int32  x C  outbox
//   ..                bufOff   (first unsent byte)  Uint32 x C  outbox
//   ..                bufLen   (end of held bytes)  Uint32 x C  outbox
//   ..                pipe     (pool pipe or -1)    Int32  x C  outbox
//   ..                pipeLen  (bytes in the pipe)  Uint32 x C  outbox
//   ..                flags    (FL.*)               Uint16 x C
//   ..                fe       (frontend index)     Uint16 x C
//   ..                srv      (server id)          Uint16 x C  backend slots: which server
//   ..                state    (ST.*)               Uint8  x C
//   ..                kind     (KIND.*)             Uint8  x C
//   ..                proto    (PROTO.*)            Uint8  x C  which protocol handles its events
//   ..                xprt     (XPRT.*)             Uint8  x C  how its bytes reach the fd
//   ..                term     (TERM.*)             Uint8  x C  client slots: why it is ending, once known
//   ..                lineLen  (bytes)              Uint16 x C  HTTP client: its current request line's length
//   ..                line     (bytes)              LINE_BYTES x C  HTTP client: that line's first LINE_BYTES
//
// 153 bytes a slot; a proxied connection uses two (client and backend). A column's pages are made resident
// only as slots are used (the free list hands out low slots first).
//
// Clock: milliseconds since the Unix epoch with a fraction (performance.timeOrigin + performance.now(), read
// once per epoll batch by the loop), comparable between threads. `since` is when the slot's current phase
// started: a client's accept (TCP) or its current request's complete head (HTTP), a backend's connect.
// The latency histograms (counters.ts) are measured from it, and the admin endpoint's connection list
// reads it with born, seen, up, down and line, which only the worker writes (invariant 3).
//
// The buf/pipe columns of a slot describe its *outbox*: bytes read from this slot's fd that are not yet
// written to its peer. Beside them, worker-local rather than shared (init() makes them), each slot has an
// *inbox*: `inb` (a pool buffer or -1) and `ilen` (bytes in it), bytes read from its fd and not yet parsed
// or forwarded, used by HTTP and by the PROXY header intake. An idle connection holds neither box, only its
// table bytes.

import { CTL, KIND, PROTO, ST, flagNames, kindName, protoName, stateName } from './types.js';
import { counterSlots } from './counters.js';

const HEADER_BYTES = CTL.COUNT * 4 + counterSlots() * 8;
/** Bytes of an HTTP request line the table keeps per client (method and target; longer ones are cut). */
export const LINE_BYTES = 64;
const SLOT_BYTES = 5 * 8 + 9 * 4 + 4 * 2 + 5 * 1 + LINE_BYTES;
const COLUMNS = 24;

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** The size of the SharedArrayBuffer a table of `capacity` slots needs. */
export function tableBytes(capacity: number): number {
  // Each column is padded to 8 bytes at most.
  return HEADER_BYTES + capacity * SLOT_BYTES + COLUMNS * 8;
}

export class ConnTable {
  readonly capacity: number;
  readonly ctl: Int32Array;
  readonly ctr: Float64Array;
  readonly born: Float64Array;
  readonly since: Float64Array;
  readonly seen: Float64Array;
  readonly up: Float64Array;
  readonly down: Float64Array;
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
  readonly fe: Uint16Array;
  readonly srv: Uint16Array;
  readonly state: Uint8Array;
  readonly kind: Uint8Array;
  readonly proto: Uint8Array;
  readonly xprt: Uint8Array;
  readonly term: Uint8Array;
  readonly lineLen: Uint16Array;
  readonly line: Uint8Array;
  /** Worker-local inbox columns (see above); empty until init(). */
  inb = new Int32Array(0);
  ilen = new Int32Array(0);
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
    const u8 = () => take((o) => new Uint8Array(sab, o, C), C);
    const u16 = () => take((o) => new Uint16Array(sab, o, C), C * 2);
    this.ctl = take((o) => new Int32Array(sab, o, CTL.COUNT), CTL.COUNT * 4);
    this.ctr = take((o) => new Float64Array(sab, o, counterSlots()), counterSlots() * 8);
    const f64 = () => take((o) => new Float64Array(sab, o, C), C * 8);
    this.born = f64();
    this.since = f64();
    this.seen = f64();
    this.up = f64();
    this.down = f64();
    this.fd = take((o) => new Int32Array(sab, o, C), C * 4);
    this.gen = take((o) => new Uint32Array(sab, o, C), C * 4);
    this.peer = take((o) => new Int32Array(sab, o, C), C * 4);
    this.next = take((o) => new Int32Array(sab, o, C), C * 4);
    this.buf = take((o) => new Int32Array(sab, o, C), C * 4);
    this.bufOff = take((o) => new Uint32Array(sab, o, C), C * 4);
    this.bufLen = take((o) => new Uint32Array(sab, o, C), C * 4);
    this.pipe = take((o) => new Int32Array(sab, o, C), C * 4);
    this.pipeLen = take((o) => new Uint32Array(sab, o, C), C * 4);
    this.flags = u16();
    this.fe = u16();
    this.srv = u16();
    this.state = u8();
    this.kind = u8();
    this.proto = u8();
    this.xprt = u8();
    this.term = u8();
    this.lineLen = u16();
    this.line = take((o) => new Uint8Array(sab, o, C * LINE_BYTES), C * LINE_BYTES);
    if (off > sab.byteLength) throw new RangeError(`table of ${capacity} slots needs ${off} bytes, got ${sab.byteLength}`);
  }

  /**
   * Marks every slot free, threads the free list 0 -> 1 -> ... so low slots are used first, and makes the
   * worker-local columns.
   */
  init(): void {
    this.fd.fill(-1);
    this.peer.fill(-1);
    this.buf.fill(-1);
    this.pipe.fill(-1);
    this.inb = new Int32Array(this.capacity).fill(-1);
    this.ilen = new Int32Array(this.capacity);
    for (let i = 0; i < this.capacity; i++) this.next[i] = i + 1 < this.capacity ? i + 1 : -1;
    this.freeHead = this.capacity > 0 ? 0 : -1;
    this.freeCount = this.capacity;
  }

  get free(): number {
    return this.freeCount;
  }

  /** O(1): takes a free slot for `fd`, or returns -1 when the table is full. proto, xprt, fe, srv are the caller's. */
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
   * O(1): frees slot `i`. The slot's boxes must already be back in their pools. Bumping `gen` makes every
   * event the kernel still holds for the old fd stale (invariant 2 in docs/architecture.md). The fd itself
   * is closed by the caller through the loop's closeSlot(), the one place that closes it.
   */
  release(i: number): void {
    this.gen[i] = (this.gen[i] + 1) >>> 0;
    this.kind[i] = KIND.NONE;
    this.state[i] = ST.FREE;
    this.proto[i] = PROTO.NONE;
    this.xprt[i] = 0;
    this.term[i] = 0;
    this.fe[i] = 0;
    this.srv[i] = 0;
    this.fd[i] = -1;
    this.flags[i] = 0;
    this.peer[i] = -1;
    this.bufOff[i] = 0;
    this.bufLen[i] = 0;
    this.pipeLen[i] = 0;
    this.up[i] = 0;
    this.down[i] = 0;
    this.lineLen[i] = 0;
    this.next[i] = this.freeHead;
    this.freeHead = i;
    this.freeCount++;
  }

  /** One line about slot `i`, for logs and debugging views. */
  describe(i: number): string {
    return (
      `#${i}/${this.gen[i]} ${kindName(this.kind[i])} ${stateName(this.state[i])} fd=${this.fd[i]} ` +
      `proto=${protoName(this.proto[i])} peer=${this.peer[i]} flags=${flagNames(this.flags[i])} ` +
      `buf=${this.buf[i]}:${this.bufLen[i] - this.bufOff[i]} pipe=${this.pipe[i]}:${this.pipeLen[i]}`
    );
  }
}
