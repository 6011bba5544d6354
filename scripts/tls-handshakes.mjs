// TLS handshakes per CPU-second, interleaved A/B as scripts/ab.mjs does: two TLS entries of
// scripts/lib/proxies.mjs (ffi-tls-http and haproxy-tls-http by default) running at once, each measured in
// turn in short windows (A B, then B A, ...) by `openssl s_time`, with the proxy's CPU time from /proc.
//
//   node scripts/tls-handshakes.mjs [--mode http|tcp] [--a ffi-tls-http] [--b haproxy-tls-http]
//                                   [--cert ec|rsa] [--reuse] [--www PATH] [--tls1_2] [--rounds N]
//                                   [--duration S] [--warmup S] [--max-steal PCT] [--retries N] [--json FILE]
//
// Each window is `openssl s_time -connect 127.0.0.1:PORT -new -time S` (full handshakes: a new session
// each connection), or with --reuse `-reuse` (every connection resumes the first one's session). Without
// --www, s_time closes each connection once its handshake is done, so nothing reaches the backend; with
// --www PATH each connection also sends `GET PATH HTTP/1.0` and reads the response to the close. TLS 1.3
// sends its session tickets after the handshake, which s_time reads only with --www: so --reuse needs
// --www (or --tls1_2, where the ticket comes inside the handshake), and the script says so. The figure
// is the proxy's CPU (utime+stime, process and children, user and kernel apart) per connection, and
// connections per second; the resumption share is counted from s_time's progress marks ('r' = reused).
//
// The certificate is self-signed, made for the run by the openssl CLI: P-256 (ECDSA) or, with --cert rsa,
// RSA-2048. The proxies are pinned to CPU 0 and s_time and nginx to CPU 1, as in ab.mjs; s_time does the
// client's half of every handshake on its one CPU, so conn/s is mostly the client's rate, and CPU per
// connection is what compares the proxies. Windows over --max-steal percent stolen (default 1) are set
// aside and measured again, up to --retries times (default 6), as in ab.mjs. E.g.:
//
//   node scripts/tls-handshakes.mjs --cert rsa --rounds 6
//   node scripts/tls-handshakes.mjs --cert ec --reuse --www /small --rounds 6

import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import {
  HOST,
  SMALL_BODY,
  argValue,
  cliArgs,
  cpuPlan,
  cpuSplitTree,
  freePort,
  httpGet,
  installCleanup,
  makeTempDir,
  median,
  removeDirLater,
  requireTools,
  sleep,
  startNginx,
  startPinned,
  stealTicks,
  clockTicks,
  stopChild,
  alternatingRounds,
  stopSides,
  tail,
  tlsParams,
  versions,
  waitUntilServing,
} from './lib/peers.mjs';
import { CLI, proxyList } from './lib/proxies.mjs';
import { spawnSync } from 'node:child_process';

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(readFileSync(new URL(import.meta.url), 'utf8').split('\n\n')[0].replace(/^\/\/ ?/gm, '') + '\n');
  process.exit(0);
}
const { usage, intArg } = cliArgs('tls-handshakes', argv);
const mode = argValue(argv, 'mode') ?? 'http';
if (mode !== 'tcp' && mode !== 'http') usage(`--mode takes tcp or http (got ${mode})`);
const tlsKind = argValue(argv, 'cert') ?? 'ec';
if (tlsKind !== 'ec' && tlsKind !== 'rsa') usage(`--cert takes ec (P-256) or rsa (RSA-2048) (got ${tlsKind})`);
const reuse = argv.includes('--reuse');
const tls12 = argv.includes('--tls1_2');
const www = argValue(argv, 'www');
if (www !== undefined && !/^\/\S*$/.test(www)) usage(`--www takes a path such as /small (got ${www})`);
if (reuse && !www && !tls12) usage('--reuse with TLS 1.3 needs --www PATH (s_time reads the session ticket only with a request) or --tls1_2');
const rounds = intArg('rounds', 6);
const durationS = intArg('duration', 5);
const warmupS = intArg('warmup', 3, 0);
const retries = intArg('retries', 6, 0);
const maxSteal = Number(argValue(argv, 'max-steal') ?? 1);
if (!(maxSteal >= 0 && maxSteal <= 100)) usage(`--max-steal takes a percentage from 0 to 100 (got ${argValue(argv, 'max-steal')})`);
const jsonFile = argValue(argv, 'json');
const list = proxyList(mode, { generatedBy: 'scripts/tls-handshakes.mjs', tlsKind });
const ids = [argValue(argv, 'a') ?? `ffi-tls-${mode}`, argValue(argv, 'b') ?? `haproxy-tls-${mode}`];
const tlsIds = list.filter((p) => p.tls).map((p) => p.id);
const pair = ids.map((id) => list.find((p) => p.id === id && p.tls) ?? usage(`--a/--b take one of ${tlsIds.join(', ')} (got ${id})`));
if (ids[0] === ids[1]) usage('--a and --b must differ');

