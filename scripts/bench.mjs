// Side-by-side TCP benchmark: ffi-proxy (tcp mode, 1 worker, splice off/on/auto), HAProxy (mode tcp,
// nbthread 1) and a plain Node pipe proxy (scripts/node-pipe-proxy.mjs), each in turn in front of the same
// nginx, driven by wrk. Everything runs on 127.0.0.1; the proxy under test is pinned to CPU 0, nginx and
// wrk to CPU 1.
//
//   node scripts/bench.mjs [--mode tcp|http] [--duration N] [--warmup N] [--repeat N] [--only ffi-off,haproxy]
//                          [--forwarded on|off]
//                          [--json FILE]
//   (npm run bench -- --duration 3)     BENCH_DURATION=N also sets the duration (default 10 s)
//
// --mode http (default tcp) benchmarks HTTP proxies instead, same backend, pinning and wrk runs: ffi-proxy
// --mode http --workers 1 (ffi-http; reported "unavailable" if this build's CLI refuses HTTP mode with exit 2),
// HAProxy mode http, http-reuse always, nbthread 1 (haproxy-http), a second nginx as proxy_pass proxy with an
// upstream keep-alive pool of 64, 1 worker (nginx-proxy), and the `http-proxy` npm package with a keep-alive
// agent (scripts/node-http-proxy.mjs: node-http-proxy). Ratios are to haproxy-http, plus ffi-http over
// node-http-proxy and over nginx-proxy. In HTTP mode the proxy's CPU is its process plus its children
// (nginx's master and worker).
//
// --repeat N runs the whole sequence N times (rounds, the even ones in reverse order, so drift hits every
// proxy alike) and prints medians with the req/s range: on a small VM req/s of the same setup can vary by
// 2x between runs. It then sets each ffi-proxy row against HAProxy round by round: the req/s ratios and
// their median, and in how many rounds req/s, CPU per request and p99 were on HAProxy's side of the target.
//
// First, once, wrk straight to nginx with no proxy: about the load side's own ceiling, printed under the
// table. On a 2-CPU machine nginx and wrk share one CPU; with a proxy between them they still make the same
// sends and receive the same deliveries per request, so no proxy can be measured far above what they do
// alone (not exactly: the wake-ups differ, and a short /big run is noisy).
//
// For each proxy and each response (/small: 12-byte body, /big: 1 MiB file): a 10 s wrk warm-up (two wrk
// runs, 7 s and 3 s), then `wrk -t1 -c64 -dNs --latency`. The warm-up is that long for ffi-proxy's sake and
// measures steady state: V8 compiles the hot path in the first seconds, about 8 s after start its memory
// reducer runs two compacting GCs of the control thread's heap, and the first close and reopen of the
// connections after that recompiles the hot path once; each takes the proxy's one CPU for several ms to
// tens of ms (docs/benchmarks.md, "Latency"). This script pins itself to the load side's CPU too, so that its own wake-ups
// never take the proxy's. The proxy's CPU time (utime+stime of its process, all threads, from
// /proc/PID/stat) is read just before and just after the measured run: CPU µs/request = CPU s * 1e6 / requests.
// Each run also reads the VM's steal time (scripts/lib/peers.mjs, stealTicks): the steal% column is the most
// of either CPU in any round, and rows over 1% are named under the table, since steal alone can multiply a
// p99 (for latency use ab.mjs, which measures such a window again). Needs the build (npx tsc -p .) and
// haproxy, nginx, wrk on PATH. Every process it starts is killed when it ends, on error, on Ctrl-C, and by
// a watchdog if a run hangs.

import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  HOST,
  SMALL_BODY,
  BIG_SIZE,
  argValue,
  clockTicks,
  cpuPlan,
  childPids,
  cpuSeconds,
  cpuSecondsTree,
  describeErrors,
  freePort,
  httpGet,
  installCleanup,
  makeTempDir,
  procName,
  removeDirLater,
  requireTools,
  runWrk,
  sleep,
  startNginx,
  stopChild,
  tail,
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

