// Interleaved A/B benchmark: ffi-proxy and HAProxy running at the same time, measured in short windows
// that alternate between them (A B, then B A, ...), so that the VM's drift, which on a small VM can move a
// proxy's requests/s by 20% from one minute to the next, hits both alike. bench.mjs runs each proxy in
// turn, 40 s or more apart within a round; use this for a small difference, such as the small-message
// ratio, and bench.mjs for the whole picture.
//
//   node scripts/ab.mjs [--mode tcp|http] [--path /small|/big] [--servers N] [--rounds N] [--duration S]
//                       [--warmup S] [--a ffi-auto] [--b haproxy | --b-ref GITREF] [--a-ref GITREF]
//                       [--max-steal PCT] [--retries N] [--cert ec|rsa] [--json FILE]
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
//
// A change against the commit before it: --b-ref GITREF makes side B the same ffi-proxy entry as side A,
// with the same flags, run from a build of GITREF instead of the working tree's dist/ (leave out --b). The
// commit is unpacked with `git archive` into a temporary folder (nothing is written to .git or the working
// tree), given a symlink to this tree's node_modules, built with this tree's TypeScript and removed at the
// end. B is then labelled with the short hash (ffi-auto@1a2b3c4), so the ratios A/B read new/old. --a-ref
// GITREF builds side A from a commit the same way (with both, the working tree's dist/ is not used; with
// --a-ref alone, B is --b as usual). The header and --json name the working tree's HEAD, whether it had
// uncommitted changes, and the commit of each build; dist/ itself is whatever was last built, and a
// warning says so when src/ has changed since. For example, after a refactor, built with npx tsc -p .:
//
//   node scripts/ab.mjs --mode tcp --b-ref HEAD~1 --rounds 8
//
// A pool of servers: --servers N (default 1) starts N nginx servers, each on its own port and all pinned
// where the one is, and gives both proxies all N, balanced round-robin: ffi-proxy through a config file
// written into the run's temp dir (one frontend, one backend of N servers, `balance: round-robin`, and the
// settings its flags give with one server), HAProxy with N server lines and `balance roundrobin`; neither
// checks the servers' health. In HTTP mode each request picks a server, in TCP mode each connection. Only
// the ffi entries and HAProxy take a pool, and a build from a commit older than config files (--b-ref)
// cannot. The header and --json say how many servers there were, and, per side, each server's share of
// the servers' CPU time over the kept windows (about 1/N each when round-robin spreads the load). E.g.:
//
//   node scripts/ab.mjs --mode http --servers 3 --rounds 8
//
// TLS: the entries marked `tls` (ffi-tls-http, haproxy-tls-http, ffi-tls-tcp, haproxy-tls-tcp) terminate
// TLS with a self-signed certificate made for the run in its temp dir by the openssl CLI, P-256 or, with
// --cert rsa, RSA-2048. wrk then speaks https:// to them (keep-alive: the handshakes are in the warm-up,
// the windows measure the records), the check GET is https without verification, and the header says the
// TLS version and cipher suite each side negotiates with OpenSSL's defaults. E.g., against HAProxy's
// `bind ... ssl crt`:
//
//   node scripts/ab.mjs --mode http --a ffi-tls-http --b haproxy-tls-http --rounds 8