requireTools(['haproxy', 'nginx', 'openssl', 'taskset']);
if (pair.some((p) => p.ffi) && !existsSync(CLI)) {
  process.stderr.write(`tls-handshakes: ${CLI} is missing; build first: npx tsc -p .\n`);
  process.exit(1);
}
installCleanup({ deadlineMs: (2 * (warmupS + 20) + rounds * 2 * (retries + 1) * (durationS + 5) + 120) * 1000 });
const pin = cpuPlan();
spawnSync('taskset', ['-a', '-p', '-c', String(pin.peers), String(process.pid)], { stdio: 'ignore' });
const dir = makeTempDir();
removeDirLater(dir);
const command = `node scripts/tls-handshakes.mjs ${argv.join(' ')}`.trim();
const what = `${reuse ? 'resumed' : 'full'} handshakes${tls12 ? ' (TLS 1.2)' : ''}${www ? ` + GET ${www} HTTP/1.0` : ', no request'}`;
process.stderr.write(`tls-handshakes: ${what}, ${tlsKind === 'rsa' ? 'RSA-2048' : 'P-256'}: ${ids.join(' and ')}, ${rounds} rounds of ${durationS} s each\n`);

const nginx = await startNginx(dir, { cpu: pin.peers });
const sides = [];
for (const entry of pair) {
  const port = await freePort();
  const child = await entry.start(port, nginx.port, pin.proxy, dir);
  await waitUntilServing(child, port, { banner: entry.banner, timeoutMs: 15000 });
  if (mode === 'http') {
    const r = await httpGet(port, '/small', 10000, { tls: true });
    if (r.status !== 200 || r.length !== SMALL_BODY.length) throw new Error(`${entry.id}: GET /small: ${r.status}, ${r.length} B`);
  }
  const params = await tlsParams(port, 10000);
  const side = { id: entry.id, port, child, params, windows: [], setAsideWindows: [] };
  if (warmupS) await sTime(side, warmupS);
  sides.push(side);
}

const setAside = await alternatingRounds(sides, rounds, retries, measure, (s, w) => describe(s.id, w));
await stopSides(sides);
await stopChild(nginx, { signal: 'SIGQUIT', graceMs: 5000 });

const [a, b] = sides;
const clean = a.windows.map((w, i) => !w.stolen && !b.windows[i].stolen);
const kept = clean.filter(Boolean).length;
const col = (s, k) => s.windows.filter((w, i) => clean[i]).map((w) => w[k]);
const ratio = (k) => a.windows.flatMap((w, i) => (clean[i] ? [w[k] / b.windows[i][k]] : []));
const fmtRatios = (rs) => `median ${median(rs).toFixed(2)} (${rs.map((r) => r.toFixed(2)).join(' ')})`;
const v = versions();
console.log(`\n${command}   (${new Date().toISOString()})`);
console.log(`${v.haproxy} | ${spawnSync('openssl', ['version'], { encoding: 'utf8' }).stdout.trim()} (s_time) | node ${v.node} | kernel ${v.kernel}`);
console.log(`${mode} mode; ${what}; ${rounds} rounds, A/B alternating; openssl s_time -${reuse ? 'reuse' : 'new'} -time ${durationS} per window; proxies on CPU ${pin.proxy}, s_time+nginx on CPU ${pin.peers}`);
for (const [i, s] of sides.entries()) console.log(`${'AB'[i]} ${s.id}: ${tlsKind === 'rsa' ? 'RSA-2048' : 'P-256'} certificate; ${s.params.protocol} ${s.params.cipher} ${s.params.group ?? ''} with OpenSSL's defaults`);
console.log(`steal limit ${maxSteal}%: ${setAside} round(s) set aside and measured again; ${rounds - kept} still over it, left out\n`);
if (!kept) {
  console.log('no round was under the steal limit');
  process.exitCode = 1;
} else {
  for (const s of sides) {
    console.log(
      `${s.id.padEnd(18)} median ${Math.round(median(col(s, 'connPerS')))} conn/s, ${median(col(s, 'cpuUsPerConn')).toFixed(0)} CPU µs/conn ` +
        `(user ${median(col(s, 'userUs')).toFixed(0)}, kernel ${median(col(s, 'systemUs')).toFixed(0)}), ${Math.round(median(col(s, 'perCpuS')))} conn per CPU-second, ` +
        `resumed ${(100 * median(col(s, 'reusedShare'))).toFixed(1)}%`,
    );
  }
  console.log(`\n${a.id} / ${b.id}, paired by round: conn/s ${fmtRatios(ratio('connPerS'))}; CPU/conn ${fmtRatios(ratio('cpuUsPerConn'))}`);
}
for (const s of sides) {
  if (s.log.length) console.log(`${s.id} logged ${s.log.length} line(s), the last ones: ${s.log.slice(-3).join(' | ')}`);
  if (s.exit) console.log(`${s.id} ${s.exit}`);
}
if (jsonFile) {
  writeFileSync(
    jsonFile,
    JSON.stringify({ command, mode, cert: tlsKind, reuse, tls12, www: www ?? null, rounds, durationS, maxSteal, versions: v, sides: sides.map(({ id, params, windows, setAsideWindows, log }) => ({ id, params, windows, setAsideWindows, log: log.slice(-20) })) }, null, 2),
  );
}