const durationS = Number(argValue(argv, 'duration') ?? process.env.BENCH_DURATION ?? 10);
const warmupS = Number(argValue(argv, 'warmup') ?? process.env.BENCH_WARMUP ?? 10);
const connections = Number(argValue(argv, 'connections') ?? 64);
const repeat = Number(argValue(argv, 'repeat') ?? process.env.BENCH_REPEAT ?? 1);
const jsonFile = argValue(argv, 'json');
const mode = argValue(argv, 'mode') ?? 'tcp';
if (mode !== 'tcp' && mode !== 'http') {
  process.stderr.write(`bench: --mode takes tcp or http (got ${mode})\n`);
  process.exit(2);
}
const HTTP = mode === 'http';
// HTTP mode: whether every proxy adds X-Forwarded-For, -Proto and -Host to the requests it forwards. On by
// default, so that all do the same work: ffi-proxy adds them unless told not to, while HAProxy, nginx and
// http-proxy add none unless configured to, and three more header lines cost the backend (one nginx, on
// the load side's CPU) measurably. --forwarded off turns them off everywhere.
const forwarded = argValue(argv, 'forwarded') ?? 'on';
if (forwarded !== 'on' && forwarded !== 'off') {
  process.stderr.write(`bench: --forwarded takes on or off (got ${forwarded})\n`);
  process.exit(2);
}
const FORWARDED = forwarded === 'on';
for (const [k, v] of [['duration', durationS], ['warmup', warmupS], ['connections', connections], ['repeat', repeat]]) {
  if (!Number.isInteger(v) || v < (k === 'warmup' ? 0 : 1)) {
    process.stderr.write(`bench: --${k} must be a whole number${k === 'warmup' ? '' : ' >= 1'} (got ${v})\n`);
    process.exit(2);
  }
}

const PROXIES = proxyList(mode, { forwarded: FORWARDED });

const only = argValue(argv, 'only');
// The access-log entries are measured on request (--only, or ab.mjs): the run of record compares proxies as set up without one.
let selected = PROXIES.filter((p) => !p.logged && !p.optional);
if (only !== undefined) {
  const want = only.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = want.filter((w) => !PROXIES.some((p) => p.id === w));
  if (unknown.length || !want.length) {
    process.stderr.write(`bench: --only takes a comma list of ${PROXIES.map((p) => p.id).join(', ')} (got ${only})\n`);
    process.exit(2);
  }
  selected = PROXIES.filter((p) => want.includes(p.id));
}

const RESPONSES = [
  { id: 'small', path: '/small', bytes: SMALL_BODY.length },
  { id: 'big', path: '/big', bytes: BIG_SIZE },
];

// ---------------------------------------------------------------------------------------------------------

/** Busy and total jiffies per CPU from /proc/stat, to see which side of the pinning was saturated. */
function cpuTimes() {
  const out = {};
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const f = m[2].split(/\s+/).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // user..steal (guest is inside user)
    const idle = f[3] + f[4]; // idle + iowait
    out[m[1]] = { busy: total - idle, total };
  }
  return out;
}
function busyPercent(a, b, cpu) {
  const x = a[cpu];
  const y = b[cpu];
  if (!x || !y || y.total === x.total) return null;
  return (100 * (y.busy - x.busy)) / (y.total - x.total);
}

