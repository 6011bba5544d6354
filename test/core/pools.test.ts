// The buffer pool hands out page-aligned 64 KiB buffers carved from slabs, keeps `keepIdle` of them warm
// once returned, and trim() (once a second, from the worker) gives the pages of the rest back to the kernel
// (madvise), so their memory does not wait for a garbage collection. Observable without mocks: a page given back reads as zeros afterwards.
import t from 'tap';
import { BufferPool } from '../../dist/core/pools.js';
import { bufferAddress, pageSize } from '../../dist/sys/index.js';
import { CTR } from '../../dist/core/counters.js';

const SIZE = 64 * 1024;

t.test('buffers are page-aligned, distinct, and counted while held', async (t) => {
  const ctr = new Float64Array(16);
  const pool = new BufferPool(SIZE, 200, 4, ctr);
  const held: number[] = [];
  for (let i = 0; i < 130; i++) held.push(pool.acquire()); // three slabs
  t.equal(new Set(held).size, 130, 'distinct indices');
  t.equal(ctr[CTR.BUFFERS], 130);
  const addrs = held.map((i) => bufferAddress(pool.get(i)));
  t.ok(addrs.every((a) => a % BigInt(pageSize()) === 0n), 'every buffer starts on a page');
  const sorted = [...addrs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (let k = 1; k < sorted.length; k++) {
    if (sorted[k] - sorted[k - 1] < BigInt(SIZE)) t.fail('two buffers overlap');
  }
  for (const i of held) t.equal(pool.get(i).length, SIZE);
  for (const i of held) pool.release(i);
  t.equal(ctr[CTR.BUFFERS], 0);
});

t.test('trim() gives back the pages of free buffers beyond keepIdle, oldest first; the warm ones keep theirs', async (t) => {
  // 200 indices: only the first slab (64) is ever made here; trim() must pass over the rest.
  const pool = new BufferPool(SIZE, 200, 2, new Float64Array(16));
  const held: number[] = [];
  for (let i = 0; i < 5; i++) {
    const b = pool.acquire();
    pool.get(b).fill(0xab);
    held.push(b);
  }
  for (const i of held) pool.release(i);
  t.equal(pool.excess, 3, 'three more free buffers hold pages than keepIdle allows');
  pool.trim(); // the three returned first are given back; the two returned last stay warm
  t.equal(pool.excess, 0);
  const again: number[] = [];
  for (let i = 0; i < 5; i++) again.push(pool.acquire());
  t.same(new Set(again), new Set(held), 'the same five buffers come back');
  const zeroed = again.filter((i) => pool.get(i).every((x) => x === 0)).length;
  const kept = again.filter((i) => pool.get(i).every((x) => x === 0xab)).length;
  t.equal(zeroed, 3, 'three buffers read as fresh zero pages');
  t.equal(kept, 2, 'two kept their bytes (warm)');
  t.ok(held.slice(0, 3).every((i) => pool.get(i).every((x) => x === 0)), 'the ones returned first were given back');
});

t.test('an exhausted pool says so', async (t) => {
  const pool = new BufferPool(SIZE, 3, 1, new Float64Array(16));
  t.ok(pool.acquire() >= 0);
  t.ok(pool.acquire() >= 0);
  t.ok(pool.acquire() >= 0);
  t.equal(pool.acquire(), -1);
});

t.test('sharedSlab() names the allocation two buffers share, exactly when they share one', async (t) => {
  const pool = new BufferPool(SIZE, 600, 4, new Float64Array(16));
  const held: number[] = [];
  for (let i = 0; i < 300; i++) held.push(pool.acquire()); // two slabs: indices 0-255 and 256-...
  const a = held.find((i) => i < 256)!;
  const b = held.find((i) => i < 256 && i !== a)!;
  const c = held.find((i) => i >= 256)!;
  const slab = pool.sharedSlab(a, b);
  t.ok(slab, 'two buffers of the first slab share it');
  t.equal(slab!.buffer, pool.get(a).buffer, 'the allocation behind both');
  t.equal(slab!.buffer, pool.get(b).buffer);
  t.equal(slab!.byteOffset, 0, 'viewed from its start, as copyWithin offsets need');
  t.equal(pool.sharedSlab(a, a)!.buffer, pool.get(a).buffer, 'a buffer shares its own slab');
  for (const i of [a, b, c]) t.equal(pool.slabOffset(i), pool.get(i).byteOffset, `buffer ${i}'s place in its slab`);
  t.equal(pool.sharedSlab(a, c), null, 'buffers of two slabs share none');
  t.not(pool.get(a).buffer, pool.get(c).buffer);
  for (const i of held) pool.release(i);
});