/** `openssl s_time` against side s for `seconds`, pinned with the peers; resolves { connections, reused, raw }. */
async function sTime(s, seconds) {
  const args = ['s_time', '-connect', `${HOST}:${s.port}`, reuse ? '-reuse' : '-new', '-time', String(seconds), ...(www ? ['-www', www] : []), ...(tls12 ? ['-tls1_2'] : [])];
  const child = startPinned('openssl s_time', pin.peers, 'openssl', args);
  const killer = setTimeout(() => stopChild(child, { signal: 'SIGKILL' }), (seconds + 30) * 1000);
  const { code, signal } = await child.exited;
  clearTimeout(killer);
  const out = child.output;
  // "N connections in T real seconds" (the last such line: -reuse prints one per phase it runs).
  const m = [...out.matchAll(/(\d+) connections in (\d+) real seconds/g)].at(-1);
  if (code !== 0 || !m) throw new Error(`openssl ${args.join(' ')} failed (${signal ?? code}):\n${tail(out)}`);
  // Progress marks, one per connection: 'r' reused, '*' TLS 1.2+ new, ... (after "starting" with -reuse).
  const marks = [...(reuse ? out.slice(out.lastIndexOf('starting')) : out).split('\n').filter((l) => /^[r*t3]+$/.test(l.trim())).join('')];
  return { connections: Number(m[1]), reused: marks.filter((c) => c === 'r').length, marks: marks.length, raw: tail(out, 3) };
}

async function measure(s) {
  const steal0 = stealTicks();
  const cpu0 = cpuSplitTree(s.child.pid);
  const t0 = Date.now();
  const r = await sTime(s, durationS);
  const wallS = (Date.now() - t0) / 1000;
  const cpu1 = cpuSplitTree(s.child.pid);
  const stealPct = stealTicks().map((x, i) => (100 * (x - steal0[i])) / (wallS * clockTicks()));
  const stealMaxPct = Math.max(0, ...stealPct.filter(Number.isFinite));
  const per = (k) => ((cpu1[k] - cpu0[k]) * 1e6) / r.connections;
  const cpuS = cpu1.user + cpu1.system - cpu0.user - cpu0.system;
  return {
    connections: r.connections,
    connPerS: r.connections / wallS,
    cpuUsPerConn: per('user') + per('system'),
    userUs: per('user'),
    systemUs: per('system'),
    perCpuS: r.connections / cpuS,
    reusedShare: r.marks ? r.reused / r.marks : 0,
    stealPct: stealMaxPct,
    stolen: stealMaxPct > maxSteal,
  };
}

function describe(id, w) {
  return (
    `${id} ${Math.round(w.connPerS)} conn/s ${w.cpuUsPerConn.toFixed(0)} CPU µs/conn (user ${w.userUs.toFixed(0)}, kernel ${w.systemUs.toFixed(0)}), ` +
    `resumed ${(100 * w.reusedShare).toFixed(0)}%, steal ${w.stealPct.toFixed(1)}%${w.stolen ? ' OVER THE STEAL LIMIT' : ''}`
  );
}
