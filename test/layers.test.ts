// The shape of src/ (docs/architecture.md, "Layers"), read from the source's own imports: every import
// points down the floors, there is no import circle (type-only imports count), only src/sys/ imports
// koffi, and no protocol module calls the kernel's byte calls itself (invariant 13).
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');

/** Floor of a file of src/, by its path: an import may only name a file on a lower floor, or its own folder. */
const FLOORS: [RegExp, number][] = [
  [/^sys\//, 1],
  [/^core\//, 2],
  [/^transport\//, 3],
  [/^route\//, 4],
  [/^toxic\//, 5],
  [/^tunnel\.ts$/, 6],
  [/^http\//, 7],
  [/^worker\//, 8],
  [/^control\//, 9],
  [/^(index|toxiproxy)\.ts$/, 10],
  [/^top\//, 10],
  [/^(cli|fleet-child)\.ts$/, 11],
];

function floor(file: string): number {
  for (const [re, n] of FLOORS) if (re.test(file)) return n;
  throw new Error(`${file} is on no floor: add it to docs/architecture.md's layers and to this test`);
}

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [relative(SRC, join(dir, e.name))] : [],
  );
}

/** Each file's imports of other files of src/ (static and dynamic, type-only included), and the names it takes. */
function imports(file: string): { target: string; names: string }[] {
  const text = readFileSync(join(SRC, file), 'utf8');
  const out: { target: string; names: string }[] = [];
  const re = /(?:import|export)\s*(type\s*)?([^;]*?)\s*from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;
  for (const m of text.matchAll(re)) {
    const spec = m[3] ?? m[4];
    const target = relative(SRC, resolve(SRC, dirname(file), spec)).replace(/\.js$/, '.ts');
    out.push({ target: target.endsWith('.ts') ? target : `${target}/index.ts`, names: m[2] ?? '' });
  }
  return out;
}

const all = files(SRC);
const graph = new Map(all.map((f) => [f, imports(f)]));

t.test('every file is on a floor, and every import points to its own folder or a lower floor', async (t) => {
  for (const [file, deps] of graph) {
    for (const { target } of deps) {
      t.ok(all.includes(target), `${file} imports ${target}, which exists`);
      const same = dirname(file) === dirname(target) && dirname(file) !== '.';
      t.ok(same || floor(target) < floor(file), `${file} (floor ${floor(file)}) -> ${target} (floor ${floor(target)})`);
    }
  }
});

t.test('no import circle anywhere in src/', async (t) => {
  // Depth-first search; a back edge is a circle.
  const state = new Map<string, 'open' | 'done'>();
  const circles: string[] = [];
  const visit = (f: string, path: string[]) => {
    state.set(f, 'open');
    for (const { target } of graph.get(f) ?? []) {
      if (state.get(target) === 'open') circles.push([...path.slice(path.indexOf(target)), target].join(' -> '));
      else if (!state.has(target)) visit(target, [...path, target]);
    }
    state.set(f, 'done');
  };
  for (const f of all) if (!state.has(f)) visit(f, [f]);
  t.same(circles, []);
});

t.test('only src/sys/ imports koffi; no protocol module calls recv, send, splice or shutdown itself', async (t) => {
  for (const f of all) {
    const text = readFileSync(join(SRC, f), 'utf8');
    if (!f.startsWith('sys/')) t.notMatch(text, /from ['"]koffi['"]/, `${f} does not import koffi`);
  }
  const protocols = all.filter((f) => f === 'tunnel.ts' || f.startsWith('http/') || f.startsWith('route/'));
  t.ok(protocols.length > 5);
  for (const f of protocols) {
    for (const { target, names } of graph.get(f)!) {
      if (!target.startsWith('sys/')) continue;
      t.notMatch(names, /\b(recv|recvAt|send|sendAt|splice|shutdown|read|write)\b/, `${f} takes no byte call from ${target}`);
    }
  }
});
