// The counter schema is declared once (core/counters.ts): stats() is generated from it, so every counter in
// it is summed over the workers and named as the schema says, and the termination block has a counter for
// every code.
import t from 'tap';
import { CTR, TERM_BASE, counterSchema, counterSlots, sumStats } from '../../dist/core/counters.js';
import { TERM, TERM_INFO, termName } from '../../dist/core/term.js';

t.test('indices are distinct and in schema order; the termination block follows the worker block', async (t) => {
  const schema = counterSchema();
  t.equal(CTR.COUNT, schema.length);
  t.same(
    Object.entries(CTR).filter(([k]) => k !== 'COUNT').map(([, i]) => i),
    schema.map((_, i) => i),
  );
  t.equal(TERM_BASE, CTR.COUNT);
  t.ok(counterSlots() >= TERM_BASE + TERM.COUNT);
  t.equal(TERM_INFO.length, TERM.COUNT, 'every code has its info');
  t.equal(new Set(TERM_INFO.map((i) => i.name)).size, TERM.COUNT, 'and a name of its own');
});

t.test('sumStats sums each counter over the workers and names it by the schema', async (t) => {
  const a = new Float64Array(counterSlots());
  const b = new Float64Array(counterSlots());
  a[CTR.ACCEPTED] = 3;
  b[CTR.ACCEPTED] = 4;
  b[CTR.BYTES_OUT] = 100;
  a[TERM_BASE + TERM.BACKEND_REFUSED] = 2;
  b[TERM_BASE + TERM.BACKEND_REFUSED] = 1;
  b[TERM_BASE + TERM.DONE] = 4;
  const s = sumStats([a, b]) as unknown as Record<string, unknown>;
  const keys = counterSchema().map((c) => c.stat);
  t.same(Object.keys(s).sort(), [...keys, 'terminations'].sort(), 'one key per counter, plus terminations');
  t.equal(s.accepted, 7);
  t.equal(s.bytesOut, 100);
  t.equal(s.active, 0);
  const term = s.terminations as Record<string, number>;
  t.equal(term[termName(TERM.BACKEND_REFUSED)], 3);
  t.equal(term.done, 4);
  t.notOk('none' in term, 'NONE is not an end');
  t.equal(Object.keys(term).length, TERM.COUNT - 1);
});