import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import {
  ROOT,
  HOST,
  SMALL_BODY,
  BIG_SIZE,
  cliArgs,
  argValue,
  cpuPlan,
  cpuSecondsTree,
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
  alternatingRounds,
  stopSides,
  tlsParams,
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
const servers = intArg('servers', 1);
const tlsKind = argValue(argv, 'cert') ?? 'ec';
if (tlsKind !== 'ec' && tlsKind !== 'rsa') usage(`--cert takes ec (P-256) or rsa (RSA-2048) (got ${tlsKind})`);
const list = proxyList(mode, { generatedBy: 'scripts/ab.mjs', tlsKind });
const refs = [refArg('a-ref'), refArg('b-ref')];
const ids = [argValue(argv, 'a') ?? (mode === 'http' ? 'ffi-http' : 'ffi-auto'), argValue(argv, 'b')];
// --b-ref compares a build with another build of the same proxy: B is A's entry unless --b says so too.
if (refs[1] && ids[1] !== undefined && ids[1] !== ids[0]) usage(`--b-ref runs side A's proxy (${ids[0]}) from another commit: leave out --b (got --b ${ids[1]})`);
ids[1] ??= refs[1] ? ids[0] : mode === 'http' ? 'haproxy-http' : 'haproxy';
const pair = ids.map((id) => list.find((p) => p.id === id) ?? usage(`--a/--b take one of ${list.map((p) => p.id).join(', ')} (got ${id})`));
refs.forEach((ref, i) => {
  if (ref && !pair[i].ffi) usage(`--${'ab'[i]}-ref builds ffi-proxy, but side ${'AB'[i]} is ${ids[i]}: give --a one of ${list.filter((p) => p.ffi).map((p) => p.id).join(', ')}`);
});
if (ids[0] === ids[1] && !refs[0] && !refs[1]) usage('--a and --b must differ (or give --b-ref GITREF to compare two builds of one)');
pair.forEach((p, i) => {
  if (servers > 1 && !p.pool) usage(`--servers ${servers}: side ${'AB'[i]} (${p.id}) takes one server; those that take a pool: ${list.filter((q) => q.pool).map((q) => q.id).join(', ')}`);
});
const tree = treeState();
// Each side's name in the output: the entry's id, with @shorthash when it runs a build of a commit.
const labels = ids.map((id, i) => (refs[i] ? `${id}@${refs[i].short}` : id));
if (labels[0] === labels[1]) labels.forEach((l, i) => (labels[i] = `${l} (${'AB'[i]})`)); // --a-ref X --b-ref X: an A/A run

requireTools(['haproxy', 'nginx', 'wrk', 'taskset', ...(pair.some((p) => p.tls) ? ['openssl'] : [])]);
if (pair.some((p, i) => p.ffi && !refs[i]) && !existsSync(CLI)) {
  process.stderr.write(`ab: ${CLI} is missing; build first: npx tsc -p .\n`);
  process.exit(1);
}
const builds = refs.filter((r, i) => r && refs.findIndex((q) => q?.sha === r.sha) === i).length;
installCleanup({ deadlineMs: (builds * 300 + 2 * (warmupS + 20) + rounds * 2 * (retries + 1) * (durationS + 5) + 120) * 1000 });
if (tree.distStale) process.stderr.write(`ab: warning: ${tree.distStale} is newer than dist/cli.js: the working tree's side runs what was last built (npx tsc -p .)\n`);
const cliOf = new Map();
for (const ref of refs) if (ref && !cliOf.has(ref.sha)) cliOf.set(ref.sha, buildRef(ref));
const pin = cpuPlan();
spawnSync('taskset', ['-a', '-p', '-c', String(pin.peers), String(process.pid)], { stdio: 'ignore' });
const dir = makeTempDir();
removeDirLater(dir);
const command = `node scripts/ab.mjs ${argv.join(' ')}`.trim();
process.stderr.write(
  `ab: ${mode} ${path}${servers > 1 ? ` through ${servers} nginx servers` : ''}: ${labels.join(' and ')}, ${rounds} rounds of ${durationS} s each after a ${warmupS} s warm-up each; ` +
    `about ${Math.ceil((2 * warmupS + rounds * 2 * (durationS + 1)) / 60)} min\n`,
);
// One nginx in the run's temp dir, as ever; with --servers N, each in a folder of its own (conf, pid, logs).
const nginxes = [];
for (let i = 0; i < servers; i++) {
  const d = servers === 1 ? dir : join(dir, `nginx-${i + 1}`);
  mkdirSync(d, { recursive: true });
  chmodSync(d, 0o755); // as makeTempDir: nginx's worker may run as another user
  nginxes.push(await startNginx(d, { cpu: pin.peers }));
}
const backend = servers === 1 ? nginxes[0].port : nginxes.map((n) => n.port);
const url = (port, tls) => `${tls ? 'https' : 'http'}://${HOST}:${port}${path}`;

const sides = [];
for (const [i, entry] of pair.entries()) {
  const ref = refs[i];
  // A side built from a commit takes its entry from a list whose ffi entries run that build's cli.js.
  const proxy = ref ? proxyList(mode, { generatedBy: 'scripts/ab.mjs', tlsKind, cli: cliOf.get(ref.sha) }).find((p) => p.id === entry.id) : entry;
  const port = await freePort();
  const child = await proxy.start(port, backend, pin.proxy, dir);
  await waitUntilServing(child, port, { banner: proxy.banner, timeoutMs: 15000 });
  const r = await httpGet(port, path, 10000, { tls: proxy.tls });
  if (r.status !== 200 || r.length !== bytes) throw new Error(`${labels[i]}: GET ${path}: ${r.status}, ${r.length} B (want 200, ${bytes} B)`);
  const tls = proxy.tls ? { cert: tlsKind === 'rsa' ? 'RSA-2048' : 'P-256', ...(await tlsParams(port, 10000)) } : null;
  // As bench.mjs: two runs, so that the proxy sees its connections close and reopen once warm.
  for (const d of warmupRuns(warmupS)) {
    await runWrk(url(port, proxy.tls), { durationS: d, cpu: pin.peers });
  }
  const build = ref ? { from: 'commit', ref: ref.ref, sha: ref.sha } : proxy.ffi ? { from: 'working tree dist/', head: tree.head, dirty: tree.dirty } : null;
  sides.push({ id: proxy.id, label: labels[i], build, tls, port, child, windows: [], setAsideWindows: [] });
}

const setAside = await alternatingRounds(sides, rounds, retries, measure, (s, w) => describeWindow(s.label, w));
await stopSides(sides);
for (const n of nginxes) await stopChild(n, { signal: 'SIGQUIT', graceMs: 5000 });

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
  `${mode} ${path}; ${rounds} rounds, A/B alternating; wrk -t1 -c64 -d${durationS}s --latency per window; both proxies on CPU ${pin.proxy}, ` +
    `${servers > 1 ? `${servers} nginx servers (round-robin, ports ${backend.join(' ')})` : 'nginx'}+wrk on CPU ${pin.peers}`,
);
for (const [i, s] of sides.entries()) {
  if (s.tls) console.log(`${'AB'[i]} ${s.label}: TLS, a self-signed ${s.tls.cert} certificate; ${s.tls.protocol} ${s.tls.cipher}${s.tls.group ? ` ${s.tls.group}` : ''} with OpenSSL's defaults`);
  if (!s.build) continue;
  console.log(
    `${'AB'[i]} ${s.label}: ` +
      (s.build.from === 'commit'
        ? `${s.build.ref} = ${s.build.sha}, built for this run with TypeScript ${tree.tsc}`
        : `the working tree's dist/ (built ${tree.distBuilt}), HEAD ${tree.head}` +
          `${tree.dirty ? ` with ${tree.changes} uncommitted change(s)` : ', no uncommitted changes'}${tree.distStale ? `; ${tree.distStale} is newer than dist/` : ''}`),
  );
}
console.log(
  `steal limit ${maxSteal}% of a window: ${setAside} round(s) set aside and measured again; ` +
    `${rounds - kept} round(s) still over it after ${retries} retries, left out of what follows\n`,
);
if (kept === 0) {
  // Every round stayed over the steal limit: nothing to compare (the windows are still in --json).
  console.log('no round was under the steal limit: try again later, or raise --max-steal');
  process.exitCode = 1;
} else {
  const width = Math.max(14, ...sides.map((s) => s.label.length));
  for (const s of sides) {
    console.log(
      `${s.label.padEnd(width)} median ${Math.round(median(col(s, 'rps')))} req/s, p50 ${fmtMs(median(col(s, 'p50ms')))}, p99 ${fmtMs(median(col(s, 'p99ms')))}, ` +
        `${median(col(s, 'cpuUsPerReq')).toFixed(1)} CPU µs/req (user ${median(col(s, 'userUs')).toFixed(1)}, kernel ${median(col(s, 'systemUs')).toFixed(1)})` +
        (servers > 1 ? `; servers' shares of their CPU ${serverShares(s).map((x) => `${Math.round(x * 100)}%`).join(' ')}` : ''),
    );
  }
  // With a ref, say which build each side is, so that A/B reads as new/old (or whichever way round).
  const what = (s) => (!s.build ? s.id : s.build.from === 'commit' ? `the build of ${s.build.ref}` : "the working tree's dist/");
  const builtFrom = refs.some(Boolean) ? ` (A is ${what(a)}, B ${what(b)})` : '';
  console.log(
    `\n${a.label} / ${b.label}${builtFrom}, paired by round: req/s ${fmtRatios(ratio('rps'))}; CPU/req ${fmtRatios(ratio('cpuUsPerReq'))}; p99 ${fmtRatios(ratio('p99ms'))}`,
  );
  console.log(
    `${a.label} at least ${b.label}'s req/s in ${count('rps', (x, y) => x >= y)} of ${kept} rounds, at most its CPU/req in ` +
      `${count('cpuUsPerReq', (x, y) => x <= y)}, at most its p99 in ${count('p99ms', (x, y) => x <= y)}`,
  );
}
const errors = sides.flatMap((s) => [...s.windows, ...s.setAsideWindows].filter((w) => w.errors).map((w) => `${s.label}: ${w.errors}`));
console.log(errors.length ? `errors: ${errors.join('; ')}` : 'no socket errors, no non-2xx/3xx responses');
for (const s of sides) {
  if (s.log.length) console.log(`${s.label} logged ${s.log.length} line(s), the last ones: ${s.log.slice(-3).join(' | ')}`);
  if (s.exit) console.log(`${s.label} ${s.exit}`);
}
if (jsonFile) {
  writeFileSync(
    jsonFile,
    JSON.stringify(
      {
        command,
        mode,
        path,
        rounds,
        durationS,
        warmupS,
        maxSteal,
        servers,
        versions: v,
        git: { head: tree.head, dirty: tree.dirty, changes: tree.changes, distBuilt: tree.distBuilt, distStale: tree.distStale },
        sides: sides.map((s) => {
          const { id, label, build, tls, windows, setAsideWindows, log } = s;
          return { id, label, build, ...(tls ? { tls } : {}), ...(servers > 1 && kept ? { serverCpuShares: serverShares(s) } : {}), windows, setAsideWindows, log: log.slice(-20) };
        }),
      },
      null,
      2,
    ),
  );
}

