// Memory per idle keep-alive client connection: ffi-proxy (HTTP mode, default workers and --workers 1),
// nginx (proxy_pass, upstream keep-alive), HAProxy (mode http) and node-http-proxy, one after the other, in
// front of the same nginx backend (/small: a 12-byte body, as in bench.mjs).
//
//   node scripts/idle-memory.mjs [--connections 15000] [--only ffi,ffi-1w,nginx,haproxy,node] [--json FILE]
//                                [--clients 2] [--sources 3] [--source-base 20] [--concurrency 100] [--tls]
//
// --tls: the same over TLS (docs/tls.md): ffi-proxy HTTP mode with --tls-cert/--tls-key and HAProxy with
// `bind ... ssl crt FILE alpn http/1.1` (only ffi, ffi-1w and haproxy), a self-signed P-256 certificate made
// for the run by testCert() in its temp dir; the clients connect with node's tls.connect (certificate not
// checked; TLSv1.3 with OpenSSL's defaults), send the same GET, read the response and stay idle. The
// handshakes cost the client processes CPU: a few thousand connections is what fits in a few minutes.
//
// Per proxy: start it, let it settle (1 s), warm it with 20 requests, wait 2 s and read its RSS (VmRSS from
// /proc/PID/status, summed over its process tree: nginx's master + worker; ffi-proxy is one process with
// worker threads). Then --clients forked client processes (this script in a client role: one process
// cannot hold 15,000 sockets and leave room for anything else under the 20,000 open-file limit) open
// --connections raw TCP connections between them, from --sources source addresses 127.0.0.(source-base + i)
// (the next proxy gets the next ones, away from the TIME_WAIT the last left), each sending one
// `GET /small HTTP/1.1` with a Host header and reading the whole response, then keeping the connection open
// and idle. Once all are idle: wait 2 s, read the RSS again; growth per connection = (after - before) /
// connections. They are opened in two halves with a reading (2 s after) in between: the second half's
// growth per connection is the marginal cost, without what the first connections pay once (backend pool,
// buffers, JIT). V8's heap grows in steps, so for the Node-based proxies that one can land far from the
// average either way; for nginx and HAProxy the two agree. The proxy is checked to really hold them: every
// client got a 200 and `ss` shows that many ESTABLISHED sockets on the proxy's port from the client
// addresses. Then the clients close (FIN), 2 s later the RSS is read once more ("after close": does the
// memory come back?), and the proxy is stopped with SIGTERM.
//
// The kernel's side is machine-wide: /proc/net/sockstat's TCP "mem" (pages of socket buffers) and
// /proc/meminfo's Slab, before and after, per connection. Both ends of a loopback connection live in this
// kernel, so "kernel B/conn" is the client's socket plus the proxy's (plus the proxy's epoll entry, file and
// inode), not what one server-side connection costs; the backend side adds almost nothing (the pools stay
// small: the count of proxy->backend connections is shown). An idle socket has no bytes queued, so its TCP
// "mem" is about 0; the counter moves in per-CPU batches (up to 1 MiB), which is the noise in that column.
// With root, /proc/slabinfo says which caches grew. Anything else running on the machine shows up too,
// such as proc_inode_cache when some program lists /proc/PID/fd of the processes holding the sockets.
//
// Configs: ffi-proxy --idle-timeout 600 --log-level warn (its 60 s default idle timeout would not matter
// here, but a slow run should not cut clients off); nginx 1 worker, worker_connections 16384, keepalive 64
// to the backend; HAProxy maxconn 16000 with ulimit-n 20000 and `no strict-limits` (it wants 2 fds per
// connection, 32,017, and would refuse to start under the 20,000 hard limit otherwise), threads as many as
// CPUs, http-reuse always; node-http-proxy as in bench.mjs. Every process it starts is stopped at the end,
// on error, on Ctrl-C, and by a watchdog.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import {
  ROOT,
  HOST,
  SMALL_BODY,
  ClientFleet,
  MAX_SOCKETS_PER_PROCESS,
  argValue,
  cliArgs,
  describeKinds,
  ephemeralRange,
  establishedAt,
  freePort,
  haproxyConfig,
  httpGet,
  installCleanup,
  killAllSync,
  kernelGrowth,
  kernelMemory,
  loopbackSources,
  makeTempDir,
  removeDirLater,
  requireTools,
  rssTreeKiB,
  runClientRole,
  sleep,
  socketsPerAddress,
  startHaproxy,
  startNginx,
  startNginxProxy,
  startPinned,
  stopChild,
  sumStats,
  tail,
  testCert,
  versions,
  waitUntilServing,
} from './lib/peers.mjs';

