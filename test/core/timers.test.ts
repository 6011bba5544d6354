// The per-worker timer wheel: deadlines fire once, not early, in O(1) per arm/disarm, across laps.
import t from 'tap';
import { TICK_MS, TimerWheel } from '../../dist/core/timers.js';

t.test('deadlines fire once they have passed, never before', async (t) => {
  const now = 1_000_000;
  const w = new TimerWheel(8, now);
  w.arm(1, now + 250);
  w.arm(2, now + 1000);
  t.equal(w.armed, 2);
  t.ok(w.timeoutMs(now) <= TICK_MS && w.timeoutMs(now) >= 0, 'wakes within a tick while armed');
  const fired: number[] = [];
  w.advance(now + 249, (s) => fired.push(s));
  t.same(fired, [], 'not before its deadline');
  w.advance(now + 300, (s) => fired.push(s));
  t.same(fired, [1]);
  w.advance(now + 999, (s) => fired.push(s));
  t.same(fired, [1]);
  w.advance(now + 1000, (s) => fired.push(s));
  t.same(fired, [1, 2]);
  t.equal(w.armed, 0);
  t.equal(w.timeoutMs(now + 1000), -1, 'nothing armed: block');
});

t.test('disarm and re-arm replace the deadline', async (t) => {
  const now = 5_000_000;
  const w = new TimerWheel(4, now);
  const fired: number[] = [];
  w.arm(0, now + 100);
  w.disarm(0);
  w.arm(1, now + 100);
  w.arm(1, now + 900); // moved later
  w.advance(now + 500, (s) => fired.push(s));
  t.same(fired, []);
  w.advance(now + 950, (s) => fired.push(s));
  t.same(fired, [1]);
});

t.test('a deadline beyond one lap of the wheel waits for its own lap', async (t) => {
  const now = 9_000_000;
  const w = new TimerWheel(2, now);
  const fired: number[] = [];
  w.arm(0, now + 120_000); // two minutes: more than the 51.2 s span
  for (let at = now; at < now + 119_000; at += 7_000) w.advance(at, (s) => fired.push(s));
  t.same(fired, [], 'not fired on an earlier lap');
  w.advance(now + 120_050, (s) => fired.push(s));
  t.same(fired, [0]);
});

t.test('a callback may arm other slots while firing', async (t) => {
  const now = 2_000_000;
  const w = new TimerWheel(4, now);
  const fired: number[] = [];
  w.arm(0, now + 100);
  w.arm(1, now + 100);
  w.advance(now + 200, (s) => {
    fired.push(s);
    if (s === 1 || s === 0) w.arm(3, now + 400);
  });
  t.same(fired.sort(), [0, 1]);
  t.ok(w.isArmed(3));
  w.advance(now + 450, (s) => fired.push(s));
  t.same(fired, [0, 1, 3]);
});

t.test('deadlines moved later, moved earlier, and re-armed after ticks passed with nothing armed', async (t) => {
  const now = 3_000_000;
  const w = new TimerWheel(8, now);
  const fired: [number, number][] = [];
  let clock = now;
  const step = (to: number) => {
    for (; clock < to; clock += 50) w.advance(clock, (s) => fired.push([s, clock]));
    clock = to;
    w.advance(clock, (s) => fired.push([s, clock]));
  };
  w.arm(1, now + 100);
  w.arm(1, now + 3000); // later: it stays where it was linked and is moved when that tick comes
  w.arm(2, now + 3000);
  w.arm(2, now + 100); // earlier: it must move now
  step(now + 400);
  t.same(fired.map(([s]) => s), [2], 'the one moved earlier fired at its new deadline; the other did not');
  step(now + 2999);
  t.same(fired.map(([s]) => s), [2], 'not before its later deadline');
  step(now + 3100);
  t.same(fired.map(([s]) => s), [2, 1]);
  t.ok(fired[1][1] >= now + 3000 && fired[1][1] <= now + 3000 + 2 * TICK_MS, 'and within a tick or so of it');

  // Disarmed slots stay linked; ticks pass with nothing armed; arming again must still fire on time.
  w.arm(3, clock + 100);
  w.disarm(3);
  t.equal(w.armed, 0);
  step(clock + 10_000);
  const from = clock;
  w.arm(3, from + 300);
  step(from + 250);
  t.equal(fired.length, 2, 'not early');
  step(from + 500);
  t.same(fired[2]?.[0], 3, 'fired on time, not a lap of the wheel later');
  t.equal(w.armed, 0);

  // Many requests' worth of arm/disarm on one slot: one firing, at the last deadline.
  for (let i = 0; i < 1000; i++) {
    w.arm(4, clock + 30_000);
    w.disarm(4);
    w.arm(4, clock + 200);
  }
  step(clock + 1000);
  t.same(fired.slice(3).map(([s]) => s), [4]);
});
