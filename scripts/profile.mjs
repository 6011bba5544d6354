// Profiles ffi-proxy (tcp mode, 1 worker) under load: nginx backend, wrk -t1 -c64 on /small, the proxy
// pinned to CPU 0, nginx and wrk to CPU 1. Two runs of --duration seconds each (default 10):
//
//   node scripts/profile.mjs [--duration 10] [--splice off|on|auto] [--out DIR] [--top 15]
//   (npm run profile)
//
// 1. under 0x (node --prof). With worker threads every V8 isolate writes its own log, and 0x renders only
//    ONE of them (the first its readdir finds, in practice the main thread, which is idle here) and deletes
//    the rest. So this script gives 0x a separate --working-dir, where the other logs survive, picks the
//    log with the most ticks (the worker's hot loop) and renders it with `0x --visualize-only`.
// 2. under node --cpu-prof (not combinable with 1: --cpu-prof stops --prof from logging ticks). Every
//    thread writes CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile (tid 0 = main, tid 1 = the worker) when
//    it ends normally; the worker's is rendered with `0x --visualize-cpu-profile` and its self times are
//    printed. Self time is wall time sampled on that thread: `epollWait` includes time blocked waiting.
//
// Output in DIR (default /tmp/ffi-proxy-profile-<timestamp>/):
//   0x-worker/flamegraph.html   0x flame graph of the worker thread (phase 1)   <- the one to look at
//   0x-main/flamegraph.html     what 0x rendered itself (normally the main thread)
//   worker-prof.txt             `node --prof-process` of the worker's isolate log (C++/libc ticks too)
//   cpuprofile/*.cpuprofile     phase 2, per thread (open in Chrome DevTools or VS Code)
//   worker-cpuprofile.html      the worker's .cpuprofile as a 0x flame graph
//   top-self.txt                the worker's functions by self time (also printed)
//
// 0x preloads a handler that calls process.exit() on SIGINT/SIGTERM, which would cut the worker off in
// epoll_wait; the profiled process also preloads scripts/lib/graceful-exit.cjs, which takes that handler off
// again so ffi-proxy's own handler drains, stops the worker and exits.

import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join, resolve, relative } from 'node:path';
import { tmpdir } from 'node:os';
import {
  ROOT,
  HOST,
  argValue,
  cpuPlan,
  describeErrors,
  freePort,
  httpGet,
  installCleanup,
  makeTempDir,
  removeDirLater,
  requireTools,
  runWrk,
  startNginx,
  startPinned,
  stopChild,
  tail,
  waitForPort,
  SMALL_BODY,
} from './lib/peers.mjs';

const argv = process.argv.slice(2);
const durationS = Number(argValue(argv, 'duration') ?? process.env.BENCH_DURATION ?? 10);
const splice = argValue(argv, 'splice') ?? 'auto';
const topN = Number(argValue(argv, 'top') ?? 15);
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
const out = resolve(argValue(argv, 'out') ?? join(tmpdir(), `ffi-proxy-profile-${stamp}`));
if (!Number.isInteger(durationS) || durationS < 1 || !['on', 'off', 'auto'].includes(splice)) {
  process.stderr.write('usage: node scripts/profile.mjs [--duration N] [--splice off|on|auto] [--out DIR] [--top N]\n');
  process.exit(2);
}

const CLI = join(ROOT, 'dist', 'cli.js');
const ZEROX = join(ROOT, 'node_modules', '0x', 'cmd.js');
const PRELOAD = join(ROOT, 'scripts', 'lib', 'graceful-exit.cjs');
requireTools(['nginx', 'wrk', 'taskset']);
for (const [f, hint] of [[CLI, 'build first: npx tsc -p .'], [ZEROX, 'npm install (0x is a devDependency)']]) {
  if (!existsSync(f)) {
    process.stderr.write(`profile: ${f} is missing; ${hint}\n`);
    process.exit(1);
  }
}
installCleanup({ deadlineMs: (2 * durationS + 400) * 1000 });

const pin = cpuPlan();
const tmp = makeTempDir('ffi-proxy-profile-nginx-');
removeDirLater(tmp);
const profDir = join(out, 'cpuprofile');
const logDir = join(out, 'v8-logs');
for (const d of [profDir, logDir, join(out, '0x-worker')]) mkdirSync(d, { recursive: true });

const nginx = await startNginx(tmp, { cpu: pin.peers });
const proxyArgs = (port) => [CLI, 'start', '--listen', `${HOST}:${port}`, '--backend', `${HOST}:${nginx.port}`,
  '--mode', 'tcp', '--workers', '1', '--splice', splice, '--log-level', 'warn'];

