// Per-worker deadlines on a hashed timer wheel: one deadline per table slot at most, O(1) arm and disarm,
// no JavaScript timer per connection.
//
//   bucket = (tick) mod SIZE; each bucket is a doubly linked list threaded through next/prev arrays indexed
//   by slot. advance(now) walks the buckets from the last tick to now: a slot whose deadline has passed goes
//   to `fire`, a disarmed one is unlinked, and one whose deadline is still ahead (moved later since it was
//   linked, or beyond the wheel's span of SIZE ticks) is linked again where it now belongs.
//
// Lazily: a slot is linked at a tick no later than its deadline's, and stays there while its deadline moves
// later or is disarmed, which is what a request does to its connection's deadline several times over
// (head, backend, idle). arm() and disarm() then only write the deadline; the lists are touched when an
// earlier tick is needed, and when the tick a slot waits at comes round.
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
  private readonly tickOf: Float64Array; // the tick slot s is linked at; -1 = not linked
  private readonly head = new Int32Array(SIZE).fill(-1);
  private tick: number; // the next tick advance() will process
  armed = 0;

  constructor(capacity: number, now: number) {
    this.deadline = new Float64Array(capacity);
    this.next = new Int32Array(capacity).fill(-1);
    this.prev = new Int32Array(capacity).fill(-1);
    this.tickOf = new Float64Array(capacity).fill(-1);
    this.tick = Math.floor(now / TICK_MS);
  }

  /** Sets slot `s`'s deadline to `at` (ms), replacing any earlier one. */
  arm(s: number, at: number): void {
    if (this.deadline[s] === 0) this.armed++;
    this.deadline[s] = at;
    // A deadline in ((k-1)*TICK, k*TICK] belongs to tick k: when tick k is processed, it is due.
    const want = Math.max(this.tick, Math.ceil(at / TICK_MS));
    const linked = this.tickOf[s];
    if (linked >= this.tick && linked <= want) return; // looked at no later than due: it will be moved then
    if (linked >= 0) this.unlink(s); // too late a tick, or one already passed while nothing was armed
    this.link(s, want);
  }

  disarm(s: number): void {
    if (this.deadline[s] === 0) return;
    this.deadline[s] = 0; // unlinked when its tick comes (or moved by the next arm)
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
      // Only disarmed slots are linked: they wait where they are (arm() moves one linked at a past tick).
      this.tick = last + 1;
      return;
    }
    for (; this.tick <= last; this.tick++) {
      let s = this.head[this.tick % SIZE];
      while (s >= 0) {
        const after = this.next[s];
        if (this.tickOf[s] === this.tick) {
          const d = this.deadline[s];
          this.unlink(s);
          if (d === 0) {
            // disarmed: nothing to do
          } else if (d <= now) {
            this.deadline[s] = 0;
            this.armed--;
            fire(s);
          } else {
            this.link(s, Math.ceil(d / TICK_MS)); // moved later since it was linked
          }
        } // else: linked at a tick a lap or more away; it stays for that lap
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
    this.tickOf[s] = tick;
  }

  private unlink(s: number): void {
    const p = this.prev[s];
    const n = this.next[s];
    if (p >= 0) this.next[p] = n;
    else this.head[this.tickOf[s] % SIZE] = n;
    if (n >= 0) this.prev[n] = p;
    this.next[s] = this.prev[s] = -1;
    this.tickOf[s] = -1;
  }
}
