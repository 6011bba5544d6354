// Interleaved A/B benchmark: ffi-proxy and HAProxy running at the same time, measured in short windows
// that alternate between them (A B, then B A, ...), so that the VM's drift, which on a small VM can move a
// proxy's requests/s by 20% from one minute to the next, hits both alike. bench.mjs runs each proxy in
// turn, 40 s or more apart within a round; use this for a small difference, such as the small-message
// ratio, and bench.mjs for the whole picture.
//
//   node scripts/ab.mjs [--mode tcp|http] [--path /small|/big] [--rounds N] [--duration S] [--warmup S]
//                       [--a ffi-auto] [--b haproxy] [--max-steal PCT] [--retries N] [--json FILE]
//
// Both proxies (started as bench.mjs starts them, scripts/lib/proxies.mjs) are pinned to CPU 0 and nginx
// and wrk to CPU 1; the proxy not being measured is idle in epoll_wait. Each is warmed up first (two wrk
// runs, as in bench.mjs), then each round measures A and B once with `wrk -t1 -c64 -dSs --latency`. The
// CPU per request is the measured proxy's utime+stime (its process and children) over the window, also
// printed apart as user and kernel time. It prints every window, then the medians and, paired round by
// round, the ratios A/B.
//
// Steal time: when the hypervisor took more than --max-steal percent (default 1) of either CPU's time for
// another guest during either window of a round, the round's two windows are printed, set aside and the
// round is measured again, up to --retries times (default 6) with a 3 s pause between, so that the two
// windows compared are still next to each other in time. On these VMs steal comes in phases, and one that
// hits a window multiplies its p99 whichever proxy is measured (docs/benchmarks.md). A round still over
// the limit after its retries is kept and marked, and left out of the medians and ratios, which say how
// many were. --max-steal 100 keeps every window.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import {
  HOST,
  SMALL_BODY,
  BIG_SIZE,
  cliArgs,
  argValue,
  cpuPlan,
  cpuSplitTree,
  describeErrors,
  freePort,
  httpGet,
  installCleanup,
  makeTempDir,
  removeDirLater,
  requireTools,
  runWrk,
  sleep,
  startNginx,
  stopChild,
  versions,
  waitUntilServing,
  warmupRuns,
  fmtMs,
  median,
} from './lib/peers.mjs';
import { CLI, proxyList } from './lib/proxies.mjs';

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(readFileSync(new URL(import.meta.url), 'utf8').split('\n\n')[0].replace(/^\/\/ ?/gm, '') + '\n');
  process.exit(0);
}
const { usage, intArg } = cliArgs('ab', argv);
const mode = argValue(argv, 'mode') ?? 'http';
if (mode !== 'tcp' && mode !== 'http') usage(`--mode takes tcp or http (got ${mode})`);
const path = argValue(argv, 'path') ?? '/small';
const bytes = { '/small': SMALL_BODY.length, '/big': BIG_SIZE }[path];
if (bytes === undefined) usage(`--path takes /small or /big (got ${path})`);
const rounds = intArg('rounds', 8);
const durationS = intArg('duration', 5);
const warmupS = intArg('warmup', 10, 0);
const jsonFile = argValue(argv, 'json');
const maxSteal = Number(argValue(argv, 'max-steal') ?? 1);
if (!(maxSteal >= 0 && maxSteal <= 100)) usage(`--max-steal takes a percentage from 0 to 100 (got ${argValue(argv, 'max-steal')})`);
const retries = intArg('retries', 6, 0);
const list = proxyList(mode, { generatedBy: 'scripts/ab.mjs' });
const ids = [argValue(argv, 'a') ?? (mode === 'http' ? 'ffi-http' : 'ffi-auto'), argValue(argv, 'b') ?? (mode === 'http' ? 'haproxy-http' : 'haproxy')];
const pair = ids.map((id) => list.find((p) => p.id === id) ?? usage(`--a/--b take one of ${list.map((p) => p.id).join(', ')} (got ${id})`));
if (ids[0] === ids[1]) usage('--a and --b must differ');

