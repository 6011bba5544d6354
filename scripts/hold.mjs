// Holds many keep-alive HTTP/1.1 connections open at once through a proxy (the 100k-connection test):
//
//   node scripts/hold.mjs --target 127.0.0.1:PORT [--connections 100000] [--processes 8] [--sources 20]
//                         [--path /small] [--concurrency 500] [--timeout 30] [--hold 2] [--json FILE]
//   node scripts/hold.mjs --proxy-args "--processes 8" [same options]    (no --target: see below)
//   other options: --source-base 2, --deadline SECONDS (watchdog; default from the size)
//
// P client processes (--processes; forks of this script) each open connections/P raw TCP connections, the
// g-th from source address 127.0.0.(2 + g % sources) (--source-base moves the 2), so that no source address
// runs out of ephemeral ports. Default sources: one per 5000 connections, at least 4 (past ~6000 ports in
// use on one address, bind() gets slow: 1-2 ms per connect). Each connection sends `GET PATH HTTP/1.1` and
// reads its whole response (status line, then Content-Length, chunked or close framing), then stays open
// and idle; at most --concurrency connections per process are being set up at once, so the accept queue
// is not flooded. --timeout bounds each connect and each request.
//   phase 1  open + first request on every connection
//   barrier  when every process has finished phase 1: the open sockets of all processes are summed (and
//            ESTABLISHED sockets to the target counted with ss) after --hold seconds: "held at once"
//   phase 2  a second request on every connection still open (same bound per process), then all close
//            (FIN, wait for the server's close)
// Reports connections opened, first/second requests ok and failed, held at once, errors by kind (errno
// codes, timeouts, non-200 statuses, idle connections the server closed), and the time of each phase.
// Exits 0 only if every connection was held and both requests on every one got a 200, else 1 (2: usage).
//
// Without --target it starts its own: a Node backend (a forked child answering 200 with a 12-byte body,
// keep-alive for 10 min) and `node dist/cli.js start --mode http --listen 127.0.0.1:PORT --backend
// 127.0.0.1:BPORT PROXY-ARGS`, with `--idle-timeout 600` added unless PROXY-ARGS sets it (the default 60 s
// would close connections held longer than that). It reads the proxy's RSS (VmRSS summed over its process
// tree) before phase 1 and at the barrier, reports the growth per held connection and everything the
// proxy logged, and stops it with SIGTERM at the end.
//
// A process may hold at most ~19,000 sockets (the 20,000 open-file limit), so connections/processes must
// stay under 19,000. A source address whose port is picked at bind() (as here) has ip_local_port_range
// ports for all its connections, TIME_WAIT ones from an earlier run included: the script counts them
// first and refuses a plan that does not fit. Every process it starts ends with it (on error, Ctrl-C,
// and by a watchdog after --deadline seconds).

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import http from 'node:http';
import {
  ROOT,
  HOST,
  SMALL_BODY,
  ClientFleet,
  MAX_SOCKETS_PER_PROCESS,
  argValue,
  cliArgs,
  establishedAt,
  describeKinds,
  ephemeralRange,
  forkTracked,
  httpGet,
  installCleanup,
  killAllSync,
  freePort,
  loopbackSources,
  rssTreeKiB,
  runClientRole,
  sleep,
  socketsPerAddress,
  startPinned,
  stopChild,
  sumStats,
  tail,
  waitUntilServing,
} from './lib/peers.mjs';

const SCRIPT = new URL(import.meta.url).pathname;
// Ports in use per source address up to which bind(port 0) stays cheap. Measured on this kernel (6.18) with
// 2000-connection steps from one address: ~0.05 ms of system time per connect up to 6000 ports, 1 ms at
// 6000-8000, 2 ms at 8000-10000 (the port search scans more and more taken ports).
const FAST_PER_SOURCE = 5000;
const CLI = join(ROOT, 'dist', 'cli.js');
const argv = process.argv.slice(2);
const { usage, intArg } = cliArgs('hold', argv);
const role = argValue(argv, 'role');

if (role === 'client') runClientRole();
else if (role === 'backend') runBackend();
else await main().catch(fail);

// ---------------------------------------------------------------------------------------------------------