async function waitReady(child, port) {
  let timer;
  await Promise.race([
    child.ready,
    new Promise((_, rej) => (timer = setTimeout(() => rej(new Error(`no banner after 30 s:\n${tail(child.output)}`)), 30000))),
  ]).finally(() => clearTimeout(timer));
  await waitForPort(port, { child });
  const r = await httpGet(port, '/small');
  if (r.status !== 200 || r.length !== SMALL_BODY.length) throw new Error(`GET /small through the proxy: ${r.status}, ${r.length} B`);
}

async function load(port, what) {
  const w = await runWrk(`http://${HOST}:${port}/small`, { durationS, connections: 64, cpu: pin.peers });
  const errs = describeErrors(w.errors);
  process.stderr.write(`profile: ${what}: wrk ${Math.round(w.rps)} req/s for ${durationS} s${errs ? `, ERRORS: ${errs}` : ''}\n`);
  return { rps: w.rps, errors: errs };
}

function run0x(args, label) {
  return startPinned(label, null, process.execPath, [ZEROX, ...args], { cwd: out });
}

// --- phase 1: 0x ------------------------------------------------------------------------------------------
const port1 = await freePort();
process.stderr.write(`profile: nginx on ${HOST}:${nginx.port}; phase 1: ffi-proxy (splice ${splice}) under 0x on ${HOST}:${port1}\n`);
const zerox = startPinned(
  '0x',
  pin.proxy,
  process.execPath,
  [ZEROX, '--working-dir', logDir, '--output-dir', join(out, '0x-main'),
    '--title', `ffi-proxy tcp, splice ${splice}: the isolate 0x picked (node --prof)`,
    '--', process.execPath, '-r', PRELOAD, ...proxyArgs(port1)],
  { cwd: out, ready: /listening on/ },
);
await waitReady(zerox, port1);
const load1 = await load(port1, 'phase 1 (0x)');
// SIGINT to 0x and the profiled node (one process group, as Ctrl-C would): ffi-proxy drains and exits,
// then 0x renders the isolate log it picked. That can take a while.
process.stderr.write('profile: stopping; 0x is rendering...\n');
const z = await stopChild(zerox, { signal: 'SIGINT', graceMs: 180000 });
const mainHtml = /Flamegraph generated in\s+(\S+)/.exec(zerox.output)?.[1]?.replace(/^file:\/\//, '') ?? null;
if (z.code !== 0 || !mainHtml) process.stderr.write(`profile: 0x exited ${z.signal ?? z.code}:\n${tail(zerox.output)}\n`);

// The isolate logs: the one 0x moved into 0x-main/ and the others left in logDir. The worker's hot loop is
// the one with the most ticks.
const ticks = (f) => (readFileSync(f, 'utf8').match(/^tick,/gm) ?? []).length;
const isolateLogs = [join(out, '0x-main'), logDir]
  .flatMap((d) => (existsSync(d) ? readdirSync(d).filter((f) => /^isolate-.*-v8\.log$/.test(f)).map((f) => join(d, f)) : []))
  .map((f) => ({ file: f, ticks: ticks(f) }))
  .sort((a, b) => b.ticks - a.ticks);
let workerHtml0x = null;
let workerProfTxt = null;
if (isolateLogs.length) {
  const wl = isolateLogs[0];
  process.stderr.write(`profile: isolate logs (ticks): ${isolateLogs.map((l) => `${relative(out, l.file)} (${l.ticks})`).join(', ')}\n`);
  const dest = join(out, '0x-worker', wl.file.split('/').at(-1));
  // Moved out of v8-logs/ (copied if it is the one 0x rendered itself, so 0x-main/ stays whole).
  if (wl.file.startsWith(logDir)) renameSync(wl.file, dest);
  else copyFileSync(wl.file, dest);
  const viz = run0x(['--visualize-only', join(out, '0x-worker'), '--title', `ffi-proxy tcp, splice ${splice}: worker thread (node --prof, ${wl.ticks} ticks)`], '0x visualize');
  const vr = await viz.exited;
  workerHtml0x = /Flamegraph generated in\s+(\S+)/.exec(viz.output)?.[1]?.replace(/^file:\/\//, '') ?? null;
  if (vr.code !== 0 || !workerHtml0x) process.stderr.write(`profile: 0x --visualize-only failed:\n${tail(viz.output)}\n`);
  const pp = startPinned('node --prof-process', null, process.execPath, ['--prof-process', dest], { cwd: out });
  const killer = setTimeout(() => stopChild(pp, { signal: 'SIGKILL' }), 120000);
  const pr = await pp.exited;
  clearTimeout(killer);
  if (pr.code === 0) {
    workerProfTxt = join(out, 'worker-prof.txt');
    writeFileSync(workerProfTxt, pp.output.replace(/^\((node:\d+|Use `node).*\n/gm, ''));
  }
} else {
  process.stderr.write(`profile: no isolate log found in ${logDir} or 0x-main/\n`);
}

// --- phase 2: node --cpu-prof -----------------------------------------------------------------------------
const port2 = await freePort();
process.stderr.write(`profile: phase 2: ffi-proxy (splice ${splice}) under node --cpu-prof on ${HOST}:${port2}\n`);
const cp = startPinned('ffi-proxy --cpu-prof', pin.proxy, process.execPath, ['--cpu-prof', '--cpu-prof-dir', profDir, ...proxyArgs(port2)], {
  cwd: out,
  ready: /listening on/,
});
await waitReady(cp, port2);
const load2 = await load(port2, 'phase 2 (--cpu-prof)');
const c = await stopChild(cp, { signal: 'SIGINT', graceMs: 30000 });
if (c.code !== 0) process.stderr.write(`profile: ffi-proxy exited ${c.signal ?? c.code}:\n${tail(cp.output)}\n`);
await stopChild(nginx, { signal: 'SIGQUIT' });

const profiles = readdirSync(profDir)
  .filter((f) => f.endsWith('.cpuprofile'))
  .map((f) => ({ file: join(profDir, f), tid: Number(f.split('.').at(-3)) }));
const worker = profiles.filter((p) => p.tid !== 0).sort((a, b) => a.tid - b.tid)[0];
let workerCpuHtml = null;
let lines = [`no worker .cpuprofile in ${profDir} (found: ${profiles.map((p) => p.file).join(', ') || 'none'})`];
if (worker) {
  const viz = run0x(['--visualize-cpu-profile', worker.file, '--name', 'worker-cpuprofile',
    '--title', `ffi-proxy tcp, splice ${splice}: worker thread (node --cpu-prof)`], '0x visualize');
  const vr = await viz.exited;
  const html = join(profDir, 'worker-cpuprofile.html');
  if (vr.code === 0 && existsSync(html)) {
    workerCpuHtml = join(out, 'worker-cpuprofile.html');
    renameSync(html, workerCpuHtml);
  } else {
    process.stderr.write(`profile: 0x --visualize-cpu-profile failed:\n${tail(viz.output)}\n`);
  }
  const { total, rows } = selfTimes(JSON.parse(readFileSync(worker.file, 'utf8')));
  lines = [
    `worker thread (tid ${worker.tid}) under --cpu-prof: ${(total / 1e6).toFixed(1)} s sampled, wrk ${Math.round(load2.rps)} req/s, ` +
      `splice ${splice} (self = wall time on the thread; epollWait includes blocking)`,
    '  self ms   self %  function',
    ...rows.slice(0, topN).map(([k, us]) => `${(us / 1000).toFixed(0).padStart(9)}  ${((100 * us) / total).toFixed(1).padStart(6)}%  ${k}`),
  ];
  writeFileSync(join(out, 'top-self.txt'), lines.join('\n') + '\n');
}

/** Self time per function (name + file:line) from a .cpuprofile: samples whose top frame is that node. */
function selfTimes(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const dt = new Map();
  // timeDeltas[i] is the time before sample i; attribute it to that sample (as DevTools does).
  profile.samples.forEach((id, i) => dt.set(id, (dt.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...dt.values()].reduce((a, b) => a + b, 0);
  const byFn = new Map();
  for (const [id, us] of dt) {
    const cf = byId.get(id).callFrame;
    const where = cf.url ? `${relative(ROOT, cf.url.replace(/^file:\/\//, '')) || cf.url}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    byFn.set(key, (byFn.get(key) ?? 0) + us);
  }
  return { total, rows: [...byFn].sort((a, b) => b[1] - a[1]) };
}

console.log(lines.join('\n'));
console.log('');
console.log(`phase 1 (0x, --prof): wrk ${Math.round(load1.rps)} req/s${load1.errors ? `, ERRORS ${load1.errors}` : ''}; ` +
  `phase 2 (--cpu-prof): wrk ${Math.round(load2.rps)} req/s${load2.errors ? `, ERRORS ${load2.errors}` : ''}`);
console.log(`worker flame graph (0x, --prof):     ${workerHtml0x ?? '(not generated)'}`);
console.log(`worker --prof-process summary:       ${workerProfTxt ?? '(not generated)'}`);
console.log(`0x's own flame graph (main thread):  ${mainHtml ?? '(not generated)'}`);
console.log(`worker flame graph (--cpu-prof):     ${workerCpuHtml ?? '(not generated)'}`);
console.log(`worker .cpuprofile (DevTools):       ${worker?.file ?? '(none)'}`);
console.log(`top self times:                      ${worker ? join(out, 'top-self.txt') : '(none)'}`);