const SCRIPT = new URL(import.meta.url).pathname;
const CLI = join(ROOT, 'dist', 'cli.js');
const NODE_HTTP = join(ROOT, 'scripts', 'node-http-proxy.mjs');
const argv = process.argv.slice(2);
const { usage, intArg } = cliArgs('idle-memory', argv);
// --tls (see the top). The client processes learn it from their environment (they are forked with ours).
const TLS = argv.includes('--tls') || process.env.IDLE_MEMORY_TLS === '1';

// ---------------------------------------------------------------------------------------------------------
// The proxies, in the order they run. start() returns (or resolves) a child from startPinned (not pinned: the
// clients and the proxy share both CPUs; nothing here is timed).

const FFI_ARGS = ['--mode', 'http', '--idle-timeout', '600', '--log-level', 'warn'];
/** With --tls, ffi-proxy's certificate and key (made once per run in dir); else nothing. */
const ffiTls = (dir) => {
  if (!TLS) return [];
  const c = testCert(dir, 'ec');
  return ['--tls-cert', c.cert, '--tls-key', c.key];
};

const PROXIES = [
  {
    id: 'ffi',
    label: `ffi-proxy http${TLS ? ' over TLS' : ''}, default workers`,
    banner: true,
    tls: true,
    start: (port, bport, dir) =>
      startPinned('ffi-proxy', null, process.execPath, [CLI, 'start', '--listen', `${HOST}:${port}`, '--backend', `${HOST}:${bport}`, ...FFI_ARGS, ...ffiTls(dir)], {
        ready: /listening on/,
      }),
  },
  {
    id: 'ffi-1w',
    label: `ffi-proxy http${TLS ? ' over TLS' : ''}, --workers 1`,
    banner: true,
    tls: true,
    start: (port, bport, dir) =>
      startPinned(
        'ffi-proxy (1 worker)',
        null,
        process.execPath,
        [CLI, 'start', '--listen', `${HOST}:${port}`, '--backend', `${HOST}:${bport}`, ...FFI_ARGS, '--workers', '1', ...ffiTls(dir)],
        { ready: /listening on/ },
      ),
  },
  {
    id: 'nginx',
    label: 'nginx proxy_pass, 1 worker',
    // worker_connections counts clients and upstream connections together (within the 20,000 open-file
    // limit); keep-alive timeouts long enough for the run.
    start: (port, bport, dir) =>
      startNginxProxy(dir, { cpu: null, port, backendPort: bport, workerConnections: 16384, keepaliveTimeoutS: 600 }),
  },
  {
    id: 'haproxy',
    label: `haproxy mode http${TLS ? ', ssl crt (P-256) alpn http/1.1' : ''}`,
    tls: true,
    start: (port, bport, dir) =>
      startHaproxy(
        join(dir, `haproxy-idle-${port}.cfg`),
        haproxyConfig({
          generatedBy: 'scripts/idle-memory.mjs',
          global: [
            'maxconn 16000',
            '# The hard open-file limit is 20000; HAProxy plans 2 fds per connection (32017) and, with strict-limits',
            '# (the default since 2.3), refuses to start below that. Idle clients need one fd each.',
            'ulimit-n 20000',
            'no strict-limits',
          ],
          mode: 'http',
          timeouts: { connect: '5s', client: '600s', server: '30s', 'http-request': '10s', 'http-keep-alive': '600s' },
          frontend: ['maxconn 16000'],
          port,
          bind: TLS ? `ssl crt ${testCert(dir, 'ec').pem} alpn http/1.1` : '',
          backendPort: bport,
        }),
        null,
      ),
  },
  {
    id: 'node',
    label: 'node http-proxy (npm)',
    banner: true,
    start: (port, bport) =>
      startPinned('node-http-proxy', null, process.execPath, [NODE_HTTP, String(port), String(bport)], { ready: /listening on/ }),
  },
];

// ---------------------------------------------------------------------------------------------------------

const alive = (c) => c.exitCode === null && c.signalCode === null;
const say = (t) => process.stderr.write(`idle-memory: ${t}\n`);

/**
 * One proxy: start, warm, measure before, open N idle connections from the client processes, measure after,
 * close, measure after close, stop. Resolves a result row; a failure is in row.problems, never thrown.
 */
