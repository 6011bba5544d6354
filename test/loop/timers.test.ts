// The per-worker timer wheel: deadlines fire once, not early, in O(1) per arm/disarm, across laps.
import t from 'tap';
import { TICK_MS, TimerWheel } from '../../dist/loop/timers.js';

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