requireTools(['haproxy', 'nginx', 'wrk', 'taskset']);
if (!existsSync(CLI)) {
  process.stderr.write(`ab: ${CLI} is missing; build first: npx tsc -p .\n`);
  process.exit(1);
}
installCleanup({ deadlineMs: (2 * (warmupS + 20) + rounds * 2 * (retries + 1) * (durationS + 5) + 120) * 1000 });
const pin = cpuPlan();
spawnSync('taskset', ['-a', '-p', '-c', String(pin.peers), String(process.pid)], { stdio: 'ignore' });
const dir = makeTempDir();
removeDirLater(dir);
const command = `node scripts/ab.mjs ${argv.join(' ')}`.trim();
process.stderr.write(
  `ab: ${mode} ${path}: ${ids.join(' and ')}, ${rounds} rounds of ${durationS} s each after a ${warmupS} s warm-up each; ` +
    `about ${Math.ceil((2 * warmupS + rounds * 2 * (durationS + 1)) / 60)} min\n`,
);
const nginx = await startNginx(dir, { cpu: pin.peers });
const url = (port) => `http://${HOST}:${port}${path}`;

const sides = [];
for (const proxy of pair) {
  const port = await freePort();
  const child = await proxy.start(port, nginx.port, pin.proxy, dir);
  await waitUntilServing(child, port, { banner: proxy.banner, timeoutMs: 15000 });
  const r = await httpGet(port, path, 10000);
  if (r.status !== 200 || r.length !== bytes) throw new Error(`${proxy.id}: GET ${path}: ${r.status}, ${r.length} B (want 200, ${bytes} B)`);
  // As bench.mjs: two runs, so that the proxy sees its connections close and reopen once warm.
  for (const d of warmupRuns(warmupS)) {
    await runWrk(url(port), { durationS: d, cpu: pin.peers });
  }
  sides.push({ id: proxy.id, port, child, windows: [], setAsideWindows: [] });
}

let setAside = 0;
for (let round = 0; round < rounds; round++) {
  const order = round % 2 ? [sides[1], sides[0]] : sides;
  for (let attempt = 0; ; attempt++) {
    const wins = [];
    for (const s of order) wins.push(await measure(s));
    const line = order.map((s, i) => describeWindow(s.id, wins[i])).join(' | ');
    if (wins.some((w) => w.stolen) && attempt < retries) {
      setAside++;
      order.forEach((s, i) => s.setAsideWindows.push(wins[i]));
      process.stderr.write(`    set aside: ${line}\n`);
      await sleep(3000);
      continue;
    }
    order.forEach((s, i) => (s.windows[round] = wins[i]));
    process.stderr.write(`  round ${round + 1}: ${line}\n`);
    break;
  }
}
for (const s of sides) await stopChild(s.child, { signal: 'SIGTERM', graceMs: 10000 });
await stopChild(nginx, { signal: 'SIGQUIT', graceMs: 5000 });