async function measure(proxy, o) {
  const row = { proxy: proxy.id, label: proxy.label, connections: o.N, sources: o.sources, problems: [] };
  const port = await freePort();
  const child = await proxy.start(port, o.backend.port, o.dir);
  let fleet = null;
  const note = (t) => say(`${proxy.id}: ${t}`);
  try {
    await waitUntilServing(child, port, { banner: proxy.banner, timeoutMs: 15000 });
    row.banner = child.output.trim().split('\n').filter(Boolean);
    await sleep(1000);
    for (let i = 0; i < 20; i++) {
      const r = await httpGet(port, '/small', 10000, { tls: TLS });
      if (r.status !== 200 || r.length !== SMALL_BODY.length) throw new Error(`warm-up GET /small: ${r.status}, ${r.length} B`);
    }
    await sleep(2000);

    const sources = o.sources;
    const before = { rss: rssTreeKiB(child.pid), kernel: kernelMemory(), backendConns: establishedAt(HOST, o.backend.port).client };
    note(`RSS before ${mib(before.rss.kib)} (pids ${before.rss.pids.join(' ')}); opening ${o.N} connections`);

    fleet = new ClientFleet(SCRIPT, o.clients, { onLine: (l) => note(l) });
    const shares = Array.from({ length: o.clients }, (_, i) => {
      const first = Math.floor((i * o.N) / o.clients);
      return { first, count: Math.floor(((i + 1) * o.N) / o.clients) - first };
    });
    // Two halves, with a reading between them: the second half's growth is the marginal cost, free of what
    // the first connections pay once (backend pool, buffers, heap and JIT warming up).
    const t0 = Date.now();
    const stats = [];
    let mid = null;
    for (const half of [0, 1]) {
      const done = half ? Math.floor(o.N / 2) : 0;
      const tick = setInterval(() => note(`${done + fleet.progress()}/${o.N} opened`), 3000);
      const opened = await fleet
        .ask(
          shares.map((s) => {
            const h1 = Math.floor(s.count / 2);
            return {
              type: 'open',
              host: HOST,
              port,
              sources,
              path: '/small',
              first: s.first,
              count: half ? s.count - h1 : h1,
              concurrency: o.concurrency,
              timeoutMs: 30000,
            };
          }),
          'opened',
          (60 + Math.ceil(o.N / 200)) * 1000,
        )
        .finally(() => clearInterval(tick));
      stats.push(...opened.map((m) => m.stats));
      // All idle now: let the proxy settle, then read.
      await sleep(2000);
      if (!half) mid = { rss: rssTreeKiB(child.pid), open: opened.reduce((a, m) => a + m.open, 0) };
    }
    const first = sumStats(stats);
    row.openMs = Date.now() - t0;
    row.firstRequests = first;
    if (first.failed) row.problems.push(`${first.failed} of ${o.N} first requests failed: ${describeKinds(first.errors)}`);

    const after = { rss: rssTreeKiB(child.pid), kernel: kernelMemory(), backendConns: establishedAt(HOST, o.backend.port).client };
    const counts = await fleet.ask(shares.map(() => ({ type: 'count' })), 'count', 30000);
    const held = counts.reduce((a, m) => a + m.open, 0);
    const ss = establishedAt(HOST, port, sources);
    row.held = held;
    row.ssServerSide = ss.server;
    row.ssClientSide = ss.client;
    if (held !== o.N) row.problems.push(`clients hold ${held} open connections, not ${o.N}`);
    if (ss.server !== o.N) row.problems.push(`ss: the proxy has ${ss.server} ESTABLISHED sockets from the clients, not ${o.N}`);
    if (!alive(child)) throw new Error(`died with the connections open:\n${tail(child.output)}`);

    row.pids = after.rss.pids;
    row.rssBeforeKiB = before.rss.kib;
    row.rssAfterKiB = after.rss.kib;
    row.rssBytesPerConn = ((after.rss.kib - before.rss.kib) * 1024) / o.N;
    row.rssMidKiB = mid.rss.kib;
    row.rssBytesPerConnSecondHalf = held - mid.open > 0 ? ((after.rss.kib - mid.rss.kib) * 1024) / (held - mid.open) : null;
    row.backendConns = [before.backendConns, after.backendConns];
    row.kernel = kernelGrowth(before.kernel, after.kernel, o.N);
    note(
      `held ${held} (ss ${ss.server}); RSS ${mib(mid.rss.kib)} at half, ${mib(after.rss.kib)}: ${Math.round(row.rssBytesPerConn)} B/conn ` +
        `(second half ${Math.round(row.rssBytesPerConnSecondHalf)} B/conn); kernel: TCP mem ` +
        `${Math.round(row.kernel.tcpMemBytesPerConn)} B/conn, slab ${Math.round(row.kernel.slabBytesPerConn)} B/conn; ` +
        `backend connections ${before.backendConns} -> ${after.backendConns}`,
    );

    const closed = await fleet.ask(shares.map(() => ({ type: 'close', timeoutMs: 15000 })), 'closed', 60000);
    await fleet.stop();
    fleet = null;
    const closedIdle = closed.reduce((a, m) => a + m.closedIdle, 0);
    if (closedIdle) {
      const kinds = {};
      for (const m of closed) for (const [k, v] of Object.entries(m.idleErrors)) kinds[k] = (kinds[k] ?? 0) + v;
      row.problems.push(`the proxy closed ${closedIdle} idle connections: ${describeKinds(kinds)}`);
    }
    await sleep(2000);
    row.rssAfterCloseKiB = rssTreeKiB(child.pid).kib;
  } catch (e) {
    note(`FAILED: ${e.message}`);
    row.problems.push(e.message.split('\n')[0]);
  } finally {
    if (fleet) {
      for (const c of fleet.procs) if (alive(c)) c.kill('SIGKILL');
      await fleet.stop(2000);
    }
    const wasAlive = alive(child);
    if (!wasAlive) row.problems.push(`exited early (${child.signalCode ?? child.exitCode})`);
    const { code, signal } = await stopChild(child, { signal: 'SIGTERM', graceMs: 20000 });
    if (wasAlive && code !== 0 && signal !== 'SIGTERM' && !(proxy.id === 'haproxy' && code === 143)) {
      row.problems.push(`exited ${signal ?? code} on SIGTERM`);
    }
    // What it said besides its banner and the usual start/stop notices.
    row.log = child.output
      .split('\n')
      .filter((l) => l.trim() && !(row.banner ?? []).includes(l.trim()))
      .filter((l) => !/SIGTERM: no longer accepting|^\[NOTICE\]|haproxy version is|path to executable|Exiting Master|Current worker|Proxy fe stopped|Proxy be stopped|FD limit \(20000\) too low for maxconn=16000/.test(l));
    if (row.log.length) note(`logged ${row.log.length} line(s), last: ${row.log.at(-1)}`);
    if (child.errorLog && existsSync(child.errorLog)) {
      const errs = readFileSync(child.errorLog, 'utf8').trim();
      if (errs) row.errorLog = tail(errs, 20).split('\n');
    }
  }
  return row;
}

