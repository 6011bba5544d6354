// The connection table over a SharedArrayBuffer: O(1) acquire/release through the free list, generations
// bumped at release, and the same memory seen by a second view (as the main thread sees a worker's).
import t from 'tap';
import { ConnTable, tableBytes } from '../../dist/core/table.js';
import { CTR } from '../../dist/core/counters.js';
import { KIND, ST, FL, flagNames, stateName } from '../../dist/core/types.js';

t.test('acquire takes low slots first, release makes them reusable with a new generation', async (t) => {
  const sab = new SharedArrayBuffer(tableBytes(4));
  const tb = new ConnTable(sab, 4);
  tb.init();
  t.equal(tb.free, 4);
  const a = tb.acquire(KIND.CLIENT, ST.WAITING, 10);
  const b = tb.acquire(KIND.BACKEND, ST.CONNECTING, 11);
  t.same([a, b], [0, 1]);
  t.equal(tb.fd[a], 10);
  t.equal(tb.free, 2);
  const genBefore = tb.gen[a];
  tb.release(a);
  t.equal(tb.gen[a], genBefore + 1, 'release bumps the generation');
  t.equal(tb.fd[a], -1);
  t.equal(tb.state[a], ST.FREE);
  t.equal(tb.acquire(KIND.CLIENT, ST.WAITING, 12), a, 'the freed slot is reused first (LIFO)');
  t.equal(tb.acquire(KIND.CLIENT, ST.WAITING, 13), 2);
  t.equal(tb.acquire(KIND.CLIENT, ST.WAITING, 14), 3);
  t.equal(tb.acquire(KIND.CLIENT, ST.WAITING, 15), -1, 'full: -1, no throw');
  t.equal(tb.free, 0);
});

t.test('the generation wraps at 2^32 instead of growing past what epoll_data can carry', async (t) => {
  const tb = new ConnTable(new SharedArrayBuffer(tableBytes(1)), 1);
  tb.init();
  tb.gen[0] = 0xffffffff;
  tb.acquire(KIND.CLIENT, ST.WAITING, 3);
  tb.release(0);
  t.equal(tb.gen[0], 0);
});

t.test('a second view over the same buffer (the main thread) sees the worker writes', async (t) => {
  const sab = new SharedArrayBuffer(tableBytes(8));
  const worker = new ConnTable(sab, 8);
  worker.init();
  const main = new ConnTable(sab, 8);
  const s = worker.acquire(KIND.CLIENT, ST.PROXYING, 42);
  worker.flags[s] = FL.READABLE | FL.EOF_IN;
  worker.ctr[CTR.BYTES_IN] += 1234;
  t.equal(main.fd[s], 42);
  t.equal(main.ctr[CTR.BYTES_IN], 1234);
  t.equal(flagNames(main.flags[s]), 'READABLE|EOF_IN');
  t.equal(stateName(main.state[s]), 'PROXYING');
  t.match(main.describe(s), /#0\/0 client PROXYING fd=42/);
});

t.test('tableBytes leaves room for every column at any capacity', async (t) => {
  for (const c of [1, 2, 3, 7, 100, 4097]) {
    t.doesNotThrow(() => new ConnTable(new SharedArrayBuffer(tableBytes(c)), c), `capacity ${c}`);
  }
});
