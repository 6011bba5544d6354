// Per-worker deadlines on a hashed timer wheel: one deadline per table slot at most, O(1) arm and disarm,
// no JavaScript timer per connection.
//
//   bucket = (deadline tick) mod SIZE; each bucket is a doubly linked list threaded through next/prev arrays
//   indexed by slot. advance(now) walks the buckets from the last tick to now and hands every slot whose
//   deadline has passed to `fire`; one whose deadline lies beyond the wheel's span (SIZE ticks) is found a
//   lap early and simply re-linked.
//
// The worker's epoll_wait timeout is timeoutMs(): -1 when nothing is armed, else the time to the next tick,
// so a loop with deadlines wakes at most 1000/TICK_MS times a second.

/** Resolution of every deadline. 100 ms: timeouts here are seconds long, and 10 wakeups/s cost nothing. */
export const TICK_MS = 100;
/** Buckets: with 100 ms ticks the wheel spans 51.2 s; longer deadlines take an extra lap. */
const SIZE = 512;

export class TimerWheel {
  private readonly deadline: Float64Array; // ms since epoch; 0 = not armed
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly bucketOf: Int32Array;
  private readonly head = new Int32Array(SIZE).fill(-1);
  private tick: number; // the next tick advance() will process
  armed = 0;

  constructor(capacity: number, now: number) {
    this.deadline = new Float64Array(capacity);
    this.next = new Int32Array(capacity).fill(-1);
    this.prev = new Int32Array(capacity).fill(-1);
    this.bucketOf = new Int32Array(capacity);
    this.tick = Math.floor(now / TICK_MS);
  }

  /** Sets slot `s`'s deadline to `at` (ms), replacing any earlier one. */
  arm(s: number, at: number): void {
    if (this.deadline[s] !== 0) this.unlink(s);
    else this.armed++;
    this.deadline[s] = at;
    // A deadline in ((k-1)*TICK, k*TICK] goes to tick k, so everything in a bucket whose tick has come is
    // due, except slots a whole lap (or more) away.
    this.link(s, Math.max(this.tick, Math.ceil(at / TICK_MS)));
  }

  disarm(s: number): void {
    if (this.deadline[s] === 0) return;
    this.unlink(s);
    this.deadline[s] = 0;
    this.armed--;
  }

  isArmed(s: number): boolean {
    return this.deadline[s] !== 0;
  }

  /** -1 (block) when nothing is armed, else the ms until the next tick is due. */
  timeoutMs(now: number): number {
    if (this.armed === 0) return -1;
    return Math.max(0, this.tick * TICK_MS - now);
  }

  /** Fires every deadline that has passed by `now`. `fire` may arm or disarm any slot, this one included. */
  advance(now: number, fire: (s: number) => void): void {
    const last = Math.floor(now / TICK_MS);
    if (this.armed === 0) {
      this.tick = last + 1;
      return;
    }
    for (; this.tick <= last; this.tick++) {
      let s = this.head[this.tick % SIZE];
      while (s >= 0) {
        const after = this.next[s];
        if (this.deadline[s] <= now) {
          this.disarm(s);
          fire(s);
        } // else: a lap or more away; it stays for a later lap
        s = after;
      }
    }
  }

  private link(s: number, tick: number): void {
    const b = tick % SIZE;
    const h = this.head[b];
    this.prev[s] = -1;
    this.next[s] = h;
    if (h >= 0) this.prev[h] = s;
    this.head[b] = s;
    this.bucketOf[s] = b;
  }

  private unlink(s: number): void {
    const p = this.prev[s];
    const n = this.next[s];
    if (p >= 0) this.next[p] = n;
    else this.head[this.bucketOf[s]] = n;
    if (n >= 0) this.prev[n] = p;
    this.next[s] = this.prev[s] = -1;
  }
}