// ---------------------------------------------------------------------------------------------------------

function mib(kib) {
  return `${(kib / 1024).toFixed(1)} MiB`;
}
function bytes(b) {
  if (b === null || b === undefined || Number.isNaN(b)) return '-';
  return Math.abs(b) >= 10240 ? `${(b / 1024).toFixed(1)} KiB` : `${Math.round(b)} B`;
}

function table(rows) {
  const ngx = rows.find((r) => r.proxy === 'nginx' && r.rssBytesPerConn > 0);
  const head = ['proxy', 'RSS before', 'RSS after', 'RSS/conn', 'vs nginx', '2nd half/conn', 'after close', 'kernel TCP mem/conn', 'kernel slab/conn', 'backend conns', 'held (ss)', 'problems'];
  const lines = [head];
  for (const r of rows) {
    const ok = typeof r.rssBytesPerConn === 'number';
    lines.push([
      r.proxy,
      ok ? mib(r.rssBeforeKiB) : '-',
      ok ? mib(r.rssAfterKiB) : '-',
      ok ? bytes(r.rssBytesPerConn) : '-',
      ok && ngx ? `${(r.rssBytesPerConn / ngx.rssBytesPerConn).toFixed(2)}x` : '-',
      ok ? bytes(r.rssBytesPerConnSecondHalf) : '-',
      typeof r.rssAfterCloseKiB === 'number' ? mib(r.rssAfterCloseKiB) : '-',
      ok ? bytes(r.kernel.tcpMemBytesPerConn) : '-',
      ok ? bytes(r.kernel.slabBytesPerConn) : '-',
      ok ? `${r.backendConns[0]} -> ${r.backendConns[1]}` : '-',
      ok ? `${r.held} (${r.ssServerSide})` : '-',
      r.problems.length ? `YES (${r.problems.length})` : 'none',
    ]);
  }
  const widths = head.map((_, i) => Math.max(...lines.map((l) => String(l[i]).length)));
  const out = lines.map((l) => l.map((c, i) => (i > 0 && i < head.length - 1 ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i]))).join('  '));
  out.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return out.join('\n');
}