/** The backend when hold.mjs starts its own proxy: 200 with a 12-byte body, connections kept 10 min. */
function runBackend() {
  const body = Buffer.from(SMALL_BODY);
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 600_000;
  server.headersTimeout = 660_000;
  server.requestTimeout = 0;
  server.on('error', (e) => {
    process.stderr.write(`backend: ${e.message}\n`);
    process.exit(1);
  });
  server.listen({ host: HOST, port: 0, backlog: 4096 }, () => process.send({ type: 'listening', port: server.address().port }));
  process.on('disconnect', () => process.exit(0));
}

/** Splits PROXY-ARGS like a shell would for plain words and '...' / "..." quoting. */
function splitArgs(text) {
  const out = [];
  for (const m of text.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

function fmtS(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

async function main() {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(readFileSync(SCRIPT, 'utf8').split('\n\n')[0].replace(/^\/\/ ?/gm, '') + '\n');
    process.exit(0);
  }
  const target = argValue(argv, 'target');
  const proxyArgs = argValue(argv, 'proxy-args');
  if (target !== undefined && proxyArgs !== undefined) usage('--target and --proxy-args exclude each other');
  const N = intArg('connections', 100000);
  const P = intArg('processes', Math.max(1, Math.ceil(N / 12500)));
  const S = intArg('sources', Math.max(4, Math.ceil(N / FAST_PER_SOURCE)));
  const sourceBase = intArg('source-base', 2);
  const concurrency = intArg('concurrency', 500);
  const timeoutS = intArg('timeout', 30);
  const holdS = intArg('hold', 2, 0);
  const path = argValue(argv, 'path') ?? '/small';
  const jsonFile = argValue(argv, 'json');
  if (!path.startsWith('/')) usage(`--path must start with / (got ${path})`);
  if (P > N) usage(`--processes ${P} is more than --connections ${N}`);
  const perProcess = Math.ceil(N / P);
  if (perProcess > MAX_SOCKETS_PER_PROCESS) {
    usage(
      `${N} connections over ${P} processes is ${perProcess} per process, more than the ${MAX_SOCKETS_PER_PROCESS} one process ` +
        `can hold (open-file limit 20000): use --processes ${Math.ceil(N / MAX_SOCKETS_PER_PROCESS)} or more`,
    );
  }
  let host = HOST;
  let port;
  if (target !== undefined) {
    const m = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}):(\d{1,5})$/.exec(target);
    if (!m) usage(`--target takes a loopback 127.x.y.z:PORT (got ${target})`);
    [host, port] = [m[1], Number(m[2])];
  } else if (proxyArgs === undefined) {
    usage('give --target 127.0.0.1:PORT (a proxy you started), or --proxy-args "..." to start ffi-proxy here');
  } else if (!existsSync(CLI)) {
    usage(`${CLI} is missing; build first: npm run build`);
  }

  // Source addresses: each gets its port at bind(), from the whole ephemeral range, whatever the destination.
  const sources = loopbackSources(S, sourceBase);
  const [lo, hi] = ephemeralRange();
  const perSource = Math.ceil(N / S);
  const used = socketsPerAddress(sources);
  // Keep 5% of the range free: bind() scans for a free port and slows down as the range fills.
  const room = Math.floor((hi - lo + 1) * 0.95);
  const short = sources.filter((a) => used[a] + perSource > room);
  const slow = sources.filter((a) => used[a] + perSource > FAST_PER_SOURCE * 1.2);
  if (slow.length && !short.length) {
    process.stderr.write(
      `hold: warning: ${slow.length} source address(es) will have more than ${FAST_PER_SOURCE} ports in use (up to ` +
        `${Math.max(...slow.map((a) => used[a] + perSource))}); bind() slows down past that (about 2 ms per connect at 8000-10000 ` +
        `on one address), which slows phase 1: --sources ${Math.ceil(N / FAST_PER_SOURCE)} keeps it fast\n`,
    );
  }
  if (short.length) {
    usage(
      `${perSource} connections per source address do not fit in the ${hi - lo + 1} ephemeral ports (${lo}-${hi}) of ` +
        `${short.map((a) => `${a} (${used[a]} sockets already, TIME_WAIT included)`).join(', ')}: raise --sources, ` +
        `move them with --source-base, or wait a minute for TIME_WAIT to end`,
    );
  }

  const phaseTimeoutMs = (120 + Math.ceil(N / 100)) * 1000;
  const deadlineS = intArg('deadline', Math.ceil((4 * phaseTimeoutMs) / 1000 + holdS + 120));
  installCleanup({ deadlineMs: deadlineS * 1000 });
  const say = (t) => process.stderr.write(`hold: ${t}\n`);

  let backend = null;
  let proxy = null;
  let proxyCmd = null;
  let banner = [];
  const report = {
    date: new Date().toISOString(),
    command: `node scripts/hold.mjs ${argv.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}`.trim(),
    connections: N,
    processes: P,
    perProcess,
    sources,
    concurrencyPerProcess: concurrency,
    timeoutS,
    holdS,
    path,
  };

  if (target === undefined) {
    // Our own backend and ffi-proxy.
    backend = forkTracked('backend', SCRIPT, ['--role', 'backend']);
    const bport = await new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`backend did not listen within 10 s:\n${tail(backend.output)}`)), 10000);
      backend.on('message', (m) => m.type === 'listening' && (clearTimeout(t), res(m.port)));
      backend.exited.then(({ code, signal }) => rej(new Error(`backend exited (${signal ?? code}):\n${tail(backend.output)}`)));
    });
    port = await freePort();
    const extra = splitArgs(proxyArgs);
    if (!extra.some((a) => a === '--idle-timeout' || a.startsWith('--idle-timeout='))) extra.push('--idle-timeout', '600');
    const args = [CLI, 'start', '--mode', 'http', '--listen', `${HOST}:${port}`, '--backend', `${HOST}:${bport}`, ...extra];
    proxyCmd = `node ${args.map((a) => (a === CLI ? 'dist/cli.js' : a)).join(' ')}`;
    say(`starting ${proxyCmd}`);
    proxy = startPinned('ffi-proxy', null, process.execPath, args, { ready: /listening on/ });
    await waitUntilServing(proxy, port, { banner: true, timeoutMs: 30000 });
    banner = proxy.output.trim().split('\n');
    for (const l of banner) say(`ffi-proxy: ${l}`);
    Object.assign(report, { proxyCommand: proxyCmd, backendPort: bport, proxyBanner: banner });
  }
  report.target = `${host}:${port}`;

  // One request first: if that fails, 100,000 will too.
  try {
    const r = await httpGet(port, path, 10000);
    if (r.status !== 200) throw new Error(`status ${r.status}`);
  } catch (e) {
    throw new Error(`GET http://${host}:${port}${path} before the run: ${e.message}`);
  }
  await sleep(500);
  const rss0 = proxy ? rssTreeKiB(proxy.pid) : null;

  say(
    `${N} connections to ${host}:${port}${path} from ${P} process(es) (${perProcess} each), sources ${sources[0]}..${sources.at(-1)} ` +
      `(${perSource} each), at most ${concurrency} being set up per process, timeout ${timeoutS} s`,
  );
  const fleet = new ClientFleet(SCRIPT, P, { onLine: (l) => say(l) });
  const shares = Array.from({ length: P }, (_, i) => {
    const first = Math.floor((i * N) / P);
    return { first, count: Math.floor(((i + 1) * N) / P) - first };
  });
  const ticker = (label, total) => setInterval(() => say(`${label}: ${fleet.progress()}/${total} done`), 2000);
  const proxyAlive = () => !proxy || (proxy.exitCode === null && proxy.signalCode === null);

  // What each step measured; a step that failed leaves its part out, the report says which.
  const R = {};
  let failure = null;
  try {
    // Phase 1: open + first request.
    let t0 = Date.now();
    let tick = ticker('phase 1', N);
    const opened = await fleet
      .ask(
        shares.map((s) => ({ type: 'open', host, port, sources, path, first: s.first, count: s.count, concurrency, timeoutMs: timeoutS * 1000 })),
        'opened',
        phaseTimeoutMs,
      )
      .finally(() => clearInterval(tick));
    R.phase1 = { ms: Date.now() - t0, connected: opened.reduce((a, m) => a + m.connected, 0), ...sumStats(opened.map((m) => m.stats)) };
    say(
      `phase 1: ${fmtS(R.phase1.ms)}: connected ${R.phase1.connected}, first requests ok ${R.phase1.ok}, failed ${R.phase1.failed} ` +
        `(${describeKinds(R.phase1.errors)})`,
    );
    if (!proxyAlive()) throw new Error(`ffi-proxy died in phase 1 (${proxy.signalCode ?? proxy.exitCode})`);

    // Barrier: everything is open and idle now; count after --hold seconds.
    await sleep(holdS * 1000);
    const counts = await fleet.ask(shares.map(() => ({ type: 'count' })), 'count', 30000);
    const ss = establishedAt(host, port, sources);
    R.barrier = {
      heldAtOnce: counts.reduce((a, m) => a + m.open, 0),
      perProcess: counts.map((m) => m.open),
      ssEstablishedClientSide: ss.client,
      ssEstablishedServerSide: ss.server,
      clientProcessesRssKiB: counts.reduce((a, m) => a + m.rssKiB, 0),
    };
    say(
      `barrier: held at once ${R.barrier.heldAtOnce} of ${N} (per process ${R.barrier.perProcess.join(' + ')}); ss ESTABLISHED ` +
        `client side ${ss.client}, server side ${ss.server}`,
    );
    if (proxy) {
      const rss1 = rssTreeKiB(proxy.pid);
      R.proxyRss = {
        beforeKiB: rss0.kib,
        atBarrierKiB: rss1.kib,
        pidsAtBarrier: rss1.pids,
        bytesPerHeldConnection: R.barrier.heldAtOnce ? ((rss1.kib - rss0.kib) * 1024) / R.barrier.heldAtOnce : null,
      };
      say(`proxy RSS ${mib(rss0.kib)} -> ${mib(rss1.kib)} (pids ${rss1.pids.join(' ')}): ${fmtBytes(R.proxyRss.bytesPerHeldConnection)} per held connection`);
    }
    if (!proxyAlive()) throw new Error(`ffi-proxy died at the barrier (${proxy.signalCode ?? proxy.exitCode})`);

    // Phase 2: a second request on every connection, then close.
    t0 = Date.now();
    tick = ticker('phase 2', R.barrier.heldAtOnce);
    const requested = await fleet
      .ask(shares.map(() => ({ type: 'request', concurrency })), 'requested', phaseTimeoutMs)
      .finally(() => clearInterval(tick));
    R.phase2 = { ms: Date.now() - t0, ...sumStats(requested.map((m) => m.stats)) };
    // Connections that never connected are not asked again: they count as failed second requests too.
    const notTried = N - R.phase2.ok - R.phase2.failed;
    if (notTried > 0) {
      R.phase2.errors['not connected'] = (R.phase2.errors['not connected'] ?? 0) + notTried;
      R.phase2.failed += notTried;
    }
    say(`phase 2: ${fmtS(R.phase2.ms)}: second requests ok ${R.phase2.ok}, failed ${R.phase2.failed} (${describeKinds(R.phase2.errors)})`);

    t0 = Date.now();
    const closed = await fleet.ask(shares.map(() => ({ type: 'close', timeoutMs: 15000 })), 'closed', 120000);
    R.close = {
      ms: Date.now() - t0,
      clean: closed.reduce((a, m) => a + m.stats.clean, 0),
      forced: closed.reduce((a, m) => a + m.stats.forced, 0),
      closedIdle: closed.reduce((a, m) => a + m.closedIdle, 0),
      idleErrors: {},
    };
    for (const m of closed) for (const [k, v] of Object.entries(m.idleErrors)) R.close.idleErrors[k] = (R.close.idleErrors[k] ?? 0) + v;
    say(`close: ${fmtS(R.close.ms)}: ${R.close.clean} closed cleanly, ${R.close.forced} destroyed after 15 s`);
  } catch (e) {
    failure = e;
    say(`error: ${e.message}`);
  }

  // Stop what we started (gracefully, even after a failure); keep what the proxy said.
  await fleet.stop();
  if (proxy) {
    const wasAlive = proxyAlive();
    R.proxyExit = wasAlive
      ? await stopChild(proxy, { signal: 'SIGTERM', graceMs: 20000 })
      : { code: proxy.exitCode, signal: proxy.signalCode, diedEarly: true };
    R.proxyLog = proxy.output.trim().split('\n').slice(banner.length).filter((l) => l.trim());
  }
  if (backend) await stopChild(backend, { signal: 'SIGTERM', graceMs: 5000 });

  const errors = {};
  const add = (prefix, e = {}) => {
    for (const [k, v] of Object.entries(e)) errors[`${prefix}${k}`] = (errors[`${prefix}${k}`] ?? 0) + v;
  };
  add('first request: ', R.phase1?.errors);
  add('second request: ', R.phase2?.errors);
  add('closed by the server while idle: ', R.close?.idleErrors);
  const pass =
    !failure && R.barrier?.heldAtOnce === N && R.phase1?.ok === N && R.phase2?.ok === N && !R.proxyExit?.diedEarly;
  Object.assign(report, R, { errors, failure: failure ? failure.message : null, pass });

  // The summary, on stdout.
  const line = (k, v) => console.log(`${k.padEnd(22)}${v}`);
  const or = (x, f) => (x === undefined ? 'not reached' : f(x));
  console.log(`\n${report.command}   (${report.date})`);
  if (proxyCmd) line('proxy', proxyCmd);
  if (banner.length) line('proxy banner', banner.join(' | '));
  line('target', `${host}:${port}${path}; ${P} process(es) x ${perProcess}; sources ${sources[0]}..${sources.at(-1)}; ${concurrency} in flight per process`);
  line('opened', or(R.phase1, (x) => `${x.connected} of ${N}`));
  line('first requests', or(R.phase1, (x) => `ok ${x.ok}, failed ${x.failed}`));
  line(
    'held at once',
    or(R.barrier, (x) => `${x.heldAtOnce} of ${N} after ${holdS} s at the barrier (sum of the processes' open sockets; ss: ` +
      `${x.ssEstablishedClientSide} client side, ${x.ssEstablishedServerSide} server side)`),
  );
  line('second requests', or(R.phase2, (x) => `ok ${x.ok}, failed ${x.failed}`));
  line('closed while idle', or(R.close, (x) => `${x.closedIdle}`));
  line('errors', describeKinds(errors));
  line(
    'time',
    `phase 1 (open + request) ${or(R.phase1, (x) => fmtS(x.ms))}, barrier ${fmtS(holdS * 1000)}, ` +
      `phase 2 (request) ${or(R.phase2, (x) => fmtS(x.ms))}, close ${or(R.close, (x) => fmtS(x.ms))}`,
  );
  if (proxy) {
    line(
      'proxy RSS',
      or(R.proxyRss, (x) => `${mib(x.beforeKiB)} before, ${mib(x.atBarrierKiB)} at the barrier: ${fmtBytes(x.bytesPerHeldConnection)} ` +
        `per held connection (VmRSS summed over pids ${x.pidsAtBarrier.join(' ')})`),
    );
    const x = R.proxyExit;
    line('proxy exit', x.diedEarly ? `DIED during the run (${x.signal ?? x.code})` : `${x.signal ?? x.code} after SIGTERM`);
    if (R.proxyLog.length) {
      console.log(`proxy logged ${R.proxyLog.length} line(s)${R.proxyLog.length > 30 ? ', last 30' : ''}:`);
      for (const l of R.proxyLog.slice(-30)) console.log(`  ${l}`);
    } else line('proxy log', 'nothing after the banner');
  }
  if (failure) line('run failed', failure.message.split('\n')[0]);
  console.log(pass ? 'PASS: every connection was held at once and both requests on each got 200' : 'FAIL');
  if (jsonFile) {
    writeFileSync(jsonFile, JSON.stringify(report, null, 2) + '\n');
    console.log(`results written to ${jsonFile}`);
  }
  process.exitCode = pass ? 0 : 1;
}

function mib(kib) {
  return `${(kib / 1024).toFixed(1)} MiB`;
}

function fmtBytes(b) {
  if (b === null || b === undefined || Number.isNaN(b)) return '-';
  return b >= 10240 ? `${(b / 1024).toFixed(1)} KiB` : `${Math.round(b)} B`;
}

/** One line (the first of the message; the rest, such as a child's output, below it), everything stopped, exit 1. */
function fail(e) {
  process.stderr.write(`hold: error: ${e?.message ?? e}\n`);
  killAllSync();
  process.exit(1);
}