/** One measured window of side `s`: wrk's numbers, the proxy's CPU per request, and the steal. */
async function measure(s) {
  // With a pool, each server's CPU seconds (master and worker) too: how the proxy spread the load.
  const serverCpu = () => (servers > 1 ? nginxes.map((n) => cpuSecondsTree(n.pid)) : []);
  const srv0 = serverCpu();
  const cpu0 = cpuSplitTree(s.child.pid);
  const w = await runWrk(url(s.port, s.tls), { durationS, cpu: pin.peers });
  const cpu1 = cpuSplitTree(s.child.pid);
  const srv1 = serverCpu();
  const perReq = (k) => ((cpu1[k] - cpu0[k]) * 1e6) / w.requests;
  return {
    ...(servers > 1 ? { serverCpuS: srv1.map((x, i) => x - srv0[i]) } : {}),
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

/** Each server's share of the servers' CPU time over side `s`'s kept windows (--servers N > 1). */
function serverShares(s) {
  const sums = nginxes.map((_, i) => s.windows.reduce((t, w, r) => t + (clean[r] ? w.serverCpuS[i] : 0), 0));
  const total = sums.reduce((a, b) => a + b, 0);
  return sums.map((x) => (total > 0 ? x / total : 0));
}

function fmtRatios(rs) {
  return `median ${median(rs).toFixed(2)} (${rs.map((r) => r.toFixed(2)).join(' ')})`;
}

/** `--name GITREF` resolved to { ref, sha, short }, or undefined when not given; a usage error if it is no commit. */
function refArg(name) {
  const ref = argValue(argv, name);
  if (ref === undefined && !argv.some((a) => a === `--${name}` || a.startsWith(`--${name}=`))) return undefined;
  // A ref that starts with '-' would be read by git as an option.
  if (!ref || ref.startsWith('-')) usage(`--${name} takes a commit: a hash, a branch, HEAD~1... (got ${ref ?? 'nothing'})`);
  const r = git(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]);
  if (r.status !== 0) usage(`--${name}: ${ref} is not a commit in ${ROOT}`);
  const sha = r.stdout.trim();
  return { ref, sha, short: git(['rev-parse', '--short', sha]).stdout.trim() };
}

function git(args, opts = {}) {
  // --no-optional-locks: `git status` would otherwise refresh .git/index, and could take its lock from
  // under someone committing in this tree at the same time.
  return spawnSync('git', ['--no-optional-locks', '-C', ROOT, ...args], { encoding: 'utf8', maxBuffer: 1 << 28, ...opts });
}

/**
 * The working tree as the header records it: HEAD's full hash, whether anything is uncommitted (and how
 * many paths), when dist/cli.js was built, and the newest file under src/ when it is newer than that
 * (dist/ is not rebuilt here, so A would run older code than src/ holds).
 */
function treeState() {
  const head = git(['rev-parse', 'HEAD']).stdout.trim() || null;
  const status = git(['status', '--porcelain']);
  const changes = status.status === 0 ? status.stdout.split('\n').filter(Boolean).length : null;
  let distBuilt = null;
  let distStale = null;
  try {
    const built = statSync(CLI).mtimeMs;
    distBuilt = new Date(built).toISOString();
    let newest = { ms: built, file: null };
    for (const f of readdirSync(join(ROOT, 'src'), { recursive: true })) {
      let ms = 0;
      try {
        ms = statSync(join(ROOT, 'src', f)).mtimeMs;
      } catch {} // moved away since the listing: someone is working in src/
      if (ms > newest.ms) newest = { ms, file: join('src', f) };
    }
    distStale = newest.file;
  } catch {} // no dist/ (both sides built from commits, or a build under way): nothing to compare
  let tsc = '?';
  try {
    tsc = JSON.parse(readFileSync(join(ROOT, 'node_modules', 'typescript', 'package.json'), 'utf8')).version;
  } catch {}
  return { head, dirty: changes === null ? null : changes > 0, changes, distBuilt, distStale, tsc };
}

/**
 * Builds commit `ref` in a temporary folder (removed on the way out) and returns the path of its cli.js:
 * `git archive` unpacked by tar, node_modules a symlink to this tree's (rmSync removes the link, not what
 * it points to), and this tree's tsc, so that the two sides differ only by their source.
 */
function buildRef({ ref, sha, short }) {
  const tmp = makeTempDir(`ffi-proxy-ab-${short}-`);
  removeDirLater(tmp);
  process.stderr.write(`ab: building ${ref} (${short}) in ${tmp}\n`);
  const fail = (what, r) => {
    throw new Error(`building ${ref} (${short}): ${what} failed (${r.error?.message ?? r.signal ?? r.status}):\n${`${r.stderr ?? ''}\n${r.stdout ?? ''}`.trim()}`);
  };
  const archive = git(['archive', '--format=tar', sha], { encoding: 'buffer' });
  if (archive.status !== 0) fail('git archive', archive);
  const untar = spawnSync('tar', ['-x', '-C', tmp], { input: archive.stdout, encoding: 'utf8' });
  if (untar.status !== 0) fail('tar -x', untar);
  symlinkSync(join(ROOT, 'node_modules'), join(tmp, 'node_modules'));
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(tmp, 'tsconfig.json')], {
    cwd: tmp,
    encoding: 'utf8',
    timeout: 300000,
  });
  if (tsc.status !== 0) fail('tsc', tsc);
  const cli = join(tmp, 'dist', 'cli.js');
  if (!existsSync(cli)) throw new Error(`building ${ref} (${short}): no ${relative(tmp, cli)} after tsc`);
  return cli;
}