async function main() {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(readFileSync(SCRIPT, 'utf8').split('\n\n')[0].replace(/^\/\/ ?/gm, '') + '\n');
    process.exit(0);
  }
  const N = intArg('connections', 15000);
  const clients = intArg('clients', Math.max(2, Math.ceil(N / 10000)));
  const S = intArg('sources', Math.max(3, Math.ceil(N / 5000)));
  const sourceBase = intArg('source-base', 20);
  const concurrency = intArg('concurrency', 100);
  const jsonFile = argValue(argv, 'json');
  const only = argValue(argv, 'only');
  let selected = TLS ? PROXIES.filter((p) => p.tls) : PROXIES;
  if (only !== undefined) {
    const want = only.split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = want.filter((w) => !selected.some((p) => p.id === w));
    if (unknown.length || !want.length) usage(`--only takes a comma list of ${selected.map((p) => p.id).join(', ')}${TLS ? ' (with --tls)' : ''} (got ${only})`);
    selected = selected.filter((p) => want.includes(p.id));
  }
  if (N > 16000) usage(`--connections ${N}: the proxies are configured for at most 16000 (and each holds at most ~19,900 fds)`);
  if (Math.ceil(N / clients) > MAX_SOCKETS_PER_PROCESS) usage(`--clients ${clients}: ${Math.ceil(N / clients)} sockets per client process is more than ${MAX_SOCKETS_PER_PROCESS}`);
  requireTools(['nginx', ...(selected.some((p) => p.id === 'haproxy') ? ['haproxy'] : []), ...(TLS ? ['openssl'] : []), 'getconf']);
  if (TLS) process.env.IDLE_MEMORY_TLS = '1'; // for the client processes, forked with our environment
  if (selected.some((p) => p.id.startsWith('ffi')) && !existsSync(CLI)) usage(`${CLI} is missing; build first: npm run build`);

  // Each proxy gets its own S source addresses: the clients close first, and the TIME_WAIT they leave holds
  // those addresses' ports for a minute (a port is picked at bind(), see peers.mjs socketsPerAddress).
  const sourcesOf = selected.map((_, k) => loopbackSources(S, sourceBase + k * S));
  const all = sourcesOf.flat();
  const [lo, hi] = ephemeralRange();
  const used = socketsPerAddress(all);
  const perSource = Math.ceil(N / S);
  const short = all.filter((a) => used[a] + perSource > (hi - lo + 1) * 0.95);
  if (short.length) usage(`source addresses ${short.join(', ')} have too few free ports (TIME_WAIT from a run a moment ago?): wait a minute or use --source-base`);

  const perProxyS = 90 + Math.ceil(N / 100) + 60;
  installCleanup({ deadlineMs: (selected.length * perProxyS + 60) * 1000 });
  const dir = makeTempDir('ffi-proxy-idle-');
  removeDirLater(dir);
  const backend = await startNginx(dir, { cpu: null });
  say(
    `${selected.map((p) => p.id).join(', ')}: ${N} idle connections each, from ${clients} client processes and sources ` +
      `${all[0]}..${all.at(-1)} (${S} per proxy); backend nginx on ${HOST}:${backend.port}; about ${Math.ceil((selected.length * (10 + N / 1000)) / 60)} min`,
  );

  const rows = [];
  for (const [k, proxy] of selected.entries()) {
    if (!alive(backend)) throw new Error(`the backend nginx died:\n${tail(backend.output)}`);
    rows.push(await measure(proxy, { N, clients, sources: sourcesOf[k], concurrency, dir, backend }));
  }
  const backendErrors = existsSync(backend.errorLog) ? readFileSync(backend.errorLog, 'utf8').trim() : '';
  await stopChild(backend, { signal: 'SIGQUIT', graceMs: 5000 });

  const v = versions();
  const command = `node scripts/idle-memory.mjs ${argv.join(' ')}`.trim();
  console.log(`\n${command}   (${new Date().toISOString()})`);
  console.log(`${v.haproxy} | ${v.nginx} | node ${v.node} | kernel ${v.kernel}`);
  console.log(
    `${N} idle keep-alive ${TLS ? 'TLS (TLSv1.3, P-256 certificate) ' : ''}connections per proxy, each after one GET /small (200, 12-byte body); RSS = VmRSS summed over the ` +
      `proxy's processes, read 2 s after the last connection went idle; RSS/conn = (after - before) / ${N}; vs nginx = RSS/conn over nginx's; ` +
      `2nd half/conn = growth while the second ${N - Math.floor(N / 2)} were opened, per connection (the marginal cost, without one-time ` +
      `growth; for the Node-based proxies V8's heap grows in steps, so it can land far from the average either way).`,
  );
  console.log(
    'kernel columns are machine-wide (/proc/net/sockstat TCP mem, /proc/meminfo Slab) per connection and count BOTH loopback ends ' +
      '(the client socket and the proxy socket, with their files, inodes and epoll entries); backend conns: proxy->backend ' +
      'ESTABLISHED before -> after (pools: they add little). TCP mem of an idle socket is ~0 (nothing queued); that column ' +
      'moves in per-CPU batches of up to 1 MiB, i.e. noise of about +-500 B/conn at 2000 connections.\n',
  );
  console.log(table(rows));
  for (const r of rows) {
    if (r.kernel?.topSlabCaches?.length) {
      console.log(`${r.proxy} slab growth per connection: ${r.kernel.topSlabCaches.map((c) => `${c.cache} ${bytes(c.bytesPerConn)}`).join(', ')}`);
    }
  }
  if (rows.some((r) => r.kernel?.topSlabCaches?.some((c) => c.cache === 'proc_inode_cache'))) {
    console.log(
      'proc_inode_cache (and about half of dentry) is not the connections\' own cost: it grows when a program lists ' +
        '/proc/PID/fd of a process holding them (one inode per fd; a plain Node process holding sockets shows it as well ' +
        'on this machine, where something does that). The sockets themselves: TCP + sock_inode_cache + filp + eventpoll_epi ' +
        '+ 2 sockfs dentries, for both ends.',
    );
  }
  for (const r of rows) if (r.banner?.length && r.proxy.startsWith('ffi')) console.log(`${r.proxy} banner: ${r.banner.join(' | ')}`);
  const problems = rows.filter((r) => r.problems.length);
  if (problems.length) {
    console.log('\nPROBLEMS:');
    for (const r of problems) console.log(`  ${r.proxy}: ${r.problems.join('; ')}`);
  }
  for (const r of rows) if (r.log?.length) console.log(`${r.proxy} logged ${r.log.length} line(s): ${r.log.slice(-5).join(' | ')}`);
  for (const r of rows) if (r.errorLog?.length) console.log(`${r.proxy} error log: ${r.errorLog.slice(-3).join(' | ')}`);
  if (backendErrors) console.log(`backend nginx error log: ${tail(backendErrors, 3).replace(/\n/g, ' | ')}`);
  if (jsonFile) {
    const doc = { meta: { command, date: new Date().toISOString(), connections: N, clients, sourcesPerProxy: S, concurrency, versions: v }, results: rows };
    writeFileSync(jsonFile, JSON.stringify(doc, null, 2) + '\n');
    console.log(`results written to ${jsonFile}`);
  }
  process.exitCode = problems.length ? 1 : 0;
}

// Last, so that everything above is initialised first.
if (argValue(argv, 'role') === 'client') {
  // --tls: HeldClients (peers.mjs) connects with net.connect; here that becomes tls.connect, certificate not
  // checked. Its 'connect' is the TCP connect (the request written then waits for the handshake), 'data' the
  // decrypted bytes, 'end'/'close'/'error' as before.
  if (TLS) {
    const plain = net.connect;
    net.connect = (opts, ...rest) =>
      typeof opts === 'object' && opts !== null ? tls.connect({ ...opts, rejectUnauthorized: false }, ...rest) : plain(opts, ...rest);
  }
  runClientRole();
}
else await main().catch(fail);

/** One line (the first of the message; the rest, such as a child's output, below it), everything stopped, exit 1. */
function fail(e) {
  process.stderr.write(`idle-memory: error: ${e?.message ?? e}\n`);
  killAllSync();
  process.exit(1);
}