/** Cpus_allowed_list of `pid` ("0", "0-1"), or null if unreadable. */
function cpusAllowed(pid) {
  try {
    return /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

function alive(child) {
  return child.exitCode === null && child.signalCode === null;
}

async function benchOne(proxy, nginx, pin, dir) {
  const port = await freePort();
  const child = await proxy.start(port, nginx.port, pin.proxy, dir);
  const rows = [];
  const note = (text) => process.stderr.write(`  ${proxy.id}: ${text}\n`);
  // In HTTP mode the CPU of the proxy's children counts too (nginx: master + worker).
  const cpuOf = HTTP ? cpuSecondsTree : cpuSeconds;
  let unavailable = null;
  try {
    await waitUntilServing(child, port, { banner: proxy.banner, timeoutMs: 15000 });
    const comm = procName(child.pid);
    if (comm === 'taskset') throw new Error(`pid ${child.pid} is still taskset, not the proxy`);
    let kids;
    if (HTTP) {
      // Everything measured must run where the proxy is pinned (nginx's worker inherits the master's mask).
      kids = childPids(child.pid);
      for (const p of [child.pid, ...kids]) {
        const allowed = cpusAllowed(p);
        if (allowed !== null && allowed !== String(pin.proxy)) {
          throw new Error(`pid ${p} (${procName(p)}) may run on CPUs ${allowed}, not only ${pin.proxy}`);
        }
      }
    }

    for (const resp of RESPONSES) {
      const row = {
        proxy: proxy.id,
        label: proxy.label,
        response: resp.id,
        pid: child.pid,
        comm,
        ...(HTTP ? { childPids: kids } : {}),
        problems: [],
      };
      rows.push(row);
      // One request first: a proxy that does not pass the response through whole is not benchmarked.
      try {
        const r = await httpGet(port, resp.path, 10000, { tls: proxy.tls });
        if (r.status !== 200 || r.length !== resp.bytes) {
          row.problems.push(`check GET ${resp.path}: status ${r.status}, ${r.length} B (want 200, ${resp.bytes} B)`);
          continue;
        }
      } catch (e) {
        row.problems.push(`check GET ${resp.path}: ${e.message}`);
        continue;
      }
      const url = `${proxy.tls ? 'https' : 'http'}://${HOST}:${port}${resp.path}`;
      // The warm-up is two wrk runs (7 s and 3 s by default), so that the proxy sees its connections close
      // and new ones open after V8 has optimized its hot path: the first time that happens, code compiled
      // without ever seeing a close or an accept is thrown away and compiled again (tens of ms on its one
      // CPU), which belongs to the warm-up, not to the measured run.
      for (const d of warmupRuns(warmupS)) {
        const w = await runWrk(url, { durationS: d, connections, cpu: pin.peers });
        const we = describeErrors(w.errors);
        if (we) row.problems.push(`warm-up errors: ${we}`);
      }
      if (!alive(child)) throw new Error(`${proxy.id} died during the warm-up:\n${tail(child.output)}`);

      const sys0 = cpuTimes();
      const cpu0 = cpuOf(child.pid);
      const t0 = process.hrtime.bigint();
      const w = await runWrk(url, { durationS, connections, cpu: pin.peers });
      const cpu1 = cpuOf(child.pid);
      const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
      const sys1 = cpuTimes();

      const cpuS = cpu1 - cpu0;
      Object.assign(row, {
        rps: w.rps,
        requests: w.requests,
        transferPerSec: w.transferPerSec,
        p50ms: w.p50ms,
        p90ms: w.p90ms,
        p99ms: w.p99ms,
        errors: w.errors,
        proxyCpuS: cpuS,
        cpuUsPerReq: w.requests ? (cpuS * 1e6) / w.requests : null,
        proxyCpuPct: (100 * cpuS) / wallS,
        cpuBusyPct: { proxyCpu: busyPercent(sys0, sys1, pin.proxy), peersCpu: busyPercent(sys0, sys1, pin.peers) },
        stealPct: w.stealMaxPct,
        wrkCommand: w.command,
      });
      const we = describeErrors(w.errors);
      if (we) row.problems.push(`wrk errors: ${we}`);
      if (!alive(child)) row.problems.push('proxy died during the run');
      process.stderr.write(
        `  ${proxy.id} ${resp.id}: ${Math.round(w.rps)} req/s, p50 ${fmtMs(w.p50ms)}, p99 ${fmtMs(w.p99ms)}, ` +
          `${fmt(row.cpuUsPerReq, 1)} CPU µs/req, steal ${w.stealMaxPct.toFixed(1)}%${we ? `, ERRORS: ${we}` : ''}\n`,
      );
      if (!alive(child)) throw new Error(`${proxy.id} died during the run:\n${tail(child.output)}`);
    }
  } catch (e) {
    // ffi-proxy builds without HTTP mode refuse it at start with exit code 2 and one line: not a failure of
    // the benchmark, the row says "unavailable" with that line.
    if (proxy.ffi && HTTP && !rows.length) {
      const exited = await Promise.race([child.exited, sleep(2000).then(() => null)]);
      if (exited?.code === 2) {
        unavailable = child.output.split('\n').find((l) => l.trim())?.trim() ?? 'exit code 2 at start';
      }
    }
    if (unavailable) {
      note(`unavailable: ${unavailable}`);
      for (const resp of RESPONSES) {
        rows.push({ proxy: proxy.id, label: proxy.label, response: resp.id, unavailable, problems: [] });
      }
    } else {
      note(`FAILED: ${e.message}`);
      if (!rows.length) rows.push({ proxy: proxy.id, label: proxy.label, response: '-', problems: [] });
      rows.at(-1).problems.push(e.message.split('\n')[0]);
    }
  } finally {
    const wasAlive = alive(child);
    const { code, signal } = await stopChild(child, { signal: 'SIGTERM', graceMs: 10000 });
    if (wasAlive && code !== 0 && signal !== 'SIGTERM') {
      rows.at(-1)?.problems.push(`exited ${signal ?? code} on SIGTERM`);
    }
    // Anything the proxy logged at warn or above (the ffi-proxy banner and HAProxy's startup notices aside).
    const logged = child.output
      .split('\n')
      .filter((l) => l.trim() && !/listening on|^backend: |^tls: |SIGTERM: no longer accepting|draining/.test(l));
    for (const r of rows) r.log = logged.slice(-20);
    if (logged.length && !unavailable) note(`logged ${logged.length} line(s), last: ${logged.at(-1)}`);
    if (proxy.id === 'nginx-proxy' && existsSync(child.errorLog)) {
      const errs = readFileSync(child.errorLog, 'utf8').trim();
      if (errs) {
        for (const r of rows) r.errorLog = tail(errs, 20).split('\n');
        note(`error log: ${tail(errs, 1)}`);
      }
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------------

function fmt(x, digits = 0) {
  return x === null || x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits);
}
/** One row per proxy and response over the rounds: medians, the req/s range, every problem. */
function aggregate(runs) {
  const groups = new Map();
  for (const r of runs) {
    const k = `${r.proxy} ${r.response}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(r);
  }
  return [...groups.values()].map((g) => {
    const ok = g.filter((r) => typeof r.rps === 'number');
    const med = (f) => median(ok.map(f));
    return {
      proxy: g[0].proxy,
      label: g[0].label,
      response: g[0].response,
      rounds: g.length,
      rps: ok.length ? med((r) => r.rps) : null,
      rpsMin: ok.length ? Math.min(...ok.map((r) => r.rps)) : null,
      rpsMax: ok.length ? Math.max(...ok.map((r) => r.rps)) : null,
      requests: med((r) => r.requests),
      p50ms: med((r) => r.p50ms),
      p99ms: med((r) => r.p99ms),
      cpuUsPerReq: med((r) => r.cpuUsPerReq),
      proxyCpuPct: med((r) => r.proxyCpuPct),
      cpuBusyPct: { proxyCpu: med((r) => r.cpuBusyPct.proxyCpu), peersCpu: med((r) => r.cpuBusyPct.peersCpu) },
      // The most of any round: one stolen round is enough to move a median p99.
      stealPct: ok.length ? Math.max(...ok.map((r) => r.stealPct)) : null,
      problems: g.flatMap((r) => r.problems.map((p) => (repeat > 1 ? `round ${r.round}: ${p}` : p))),
      log: g.at(-1).log,
      ...(g.every((r) => r.unavailable) ? { unavailable: g[0].unavailable } : {}),
      ...(g.some((r) => r.unavailable) && !g.every((r) => r.unavailable)
        ? { partlyUnavailable: g.filter((r) => r.unavailable).map((r) => r.round) }
        : {}),
      ...(g.some((r) => r.errorLog) ? { errorLog: g.findLast((r) => r.errorLog).errorLog } : {}),
    };
  });
}

function table(rows) {
  return HTTP ? httpTable(rows) : tcpTable(rows);
}

function tcpTable(rows) {
  const by = (id, resp) => rows.find((r) => r.proxy === id && r.response === resp && r.rps);
  const head = ['proxy', 'resp', 'req/s', 'p50', 'p99', 'CPU µs/req', 'proxy CPU%', 'CPU1%', 'steal%', 'rps/hap', 'cpu/hap', 'rps/pipe', 'errors'];
  if (repeat > 1) head.splice(3, 0, 'req/s min-max');
  const lines = [head];
  for (const r of rows) {
    const hap = by('haproxy', r.response);
    const pipe = by('node-pipe', r.response);
    const ok = r.rps !== undefined && r.rps !== null;
    lines.push([
      r.proxy,
      r.response,
      ok ? fmt(r.rps) : '-',
      ok ? fmtMs(r.p50ms) : '-',
      ok ? fmtMs(r.p99ms) : '-',
      ok ? fmt(r.cpuUsPerReq, r.cpuUsPerReq < 100 ? 1 : 0) : '-',
      ok ? fmt(r.proxyCpuPct) : '-',
      ok ? fmt(r.cpuBusyPct?.peersCpu) : '-',
      ok ? fmt(r.stealPct, 1) : '-',
      ok && hap ? fmt(r.rps / hap.rps, 2) : '-',
      ok && hap && hap.cpuUsPerReq ? fmt(r.cpuUsPerReq / hap.cpuUsPerReq, 2) : '-',
      ok && pipe && r.proxy.startsWith('ffi-') ? fmt(r.rps / pipe.rps, 2) : '-',
      r.problems.length ? `YES (${r.problems.length})` : 'none',
    ]);
    if (repeat > 1) lines.at(-1).splice(3, 0, ok ? `${fmt(r.rpsMin)}-${fmt(r.rpsMax)}` : '-');
  }
  return layout(head, lines);
}

/** HTTP mode: ratios to haproxy-http, and ffi-http over node-http-proxy and over nginx-proxy. */
function httpTable(rows) {
  const by = (id, resp) => rows.find((r) => r.proxy === id && r.response === resp && r.rps);
  const head = ['proxy', 'resp', 'req/s', 'p50', 'p99', 'CPU µs/req', 'proxy CPU%', 'CPU1%', 'steal%', 'rps/hap', 'cpu/hap', 'rps/node', 'rps/nginx', 'errors'];
  if (repeat > 1) head.splice(3, 0, 'req/s min-max');
  const lines = [head];
  for (const r of rows) {
    const hap = by('haproxy-http', r.response);
    const node = by('node-http-proxy', r.response);
    const ngx = by('nginx-proxy', r.response);
    const ok = r.rps !== undefined && r.rps !== null;
    const ffi = r.proxy === 'ffi-http';
    lines.push([
      r.proxy,
      r.response,
      ok ? fmt(r.rps) : r.unavailable ? 'unavailable' : '-',
      ok ? fmtMs(r.p50ms) : '-',
      ok ? fmtMs(r.p99ms) : '-',
      ok ? fmt(r.cpuUsPerReq, r.cpuUsPerReq < 100 ? 1 : 0) : '-',
      ok ? fmt(r.proxyCpuPct) : '-',
      ok ? fmt(r.cpuBusyPct?.peersCpu) : '-',
      ok ? fmt(r.stealPct, 1) : '-',
      ok && hap ? fmt(r.rps / hap.rps, 2) : '-',
      ok && hap && hap.cpuUsPerReq ? fmt(r.cpuUsPerReq / hap.cpuUsPerReq, 2) : '-',
      ok && ffi && node ? fmt(r.rps / node.rps, 2) : '-',
      ok && ffi && ngx ? fmt(r.rps / ngx.rps, 2) : '-',
      r.problems.length ? `YES (${r.problems.length})` : r.unavailable ? '-' : 'none',
    ]);
    if (repeat > 1) lines.at(-1).splice(3, 0, ok ? `${fmt(r.rpsMin)}-${fmt(r.rpsMax)}` : '-');
  }
  return layout(head, lines);
}

/**
 * With --repeat, each ffi-proxy row against HAProxy round by round (both ran within minutes of each other in
 * a round, so the VM's drift hits the pair alike): in how many rounds its req/s was at least HAProxy's,
 * its CPU per request at most HAProxy's and its p99 at most HAProxy's, and the median of the per-round
 * req/s ratios. Medians of each proxy alone can differ from that when the rounds swing.
 */
function pairedLines(runs) {
  const hapId = HTTP ? 'haproxy-http' : 'haproxy';
  const out = [];
  for (const resp of RESPONSES.map((r) => r.id)) {
    const hap = new Map(runs.filter((r) => r.proxy === hapId && r.response === resp && typeof r.rps === 'number').map((r) => [r.round, r]));
    for (const id of [...new Set(runs.filter((r) => r.proxy.startsWith('ffi-')).map((r) => r.proxy))]) {
      const pairs = runs
        .filter((r) => r.proxy === id && r.response === resp && typeof r.rps === 'number' && hap.has(r.round))
        .map((r) => [r, hap.get(r.round)]);
      if (pairs.length < 2) continue;
      const n = pairs.length;
      const count = (f) => pairs.filter(([a, b]) => f(a, b)).length;
      out.push(
        `${id} ${resp} vs ${hapId}, round by round: req/s ${pairs.map(([a, b]) => fmt(a.rps / b.rps, 2)).join(' ')} ` +
          `(median ${fmt(median(pairs.map(([a, b]) => a.rps / b.rps)), 2)}; at least HAProxy's in ${count((a, b) => a.rps >= b.rps)} of ${n}), ` +
          `CPU/req at most HAProxy's in ${count((a, b) => a.cpuUsPerReq <= b.cpuUsPerReq)} of ${n}, ` +
          `p99 ${pairs.map(([a, b]) => `${fmtMs(a.p99ms)}/${fmtMs(b.p99ms)}`).join(' ')} (at most HAProxy's in ${count((a, b) => a.p99ms <= b.p99ms)} of ${n})`,
      );
    }
  }
  return out;
}

function layout(head, lines) {
  const widths = head.map((_, i) => Math.max(...lines.map((l) => String(l[i]).length)));
  const right = new Set(head.map((_, i) => i).filter((i) => i >= 2 && i < head.length - 1));
  const out = lines.map((l) => l.map((c, i) => (right.has(i) ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i]))).join('  '));
  out.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------------------

requireTools(['haproxy', 'nginx', 'wrk', 'taskset', 'getconf']);
if (!existsSync(CLI)) {
  process.stderr.write(`bench: ${CLI} is missing; build first: npx tsc -p .\n`);
  process.exit(1);
}
const perProxyS = RESPONSES.length * (warmupS + durationS + 20) + 30;
const directS = RESPONSES.length * (3 + durationS + 2);
installCleanup({ deadlineMs: (repeat * selected.length * perProxyS + directS + 60) * 1000 });

const pin = cpuPlan();
// Every thread of this script to the load side's CPU: the proxy's CPU is the proxy's alone.
spawnSync('taskset', ['-a', '-p', '-c', String(pin.peers), String(process.pid)], { stdio: 'ignore' });
const dir = makeTempDir();
removeDirLater(dir);
const meta = {
  date: new Date().toISOString(),
  command: `node scripts/bench.mjs ${argv.join(' ')}`.trim(),
  durationS,
  warmupS,
  connections,
  wrkThreads: 1,
  pinning: { proxy: `CPU ${pin.proxy}`, nginxAndWrk: `CPU ${pin.peers}` },
  clkTck: clockTicks(),
  versions: versions(),
  ...(HTTP ? { mode, forwarded } : {}),
};
process.stderr.write(
  `bench: ${HTTP ? 'HTTP mode: ' : ''}${selected.map((p) => p.id).join(', ')}; /small and /big; ${warmupS} s warm-up + ${durationS} s each, ` +
    `wrk -t1 -c${connections}; proxy on CPU ${pin.proxy}, nginx+wrk on CPU ${pin.peers}; about ` +
    `${Math.ceil((repeat * selected.length * RESPONSES.length * (warmupS + durationS + 1)) / 60)} min` +
    `${repeat > 1 ? ` (${repeat} rounds, medians)` : ''}\n`,
);
if (pin.shared) process.stderr.write('bench: WARNING: one CPU only, proxy and peers share CPU 0\n');

const nginx = await startNginx(dir, { cpu: pin.peers });
process.stderr.write(`bench: nginx on ${HOST}:${nginx.port} (pid ${nginx.pid}), temp dir ${dir}\n`);

// About the load side's own ceiling: wrk straight to nginx, no proxy, on the same CPU (see the top). A
// ratio between two proxies near it says more about the cap than about them.
meta.direct = {};
for (const resp of RESPONSES) {
  const url = `http://${HOST}:${nginx.port}${resp.path}`;
  await runWrk(url, { durationS: 3, connections, cpu: pin.peers });
  const w = await runWrk(url, { durationS, connections, cpu: pin.peers });
  meta.direct[resp.id] = { rps: w.rps, p50ms: w.p50ms, p99ms: w.p99ms, errors: describeErrors(w.errors) || null };
  process.stderr.write(`  no proxy ${resp.id}: ${Math.round(w.rps)} req/s, p50 ${fmtMs(w.p50ms)}, p99 ${fmtMs(w.p99ms)}\n`);
}

const runs = [];
for (let round = 1; round <= repeat; round++) {
  if (repeat > 1) process.stderr.write(`bench: round ${round} of ${repeat}\n`);
  // Even rounds run the proxies in reverse, so that no proxy always runs first, or always right after
  // the same one.
  for (const proxy of round % 2 ? selected : [...selected].reverse()) {
    if (!alive(nginx)) throw new Error(`nginx died:\n${tail(nginx.output)}`);
    for (const r of await benchOne(proxy, nginx, pin, dir)) runs.push({ round, ...r });
  }
}
const rows = repeat > 1 ? aggregate(runs) : runs;
const nginxErrors = existsSync(nginx.errorLog) ? readFileSync(nginx.errorLog, 'utf8').trim() : '';
await stopChild(nginx, { signal: 'SIGQUIT', graceMs: 5000 });

const v = meta.versions;
console.log(`\n${meta.command}   (${meta.date})`);
console.log(`${v.haproxy} | ${v.nginx} | ${v.wrk} | node ${v.node} | kernel ${v.kernel}`);
if (HTTP) {
  console.log(
    `HTTP mode; ${repeat > 1 ? `median of ${repeat} rounds; ` : ''}wrk -t1 -c${connections} -d${durationS}s --latency (keep-alive) after a ${warmupS} s warm-up; ` +
      `proxy pinned to CPU ${pin.proxy}, nginx+wrk to CPU ${pin.peers}; CPU µs/req from utime+stime in /proc of the proxy's process ` +
      `and its children (nginx-proxy: master + worker) (CLK_TCK ${meta.clkTck}); ` +
      `X-Forwarded-For/-Proto/-Host ${FORWARDED ? 'added by every proxy' : 'added by none'} (--forwarded ${forwarded})`,
  );
  console.log(
    'rps/hap, cpu/hap: ratio to haproxy-http on the same response; rps/node, rps/nginx: ffi-http over node-http-proxy, ' +
      'over nginx-proxy; CPU1%: nginx+wrk CPU busy\n',
  );
} else {
  console.log(
    `${repeat > 1 ? `median of ${repeat} rounds; ` : ''}wrk -t1 -c${connections} -d${durationS}s --latency after a ${warmupS} s warm-up; proxy pinned to CPU ${pin.proxy}, ` +
      `nginx+wrk to CPU ${pin.peers}; CPU µs/req from the proxy's /proc/PID/stat utime+stime (CLK_TCK ${meta.clkTck})`,
  );
  console.log('rps/hap, cpu/hap: ratio to HAProxy on the same response; rps/pipe: ffi-proxy over the Node pipe proxy; CPU1%: nginx+wrk CPU busy\n');
}
console.log(table(rows));
console.log(
  `\nno proxy (wrk straight to nginx, CPU ${pin.peers} alone), about the most any row can reach: ` +
    RESPONSES.map((r) => `${r.id} ${fmt(meta.direct[r.id].rps)} req/s (p99 ${fmtMs(meta.direct[r.id].p99ms)})`).join(', '),
);
if (repeat > 1) {
  const paired = pairedLines(runs);
  if (paired.length) console.log(`\n${paired.join('\n')}`);
}
const stolen = rows.filter((r) => r.stealPct > 1);
if (stolen.length) {
  console.log(
    `\nsteal over 1% of a CPU in ${stolen.map((r) => `${r.proxy} ${r.response}`).join(', ')}: the hypervisor ran another guest on ` +
      'our CPUs, which alone can multiply a p99; for latency, scripts/ab.mjs measures such windows again',
  );
}
const problems = rows.filter((r) => r.problems.length);
const unavailable = [...new Map(rows.filter((r) => r.unavailable).map((r) => [r.proxy, r.unavailable])).entries()];
if (problems.length) {
  console.log('\nERRORS / PROBLEMS:');
  for (const r of problems) console.log(`  ${r.proxy} ${r.response}: ${r.problems.join('; ')}`);
} else {
  console.log(
    `\nno socket errors, no non-2xx/3xx responses, every ${unavailable.length ? 'available ' : ''}proxy passed /small and /big through intact`,
  );
}
for (const [id, reason] of unavailable) console.log(`${id}: unavailable: ${reason}`);
for (const r of rows.filter((r) => r.partlyUnavailable)) {
  console.log(`${r.proxy} ${r.response}: unavailable in round(s) ${r.partlyUnavailable.join(', ')}; medians over the others`);
}
const logged = [...new Map(rows.filter((r) => r.log?.length && !r.unavailable).map((r) => [r.proxy, r.log])).entries()];
for (const [id, lines] of logged) console.log(`${id} logged: ${lines.slice(-3).join(' | ')}`);
if (nginxErrors) console.log(`nginx error log: ${tail(nginxErrors, 3).replace(/\n/g, ' | ')}`);
const proxyNginxErrors = rows.find((r) => r.proxy === 'nginx-proxy' && r.errorLog?.length)?.errorLog;
if (proxyNginxErrors) console.log(`nginx-proxy error log: ${proxyNginxErrors.slice(-3).join(' | ')}`);

if (jsonFile) {
  const doc = { meta: { ...meta, repeat }, results: rows, runs: repeat > 1 ? runs : undefined, nginxErrorLog: nginxErrors || null };
  writeFileSync(jsonFile, JSON.stringify(doc, null, 2) + '\n');
  console.log(`results written to ${jsonFile}`);
}
process.exitCode = problems.length ? 1 : 0;
