// Millisecond wake-ups for fault lanes. The timer wheel (core/timers.ts) ticks every 100 ms, right for
// timeouts that are seconds long and wrong for a 5 ms latency: a toxic's times are kept here instead, in a
// binary min-heap of (time, slot, generation) with a fraction of a millisecond.
//
// Each slot has at most one wake time that counts (`at`): schedule() pushes an entry only when the new time
// is earlier than the one the slot already waits for, and an entry that no longer matches its slot (a later
// schedule, a wake already run, the slot released) is skipped when it reaches the top. Stale entries are
// bounded: when the heap is full it is rebuilt from the slots' own times.

export class FaultClock {
  /** Per slot: the time it is to be woken (table clock, ms), 0 when none. */
  readonly at: Float64Array;
  private readonly gen: Uint32Array;
  private readonly hAt: Float64Array;
  private readonly hSlot: Int32Array;
  private readonly hGen: Uint32Array;
  private size = 0;

  constructor(capacity: number) {
    this.at = new Float64Array(capacity);
    this.gen = new Uint32Array(capacity);
    const n = 2 * capacity + 16;
    this.hAt = new Float64Array(n);
    this.hSlot = new Int32Array(n);
    this.hGen = new Uint32Array(n);
  }

  get pending(): boolean {
    return this.size > 0;
  }

  /** Slot s (of generation gen) is to be woken at `when`, or earlier if it already waits for an earlier time. */
  schedule(s: number, gen: number, when: number): void {
    const cur = this.at[s];
    if (cur !== 0 && this.gen[s] === gen && cur <= when) return;
    this.at[s] = when;
    this.gen[s] = gen;
    if (this.size === this.hAt.length) this.rebuild();
    this.push(when, s, gen);
  }

  /** Slot s needs no wake any more (released, or back on the plain path). */
  cancel(s: number): void {
    this.at[s] = 0;
  }

  /** Milliseconds from `now` to the earliest wake, with a fraction (sys's epollWaitFine), or -1. */
  timeoutMs(now: number): number {
    while (this.size > 0 && !this.live(0)) this.pop();
    if (this.size === 0) return -1;
    return Math.max(0, this.hAt[0] - now);
  }

  /** Wakes, in time order, every slot whose time has come by `now`; `wake` may schedule it again. */
  advance(now: number, genOf: Uint32Array, wake: (s: number) => void): void {
    while (this.size > 0 && this.hAt[0] <= now) {
      const s = this.hSlot[0];
      const ok = this.live(0) && genOf[s] === this.hGen[0];
      this.pop();
      if (!ok) continue;
      this.at[s] = 0;
      wake(s);
    }
  }

  private live(i: number): boolean {
    const s = this.hSlot[i];
    return this.at[s] === this.hAt[i] && this.gen[s] === this.hGen[i];
  }

  private rebuild(): void {
    this.size = 0;
    for (let s = 0; s < this.at.length; s++) if (this.at[s] !== 0) this.push(this.at[s], s, this.gen[s]);
  }

  private push(when: number, s: number, gen: number): void {
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.hAt[p] <= when) break;
      this.move(p, i);
      i = p;
    }
    this.hAt[i] = when;
    this.hSlot[i] = s;
    this.hGen[i] = gen;
  }

  private pop(): void {
    const last = --this.size;
    if (last === 0) return;
    const when = this.hAt[last];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= last) break;
      if (c + 1 < last && this.hAt[c + 1] < this.hAt[c]) c++;
      if (this.hAt[c] >= when) break;
      this.move(c, i);
      i = c;
    }
    this.move(last, i);
  }

  private move(from: number, to: number): void {
    this.hAt[to] = this.hAt[from];
    this.hSlot[to] = this.hSlot[from];
    this.hGen[to] = this.hGen[from];
  }
}