const [a, b] = sides;
// Rounds whose two windows are both under the steal limit: the only ones compared.
const clean = a.windows.map((w, i) => !w.stolen && !b.windows[i].stolen);
const kept = clean.filter(Boolean).length;
const col = (s, k) => s.windows.filter((w, i) => clean[i]).map((w) => w[k]);
const ratio = (k) => a.windows.flatMap((w, i) => (clean[i] ? [w[k] / b.windows[i][k]] : []));
const count = (k, better) => a.windows.filter((w, i) => clean[i] && better(w[k], b.windows[i][k])).length;
const v = versions();
console.log(`\n${command}   (${new Date().toISOString()})`);
console.log(`${v.haproxy} | ${v.nginx} | ${v.wrk} | node ${v.node} | kernel ${v.kernel}`);
console.log(
  `${mode} ${path}; ${rounds} rounds, A/B alternating; wrk -t1 -c64 -d${durationS}s --latency per window; both proxies on CPU ${pin.proxy}, nginx+wrk on CPU ${pin.peers}`,
);
console.log(
  `steal limit ${maxSteal}% of a window: ${setAside} round(s) set aside and measured again; ` +
    `${rounds - kept} round(s) still over it after ${retries} retries, left out of what follows\n`,
);
if (kept === 0) {
  // Every round stayed over the steal limit: nothing to compare (the windows are still in --json).
  console.log('no round was under the steal limit: try again later, or raise --max-steal');
  process.exitCode = 1;
} else {
  for (const s of sides) {
    console.log(
      `${s.id.padEnd(14)} median ${Math.round(median(col(s, 'rps')))} req/s, p50 ${fmtMs(median(col(s, 'p50ms')))}, p99 ${fmtMs(median(col(s, 'p99ms')))}, ` +
        `${median(col(s, 'cpuUsPerReq')).toFixed(1)} CPU µs/req (user ${median(col(s, 'userUs')).toFixed(1)}, kernel ${median(col(s, 'systemUs')).toFixed(1)})`,
    );
  }
  console.log(
    `\n${a.id} / ${b.id}, paired by round: req/s ${fmtRatios(ratio('rps'))}; CPU/req ${fmtRatios(ratio('cpuUsPerReq'))}; p99 ${fmtRatios(ratio('p99ms'))}`,
  );
  console.log(
    `${a.id} at least ${b.id}'s req/s in ${count('rps', (x, y) => x >= y)} of ${kept} rounds, at most its CPU/req in ` +
      `${count('cpuUsPerReq', (x, y) => x <= y)}, at most its p99 in ${count('p99ms', (x, y) => x <= y)}`,
  );
}
const errors = sides.flatMap((s) => [...s.windows, ...s.setAsideWindows].filter((w) => w.errors).map((w) => `${s.id}: ${w.errors}`));
console.log(errors.length ? `errors: ${errors.join('; ')}` : 'no socket errors, no non-2xx/3xx responses');
if (jsonFile) {
  writeFileSync(
    jsonFile,
    JSON.stringify({ command, mode, path, rounds, durationS, warmupS, maxSteal, versions: v, sides: sides.map(({ id, windows, setAsideWindows }) => ({ id, windows, setAsideWindows })) }, null, 2),
  );
}

/** One measured window of side `s`: wrk's numbers, the proxy's CPU per request, and the steal. */
async function measure(s) {
  const cpu0 = cpuSplitTree(s.child.pid);
  const w = await runWrk(url(s.port), { durationS, cpu: pin.peers });
  const cpu1 = cpuSplitTree(s.child.pid);
  const perReq = (k) => ((cpu1[k] - cpu0[k]) * 1e6) / w.requests;
  return {
    rps: w.rps,
    p50ms: w.p50ms,
    p99ms: w.p99ms,
    cpuUsPerReq: perReq('user') + perReq('system'),
    userUs: perReq('user'),
    systemUs: perReq('system'),
    stealPct: w.stealMaxPct,
    stolen: w.stealMaxPct > maxSteal,
    errors: describeErrors(w.errors),
  };
}

function describeWindow(id, win) {
  return (
    `${id} ${Math.round(win.rps)} req/s p99 ${fmtMs(win.p99ms)} ${win.cpuUsPerReq.toFixed(1)} CPU µs/req ` +
    `(user ${win.userUs.toFixed(1)}, kernel ${win.systemUs.toFixed(1)}), steal ${win.stealPct.toFixed(1)}%` +
    `${win.stolen ? ' OVER THE STEAL LIMIT' : ''}${win.errors ? ` ERRORS ${win.errors}` : ''}`
  );
}

function fmtRatios(rs) {
  return `median ${median(rs).toFixed(2)} (${rs.map((r) => r.toFixed(2)).join(' ')})`;
}
