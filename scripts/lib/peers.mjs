// Helpers shared by scripts/bench.mjs and scripts/profile.mjs: tool checks, a registry of child processes
// that are always killed on the way out, an nginx backend in a temp dir, port waits, CPU pinning, wrk runs
// and /proc CPU accounting. Plain Node ESM, no dependencies. Loopback (127.0.0.1) only.

import { spawn, spawnSync, execFileSync, fork } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, readFileSync, readdirSync, rmSync, chmodSync, accessSync, existsSync, constants } from 'node:fs';
import { tmpdir, availableParallelism } from 'node:os';
import { join, dirname, delimiter } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const HOST = '127.0.0.1';
export const INSTALL_HINT = 'missing tools: run apt-get install -y haproxy nginx-light wrk';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Full path of `cmd` on PATH, or null. */
export function which(cmd) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  return null;
}

/** Exits 1 with one line if any of `tools` is not on PATH. */
export function requireTools(tools) {
  const missing = tools.filter((t) => !which(t));
  if (missing.length) {
    process.stderr.write(`${missing.join(', ')} not found on PATH: apt-get install -y haproxy nginx-light wrk\n`);
    process.exit(1);
  }
}

/**
 * CPUs to pin to: the proxy under test on one, nginx and wrk on another. With a single CPU everything shares
 * CPU 0 (and the numbers mean less).
 */
export function cpuPlan() {
  const n = availableParallelism();
  return n >= 2 ? { proxy: '0', peers: '1', shared: false } : { proxy: '0', peers: '0', shared: true };
}

export function versions() {
  const first = (cmd, args) => {
    try {
      const r = spawnSyncText(cmd, args);
      return r.split('\n').find((l) => l.trim()) ?? '';
    } catch (e) {
      return `? (${e.message})`;
    }
  };
  return {
    node: process.version,
    haproxy: which('haproxy') ? first('haproxy', ['-v']) : null,
    nginx: which('nginx') ? first('nginx', ['-v']) : null,
    wrk: which('wrk') ? first('wrk', ['-v']) : null,
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
  };
}

function spawnSyncText(cmd, args) {
  // `wrk -v` exits 1 and `nginx -v` prints on stderr: take both streams, ignore the status.
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
  if (r.error) throw r.error;
  return `${r.stdout ?? ''}${r.stderr ?? ''}`;
}

export function makeTempDir(prefix = 'ffi-proxy-bench-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // nginx workers may drop to another user: let them traverse the dir and read the files in it.
  chmodSync(dir, 0o755);
  return dir;
}

// ---------------------------------------------------------------------------------------------------------
// Child processes. Each is spawned in its own process group (detached) so that stopping it also stops what
// it forked (nginx's worker, 0x's profiled node); the group is killed on the way out no matter how we leave.

const children = new Set();
let cleanupInstalled = false;
let cleanupHooks = [];

export function onCleanup(fn) {
  cleanupHooks.push(fn);
}

function killGroup(child, signal) {
  // Every child leads its own group (detached), so -pid reaches it and whatever it forked.
  try {
    process.kill(-child.pid, signal);
  } catch {}
}

/** Synchronous last resort: SIGKILL every child's group still alive, run the hooks (temp dir removal). */
export function killAllSync() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) killGroup(c, 'SIGKILL');
  }
  children.clear();
  const hooks = cleanupHooks;
  cleanupHooks = [];
  for (const h of hooks) {
    try {
      h();
    } catch {}
  }
}

/**
 * Kills everything we started on exit, Ctrl-C, SIGTERM or an uncaught error, and exits the script anyway
 * after `deadlineMs` (a watchdog so a run always ends by itself).
 */
export function installCleanup({ deadlineMs } = {}) {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: stopping everything started by this script\n`);
      killAllSync();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (e) => {
    process.stderr.write(`error: ${e?.stack ?? e}\n`);
    killAllSync();
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => {
    process.stderr.write(`error: ${e?.stack ?? e}\n`);
    killAllSync();
    process.exit(1);
  });
  if (deadlineMs) {
    const t = setTimeout(() => {
      process.stderr.write(`watchdog: still running after ${Math.round(deadlineMs / 1000)} s, giving up\n`);
      killAllSync();
      process.exit(1);
    }, deadlineMs);
    t.unref();
  }
}

/**
 * Starts `cmd args` pinned to `cpu` as `taskset -c CPU cmd args`. taskset execs the command, so the pid
 * we get is the pid of the command itself (what /proc CPU accounting needs). Keeps the last 64 KiB of
 * stdout+stderr for error messages. `ready` (optional RegExp) resolves `child.ready` when it shows on stdout
 * or stderr.
 */
export function startPinned(name, cpu, cmd, args, { cwd = ROOT, env = process.env, ready } = {}) {
  const argv = cpu === null ? [cmd, ...args] : ['taskset', '-c', String(cpu), cmd, ...args];
  const child = spawn(argv[0], argv.slice(1), { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let readyResolve;
  let readyReject;
  child.ready = new Promise((res, rej) => {
    readyResolve = res;
    readyReject = rej;
  });
  child.ready.catch(() => {});
  track(child, name, {
    onText: () => {
      if (ready && ready.test(child.output)) readyResolve();
    },
    onExit: (code, signal) => readyReject(new Error(`${name} exited (${signal ?? code}) before it was ready:\n${tail(child.output)}`)),
  });
  child.on('error', (e) => readyReject(new Error(`${name}: ${e.message}`)));
  return child;
}

/**
 * Registers `child` (spawned or forked, detached: it leads its own process group) as `name`: killed on the
 * way out, the last 64 KiB of its stdout+stderr in child.output (`onText` gets each piece after it is added),
 * and child.exited resolving { code, signal } once it has exited and its group has been SIGKILLed (what it
 * forked, such as nginx's worker, goes too); `onExit(code, signal)` runs just before.
 */
function track(child, name, { onText, onExit } = {}) {
  child.label = name;
  child.output = '';
  children.add(child);
  const onData = (d) => {
    const text = d.toString();
    child.output += text;
    if (child.output.length > 65536) child.output = child.output.slice(-65536);
    onText?.(text);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  child.exited = new Promise((res) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      killGroup(child, 'SIGKILL');
      onExit?.(code, signal);
      res({ code, signal });
    });
  });
}

export function tail(text, lines = 15) {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** Sends `signal` to the child's group, waits for it to exit, SIGKILLs the group after `graceMs`. */
export async function stopChild(child, { signal = 'SIGTERM', graceMs = 5000 } = {}) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exited;
  killGroup(child, signal);
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
  const r = await child.exited;
  clearTimeout(timer);
  return r;
}

/** Resolves once something accepts on HOST:port; rejects on timeout or if `child` exits first. */
export async function waitForPort(port, { timeoutMs = 10000, child } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`${child.label} exited (${child.signalCode ?? child.exitCode}):\n${tail(child.output)}`);
    }
    const ok = await new Promise((res) => {
      const s = net.connect({ host: HOST, port });
      s.once('connect', () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
      s.setTimeout(1000, () => {
        s.destroy();
        res(false);
      });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${HOST}:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/**
 * Waits until `child` (from startPinned) serves on HOST:port: with `banner`, first for child.ready (its
 * "listening on" line: ffi-proxy and the Node proxies print one), then for the port to accept (HAProxy and
 * nginx print nothing). Each wait gives up after `timeoutMs`; rejects if the child exits first.
 */
export async function waitUntilServing(child, port, { banner = false, timeoutMs = 15000 } = {}) {
  if (banner) {
    let timer;
    await Promise.race([
      child.ready,
      new Promise((_, rej) => {
        timer = setTimeout(() => rej(new Error(`no banner after ${timeoutMs / 1000} s:\n${tail(child.output)}`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  }
  await waitForPort(port, { child, timeoutMs });
}

/** A port that was free a moment ago on HOST (bind to 0, read it, close). */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = net.createServer();
    srv.once('error', rej);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/**
 * One GET through http://HOST:port/path (with `tls`, https:// without checking the certificate: the
 * benchmarks' are self-signed, from testCert); resolves { status, length } or rejects.
 */
export function httpGet(port, path, timeoutMs = 5000, { tls: overTls = false } = {}) {
  return new Promise((res, rej) => {
    const get = overTls ? https.get : http.get;
    const req = get({ host: HOST, port, path, agent: false, timeout: timeoutMs, ...(overTls ? { rejectUnauthorized: false } : {}) }, (r) => {
      let length = 0;
      r.on('data', (d) => (length += d.length));
      r.on('end', () => res({ status: r.statusCode, length }));
      r.on('error', rej);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out after ${timeoutMs} ms`)));
    req.on('error', rej);
  });
}

/**
 * The TLS version and cipher suite a client with OpenSSL's defaults (node's tls, certificate not checked)
 * negotiates with HOST:port: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }. ab.mjs prints both
 * sides', to show that the two proxies compared do the same crypto.
 */
export function tlsParams(port, timeoutMs = 5000) {
  return new Promise((res, rej) => {
    const s = tls.connect({ host: HOST, port, rejectUnauthorized: false, timeout: timeoutMs }, () => {
      const out = { protocol: s.getProtocol(), cipher: s.getCipher()?.standardName ?? s.getCipher()?.name, group: s.getEphemeralKeyInfo()?.name ?? null };
      s.end();
      res(out);
    });
    s.on('timeout', () => s.destroy(new Error(`TLS handshake with ${HOST}:${port}: timed out after ${timeoutMs} ms`)));
    s.on('error', rej);
  });
}

/**
 * A self-signed server certificate for the TLS entries (scripts/lib/proxies.mjs), made once per `dir` (the
 * run's temp dir) with the openssl CLI: `kind` 'ec' (P-256, ECDSA-SHA256) or 'rsa' (RSA-2048), CN and
 * subjectAltName localhost and 127.0.0.1, valid 2 days. Returns the paths { cert, key, pem }: `pem` is the
 * certificate and the key in one file, as HAProxy's `crt` takes them. Benchmarks only: the tests must not
 * need the openssl CLI.
 */
export function testCert(dir, kind = 'ec') {
  if (kind !== 'ec' && kind !== 'rsa') throw new Error(`testCert: kind ec or rsa (got ${kind})`);
  const base = join(dir, `tls-${kind}`);
  const out = { kind, cert: `${base}-cert.pem`, key: `${base}-key.pem`, pem: `${base}.pem` };
  if (existsSync(out.pem)) return out;
  if (!which('openssl')) throw new Error('openssl not found on PATH: the TLS benchmarks make their certificate with it (apt-get install -y openssl)');
  const newkey = kind === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  const r = spawnSync(
    'openssl',
    ['req', '-x509', ...newkey, '-sha256', '-nodes', '-keyout', out.key, '-out', out.cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30000 },
  );
  if (r.status !== 0) throw new Error(`openssl req (${kind} test certificate) failed (${r.error?.message ?? r.signal ?? r.status}):\n${r.stderr}`);
  writeFileSync(out.pem, readFileSync(out.cert, 'utf8') + readFileSync(out.key, 'utf8'), { mode: 0o600 });
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// nginx: the backend. Foreground, one worker, everything (pid, logs, temp paths) in `dir`.

export const SMALL_BODY = 'hello world\n'; // 12 bytes
export const BIG_SIZE = 1024 * 1024;

export async function startNginx(dir, { cpu, port } = {}) {
  port ??= await freePort();
  const www = join(dir, 'www');
  mkdirSync(www, { recursive: true });
  chmodSync(www, 0o755);
  // Incompressible-looking but cheap: a repeating pattern is fine since nothing compresses here.
  const big = Buffer.alloc(BIG_SIZE);
  for (let i = 0; i < big.length; i++) big[i] = (i * 131 + (i >> 8)) & 0xff;
  writeFileSync(join(www, 'big.bin'), big, { mode: 0o644 });
  for (const t of ['client', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, 'tmp', t), { recursive: true });
  const root = process.getuid?.() === 0;
  const conf = `# generated by scripts/lib/peers.mjs
daemon off;
master_process on;
worker_processes 1;
${root ? 'user root root;' : ''}
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events {
    worker_connections 4096;
    multi_accept on;
}
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    etag off;
    client_body_temp_path ${dir}/tmp/client;
    proxy_temp_path ${dir}/tmp/proxy;
    fastcgi_temp_path ${dir}/tmp/fastcgi;
    uwsgi_temp_path ${dir}/tmp/uwsgi;
    scgi_temp_path ${dir}/tmp/scgi;
    server {
        listen ${HOST}:${port} backlog=4096;
        root ${www};
        location = /small {
            default_type text/plain;
            return 200 "${SMALL_BODY.replace('\n', '\\n')}";
        }
        location = /big {
            default_type application/octet-stream;
            alias ${www}/big.bin;
        }
    }
}
`;
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  const child = startPinned('nginx', cpu, 'nginx', ['-p', dir, '-e', join(dir, 'nginx-error.log'), '-c', confPath]);
  await waitForPort(port, { child });
  // Fail early if the backend does not answer as expected: every proxy result would be meaningless.
  const s = await httpGet(port, '/small');
  const b = await httpGet(port, '/big');
  if (s.status !== 200 || s.length !== SMALL_BODY.length || b.status !== 200 || b.length !== BIG_SIZE) {
    throw new Error(`nginx answers wrongly: /small ${s.status} ${s.length} B, /big ${b.status} ${b.length} B`);
  }
  child.port = port;
  child.errorLog = join(dir, 'nginx-error.log');
  return child;
}

/**
 * A SECOND nginx, as a reverse proxy (bench --mode http, idle-memory): one worker, its own directory
 * `dir/nginx-proxy-PORT` (conf, pid, error log, temp paths), its own port, proxy_pass to the backend nginx
 * over an upstream keep-alive pool of 64, buffering left at nginx's defaults. Pinned to `cpu` (the worker
 * inherits it; null: not pinned). `workerConnections` counts client and upstream connections together;
 * `keepaliveTimeoutS` applies to both sides. The defaults are bench.mjs's; idle-memory.mjs raises both to
 * hold thousands of idle clients. Resolves once the process is started; nothing is checked through it here
 * (the caller waits for the port and checks).
 */
export async function startNginxProxy(parentDir, { cpu, port, backendPort, workerConnections = 4096, keepaliveTimeoutS = 300, forwarded = false }) {
  port ??= await freePort();
  const dir = join(parentDir, `nginx-proxy-${port}`);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  for (const t of ['client', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, 'tmp', t), { recursive: true });
  const root = process.getuid?.() === 0;
  const conf = `# generated by scripts/lib/peers.mjs (nginx as the proxy under test)
daemon off;
master_process on;
worker_processes 1;
${root ? 'user root root;' : ''}
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events {
    worker_connections ${workerConnections};
    multi_accept on;
}
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout ${keepaliveTimeoutS}s;
    tcp_nodelay on;
    client_body_temp_path ${dir}/tmp/client;
    proxy_temp_path ${dir}/tmp/proxy;
    fastcgi_temp_path ${dir}/tmp/fastcgi;
    uwsgi_temp_path ${dir}/tmp/uwsgi;
    scgi_temp_path ${dir}/tmp/scgi;
    upstream backend {
        server ${HOST}:${backendPort};
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout ${keepaliveTimeoutS}s;
    }
    server {
        listen ${HOST}:${port} backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";${forwarded ? `
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;` : ''}
        }
    }
}
`;
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  const child = startPinned('nginx-proxy', cpu, 'nginx', ['-p', dir, '-e', join(dir, 'nginx-error.log'), '-c', confPath]);
  child.port = port;
  child.errorLog = join(dir, 'nginx-error.log');
  return child;
}

export function removeDirLater(dir) {
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
}

// ---------------------------------------------------------------------------------------------------------
// HAProxy as the proxy under test.

/**
 * The text of an HAProxy config: `global` lines, then defaults in `mode` ('tcp' or 'http'; http adds
 * `option http-keep-alive` and `http-reuse always`) with `timeouts` ({ connect: '5s', ... }, in that order),
 * one frontend `fe` on HOST:port (`frontend`: lines between its bind and default_backend) and one backend
 * `be`, the nginx at HOST:backendPort. `backendPorts` (a list, instead of backendPort) gives `be` one server
 * line per port (nginx1, nginx2, ...) and `balance roundrobin` when there are two or more (ab.mjs --servers);
 * a list of one is backendPort. `bind`: options after the bind line's address (`ssl crt FILE alpn http/1.1`
 * for the TLS entries). Lines are given without indentation. bench.mjs's configs are the benchmark
 * of record: a change to what this prints for them changes its results' setup.
 */
export function haproxyConfig({ generatedBy, global, mode, timeouts, frontend = [], port, bind = '', backendPort, backendPorts = [backendPort] }) {
  const block = (lines) => lines.map((l) => `    ${l}\n`).join('');
  const defaults = [
    `mode ${mode}`,
    ...(mode === 'http' ? ['option http-keep-alive', 'http-reuse always'] : []),
    ...Object.entries(timeouts).map(([k, v]) => `timeout ${k} ${v}`),
  ];
  return `# generated by ${generatedBy}
global
${block(global)}
defaults
${block(defaults)}
frontend fe
${block([`bind ${HOST}:${port}${bind ? ` ${bind}` : ''}`, ...frontend, 'default_backend be'])}
backend be
${block(backendPorts.length === 1 ? [`server nginx ${HOST}:${backendPorts[0]}`] : ['balance roundrobin', ...backendPorts.map((p, i) => `server nginx${i + 1} ${HOST}:${p}`)])}`;
}

/** Writes `config` to `cfgPath` and starts `haproxy -db -f cfgPath` pinned to `cpu` (null: not pinned). */
export function startHaproxy(cfgPath, config, cpu) {
  writeFileSync(cfgPath, config);
  return startPinned('haproxy', cpu, 'haproxy', ['-db', '-f', cfgPath]);
}

// ---------------------------------------------------------------------------------------------------------
// CPU time from /proc: utime + stime (fields 14 and 15 of /proc/PID/stat, in clock ticks). The process line
// already includes every thread (live and exited) of the process.

const getconfCache = new Map();
/** `getconf name` as a number, read once per name; `fallback` if getconf fails or prints no number. */
function getconfNumber(name, fallback) {
  if (!getconfCache.has(name)) {
    let v;
    try {
      v = Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim()) || fallback;
    } catch {
      v = fallback;
    }
    getconfCache.set(name, v);
  }
  return getconfCache.get(name);
}

export function clockTicks() {
  return getconfNumber('CLK_TCK', 100);
}

/** utime+stime of `pid` in seconds. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2 (comm) is in parentheses and may hold spaces: count fields from after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state), so field N is rest[N - 3].
  const utime = Number(rest[14 - 3]);
  const stime = Number(rest[15 - 3]);
  return (utime + stime) / clockTicks();
}

/**
 * CPU seconds of `pid` and what it forked: its own utime+stime, plus cutime+cstime (children it has already
 * reaped), plus utime+stime of its live children (found by ppid in /proc). For nginx that is the master and
 * its worker(s); for a single process it equals cpuSeconds(pid) unless it reaps children.
 */
export function cpuSecondsTree(pid) {
  const { user, system } = cpuSplitTree(pid);
  return user + system;
}

/** cpuSecondsTree() as { user, system } seconds: user time (utime) and kernel time (stime) apart. */
export function cpuSplitTree(pid) {
  const fields = (p) => {
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  };
  const own = fields(pid);
  // fields 14-17: utime, stime, cutime, cstime
  let user = Number(own[11]) + Number(own[13]);
  let system = Number(own[12]) + Number(own[14]);
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === pid) continue;
    let f;
    try {
      f = fields(name);
    } catch {
      continue; // gone meanwhile
    }
    if (Number(f[4 - 3]) === pid) {
      user += Number(f[11]);
      system += Number(f[12]);
    }
  }
  return { user: user / clockTicks(), system: system / clockTicks() };
}

/** Pids whose parent is `pid` (from /proc). */
export function childPids(pid) {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
    } catch {}
  }
  return out;
}

/** The comm (process name) of `pid`, to check we measure what we think we measure. */
export function procName(pid) {
  return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
}

// ---------------------------------------------------------------------------------------------------------
// wrk

/**
 * Runs `wrk -t1 -cC -dDs --latency URL` pinned to `cpu`; resolves the parsed output, plus `stealPct`, the
 * share of the run's wall time in which the hypervisor ran another guest on each CPU (from /proc/stat), and
 * `stealMaxPct`, the largest of them. Killed if it runs `durationS + 30` s.
 */
export async function runWrk(url, { durationS, connections = 64, threads = 1, cpu }) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${durationS}s`, '--latency', url];
  const steal0 = stealTicks();
  const t0 = Date.now();
  const child = startPinned('wrk', cpu, 'wrk', args);
  const killer = setTimeout(() => stopChild(child, { signal: 'SIGKILL' }), (durationS + 30) * 1000);
  const { code, signal } = await child.exited;
  clearTimeout(killer);
  const wallTicks = ((Date.now() - t0) / 1000) * clockTicks();
  const stealPct = stealTicks().map((v, i) => (100 * (v - steal0[i])) / wallTicks);
  const out = child.output;
  if (code !== 0) throw new Error(`wrk ${args.join(' ')} failed (${signal ?? code}):\n${tail(out)}`);
  // Holes (an offline CPU has no line) are skipped.
  const stealMaxPct = Math.max(0, ...stealPct.filter(Number.isFinite));
  return { ...parseWrk(out), stealPct, stealMaxPct, raw: out, command: `wrk ${args.join(' ')}` };
}

/**
 * Steal time so far, per CPU, in clock ticks: time this VM's CPU was runnable but the hypervisor ran
 * another guest (the 8th value of each `cpuN` line of /proc/stat; 0 on bare metal). On the small VMs these
 * benchmarks run on it comes in phases of tens of seconds, up to two thirds of a CPU, and a window it hits
 * can have a p99 ten or more times its neighbours', whatever the proxy (docs/benchmarks.md).
 */
export function stealTicks() {
  const out = [];
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) /.exec(line);
    if (m) out[Number(m[1])] = Number(line.trim().split(/\s+/)[8] ?? 0);
  }
  return out;
}

/**
 * A warm-up of `warmupS` seconds as wrk runs: two (2/3 and 1/3 of it) when it is 3 s or more, so that the
 * proxy sees its connections close and new ones open once V8 has optimized its hot path (bench.mjs says why).
 */
export function warmupRuns(warmupS) {
  return [warmupS - Math.floor(warmupS / 3), Math.floor(warmupS / 3)].filter((d) => d > 0);
}

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60000, h: 3600000 };
function toMs(text) {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text);
  return m ? Number(m[1]) * UNIT_MS[m[2]] : NaN;
}

export function parseWrk(out) {
  const num = (re) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : null;
  };
  const lat = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out);
    return m ? toMs(m[1]) : null;
  };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const totals = /(\d+) requests in ([\d.]+)(\w+), ([\d.]+\w+) read/.exec(out);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    requests: totals ? Number(totals[1]) : null,
    elapsedMs: totals ? toMs(`${totals[2]}${totals[3]}`) : null,
    read: totals ? totals[4] : null,
    transferPerSec: /Transfer\/sec:\s+(\S+)/.exec(out)?.[1] ?? null,
    p50ms: lat(50),
    p75ms: lat(75),
    p90ms: lat(90),
    p99ms: lat(99),
    errors: {
      connect: sock ? Number(sock[1]) : 0,
      read: sock ? Number(sock[2]) : 0,
      write: sock ? Number(sock[3]) : 0,
      timeout: sock ? Number(sock[4]) : 0,
      non2xx3xx: num(/Non-2xx or 3xx responses:\s+(\d+)/) ?? 0,
    },
  };
}

/** A latency in ms as wrk prints it: 850us, 1.23ms, 150ms; '-' for none. */
export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '-';
  return ms < 1 ? `${(ms * 1000).toFixed(0)}us` : ms < 100 ? `${ms.toFixed(2)}ms` : `${ms.toFixed(0)}ms`;
}

/** The median of the numbers in `xs` (others skipped); null when there are none. */
export function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && !Number.isNaN(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** "" when the run had no errors, else a short description like "read 3, non-2xx 10". */
export function describeErrors(e) {
  const parts = [];
  for (const k of ['connect', 'read', 'write', 'timeout']) if (e[k]) parts.push(`${k} ${e[k]}`);
  if (e.non2xx3xx) parts.push(`non-2xx/3xx ${e.non2xx3xx}`);
  return parts.join(', ');
}

/** `--name value` or `--name=value` from argv, else undefined. */
export function argValue(argv, name) {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === `--${name}`) return argv[i + 1];
    if (argv[i].startsWith(`--${name}=`)) return argv[i].slice(name.length + 3);
  }
  return undefined;
}

/**
 * Option checks for the script `prog`: usage(msg) prints "prog: msg" and exits 2; intArg(name, dflt, min)
 * is `--name` from argv as a whole number >= min (else a usage error), or `dflt` when it is not given.
 */
export function cliArgs(prog, argv) {
  const usage = (msg) => {
    process.stderr.write(`${prog}: ${msg}\n`);
    process.exit(2);
  };
  const intArg = (name, dflt, min = 1) => {
    const raw = argValue(argv, name);
    if (raw === undefined) return dflt;
    const v = Number(raw);
    if (!Number.isInteger(v) || v < min) usage(`--${name} must be a whole number >= ${min} (got ${raw})`);
    return v;
  };
  return { usage, intArg };
}

// ---------------------------------------------------------------------------------------------------------
// Many idle connections (scripts/idle-memory.mjs, scripts/hold.mjs): forked client processes tracked like
// the children above, memory and socket counts from /proc, loopback source addresses, an HTTP/1.1 response
// reader for raw sockets, and the client side that opens, uses and holds thousands of keep-alive connections.

/**
 * fork()s `modulePath args` as a tracked child: its own process group, killed on the way out like
 * startPinned's, with an IPC channel. stdout and stderr are kept (last 64 KiB) in child.output; `onLine`
 * (optional) gets each line as it comes. child.exited resolves { code, signal }.
 */
export function forkTracked(name, modulePath, args = [], { env = process.env, onLine } = {}) {
  const child = fork(modulePath, args, { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let partial = '';
  track(child, name, {
    onText: (text) => {
      if (!onLine) return;
      const lines = (partial + text).split('\n');
      partial = lines.pop();
      for (const l of lines) if (l.trim()) onLine(l);
    },
    onExit: () => {
      if (onLine && partial.trim()) onLine(partial);
    },
  });
  // A failed fork also ends in 'exit'; without this listener the 'error' would be thrown.
  child.on('error', (e) => {
    child.output += `\n${name}: ${e.message}\n`;
  });
  return child;
}

/** VmRSS of `pid` in KiB, or 0 if it is gone. */
export function rssKiB(pid) {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** `pid` and all its descendants (by ppid in /proc), parents first. */
export function processTree(pid) {
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...childPids(out[i]));
  return out;
}

/**
 * Summed VmRSS of `pid` and its descendants (nginx: master + worker; ffi-proxy's worker threads are inside
 * its one process). Pages shared between the processes count once per process: compare two readings, not
 * absolute sums across peers.
 */
export function rssTreeKiB(pid) {
  const pids = processTree(pid);
  return { kib: pids.reduce((a, p) => a + rssKiB(p), 0), pids };
}

/**
 * The kernel's side, machine-wide: /proc/net/sockstat's TCP line (mem: pages charged to TCP socket buffers),
 * /proc/meminfo's Slab, SReclaimable and SUnreclaim, and (root only) bytes per slab cache from /proc/slabinfo
 * (active objects * object size), else caches = null.
 */
export function kernelMemory() {
  const sock = /^TCP: inuse (\d+) orphan (\d+) tw (\d+) alloc (\d+) mem (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'));
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const kib = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(meminfo)?.[1] ?? NaN);
  let caches = null;
  try {
    caches = {};
    for (const line of readFileSync('/proc/slabinfo', 'utf8').split('\n').slice(2)) {
      const f = line.split(/\s+/);
      if (f.length > 4) caches[f[0]] = Number(f[1]) * Number(f[3]);
    }
  } catch {
    caches = null;
  }
  return {
    pageBytes: getconfNumber('PAGESIZE', 4096),
    tcpInuse: Number(sock?.[1] ?? NaN),
    tcpTw: Number(sock?.[3] ?? NaN),
    tcpAlloc: Number(sock?.[4] ?? NaN),
    tcpMemPages: Number(sock?.[5] ?? NaN),
    slabKiB: kib('Slab'),
    sReclaimableKiB: kib('SReclaimable'),
    sUnreclaimKiB: kib('SUnreclaim'),
    caches,
  };
}

/**
 * Bytes per connection between two kernelMemory() readings: TCP buffer memory, Slab, and the slab caches
 * that grew most (top `top`, bytes per connection).
 */
export function kernelGrowth(before, after, connections, top = 6) {
  const per = (x) => x / connections;
  const grown = [];
  if (before.caches && after.caches) {
    for (const [name, bytes] of Object.entries(after.caches)) {
      const d = bytes - (before.caches[name] ?? 0);
      if (d > 0) grown.push({ cache: name, bytesPerConn: per(d) });
    }
    grown.sort((a, b) => b.bytesPerConn - a.bytesPerConn);
  }
  return {
    tcpMemBytesPerConn: per((after.tcpMemPages - before.tcpMemPages) * after.pageBytes),
    slabBytesPerConn: per((after.slabKiB - before.slabKiB) * 1024),
    sUnreclaimBytesPerConn: per((after.sUnreclaimKiB - before.sUnreclaimKiB) * 1024),
    topSlabCaches: grown.slice(0, top),
    tcpInuse: [before.tcpInuse, after.tcpInuse],
  };
}

/**
 * ESTABLISHED TCP sockets of this machine at host:port (IPv4): `server`, those whose local end is host:port
 * (what a server there accepted), and `client`, those whose remote end is host:port (the connecting ends).
 * With `sources` (addresses), only those whose other end / local end is one of them: a port is only unique
 * per address, and another program's client socket may have the same number as its ephemeral port. From
 * `ss` (netlink, filtered in the kernel), else from /proc/net/tcp.
 */
export function establishedAt(host, port, sources = null) {
  const from = sources ? new Set(sources) : null;
  const me = `${host}:${port}`;
  const out = { server: 0, client: 0 };
  const count = (local, peer) => {
    if (local === me && (!from || from.has(peer.slice(0, peer.lastIndexOf(':'))))) out.server++;
    else if (peer === me && (!from || from.has(local.slice(0, local.lastIndexOf(':'))))) out.client++;
  };
  if (which('ss')) {
    const text = execFileSync('ss', ['-Htn4', 'state', 'established', '(', 'sport', '=', `:${port}`, 'or', 'dport', '=', `:${port}`, ')'], {
      encoding: 'latin1',
      maxBuffer: 1 << 28,
    });
    // With a state filter ss leaves the State column out: Recv-Q Send-Q Local:Port Peer:Port.
    for (const line of text.split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 4) count(f[2], f[3]);
    }
    return out;
  }
  // "sl local_address rem_address st ...": addresses as hex u32 in host order, ports as hex; 01 = ESTABLISHED.
  const addr = (hex) => {
    const [a, p] = hex.split(':');
    const v = parseInt(a, 16);
    return `${v & 255}.${(v >>> 8) & 255}.${(v >>> 16) & 255}.${v >>> 24}:${parseInt(p, 16)}`;
  };
  for (const line of procNetTcp()) {
    const f = line.trim().split(/\s+/);
    if (f[3] === '01' && f[1].length === 13) count(addr(f[1]), addr(f[2]));
  }
  return out;
}

function procNetTcp() {
  const lines = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      lines.push(...readFileSync(file, 'latin1').split('\n').slice(1).filter((l) => l.trim()));
    } catch {}
  }
  return lines;
}

/**
 * `n` loopback source addresses from 127.0.0.`base` on (127.0.0.2, 127.0.0.3, ...; carrying into 127.0.1.x
 * past 127.0.0.255). All of 127.0.0.0/8 reaches lo without configuration.
 */
export function loopbackSources(n, base = 2) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const v = (127 << 24) + base + i;
    out.push([(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.'));
  }
  return out;
}

/** The ephemeral port range [low, high] of /proc/sys/net/ipv4/ip_local_port_range. */
export function ephemeralRange() {
  const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  return [lo, hi];
}

/**
 * TCP sockets in any state (TIME_WAIT included) bound to each of `addresses` (IPv4), from /proc/net/tcp. A
 * client that binds its source address first (Node's localAddress) gets its port at bind(), where every
 * socket on that address counts, TIME_WAIT too, whatever its destination: this says how many are left.
 */
export function socketsPerAddress(addresses) {
  const want = new Map();
  for (const a of addresses) {
    // /proc/net/tcp prints the address as the u32 in host order (little-endian here): 127.0.0.2 -> 0200007F.
    const b = a.split('.').map(Number);
    want.set(((b[3] << 24) | (b[2] << 16) | (b[1] << 8) | b[0]) >>> 0, a);
  }
  const counts = Object.fromEntries(addresses.map((a) => [a, 0]));
  for (const line of procNetTcp()) {
    const local = line.trim().split(/\s+/)[1] ?? '';
    if (local.length !== 13) continue; // IPv6 entries are longer
    const a = want.get(parseInt(local.slice(0, 8), 16));
    if (a) counts[a]++;
  }
  return counts;
}

// ---------------------------------------------------------------------------------------------------------
// Reading one HTTP/1.1 response at a time from a socket's byte stream.

const CRLF2 = Buffer.from('\r\n\r\n');
const RS = { HEAD: 0, LENGTH: 1, CHUNK_SIZE: 2, CHUNK_DATA: 3, CHUNK_END: 4, TRAILERS: 5, TO_EOF: 6 };

/**
 * Incremental reader of HTTP/1.1 responses (to requests other than HEAD/CONNECT): status line and headers,
 * then the body framed by Transfer-Encoding: chunked, Content-Length, none (1xx, 204, 304), or the close of
 * the connection. Interim 1xx responses (not 101) are skipped. push(chunk) returns null while the response
 * is incomplete, else { status, keepAlive, bodyBytes, extra }, `extra` being the bytes after it (a Buffer,
 * usually empty); the reader is then ready for the next response. end() is called at EOF: it returns the
 * response if the close was its end, else null (cut short). A malformed response throws an Error whose
 * code is 'EBADRESPONSE'.
 */
export class ResponseReader {
  constructor(maxHead = 65536) {
    this.maxHead = maxHead;
    this.reset();
  }

  reset() {
    this.state = RS.HEAD;
    this.head = null; // Buffer: the head so far
    this.line = ''; // chunk-size, chunk-end and trailer lines so far
    this.status = 0;
    this.keepAlive = true;
    this.remaining = 0;
    this.bodyBytes = 0;
  }

  push(chunk) {
    let pos = 0;
    while (pos < chunk.length) {
      switch (this.state) {
        case RS.HEAD: {
          const start = this.head ? Math.max(0, this.head.length - 3) : 0;
          this.head = this.head ? Buffer.concat([this.head, chunk.subarray(pos)]) : chunk.subarray(pos);
          pos = chunk.length;
          const at = this.head.indexOf(CRLF2, start);
          if (at === -1) {
            if (this.head.length > this.maxHead) bad(`head longer than ${this.maxHead} bytes`);
            continue;
          }
          const rest = this.head.subarray(at + 4);
          this.#onHead(this.head.latin1Slice(0, at));
          this.head = null;
          // Continue on what follows the head: it is a new chunk from here on.
          chunk = rest;
          pos = 0;
          if (this.status === 0) continue; // an interim 1xx: read the next head
          if (this.state === RS.HEAD) return this.#done(chunk, 0); // no body
          continue;
        }
        case RS.LENGTH:
        case RS.CHUNK_DATA: {
          const n = Math.min(this.remaining, chunk.length - pos);
          this.remaining -= n;
          this.bodyBytes += n;
          pos += n;
          if (this.remaining > 0) continue;
          if (this.state === RS.LENGTH) return this.#done(chunk, pos);
          this.state = RS.CHUNK_END;
          continue;
        }
        case RS.TO_EOF:
          this.bodyBytes += chunk.length - pos;
          pos = chunk.length;
          continue;
        default: {
          // CHUNK_SIZE, CHUNK_END, TRAILERS: one CRLF-terminated line at a time.
          const nl = chunk.indexOf(10, pos);
          const end = nl === -1 ? chunk.length : nl;
          this.line += chunk.latin1Slice(pos, end);
          if (this.line.length > 8192) bad('chunk line longer than 8192 bytes');
          pos = end;
          if (nl === -1) continue;
          pos++;
          const line = this.line.endsWith('\r') ? this.line.slice(0, -1) : this.line;
          this.line = '';
          if (this.state === RS.CHUNK_SIZE) {
            const hex = line.split(';')[0].trim();
            if (!/^[0-9a-fA-F]{1,15}$/.test(hex)) bad(`chunk size ${JSON.stringify(line.slice(0, 40))}`);
            this.remaining = parseInt(hex, 16);
            this.state = this.remaining === 0 ? RS.TRAILERS : RS.CHUNK_DATA;
          } else if (this.state === RS.CHUNK_END) {
            if (line !== '') bad('chunk data longer than its size');
            this.state = RS.CHUNK_SIZE;
          } else if (line === '') {
            return this.#done(chunk, pos); // the empty line after the last chunk (and trailers)
          }
        }
      }
    }
    return null;
  }

  end() {
    if (this.state !== RS.TO_EOF) return null;
    const r = { status: this.status, keepAlive: false, bodyBytes: this.bodyBytes, extra: Buffer.alloc(0) };
    this.reset();
    return r;
  }

  #onHead(text) {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0]);
    if (!m) bad(`status line ${JSON.stringify(lines[0].slice(0, 60))}`);
    const minor = Number(m[1]);
    const status = Number(m[2]);
    if (status >= 100 && status < 200) {
      if (status === 101) bad('101 Switching Protocols to a plain request');
      this.status = 0;
      return;
    }
    let length = null;
    let chunked = false;
    let conn = '';
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(':');
      if (colon <= 0) bad(`header line ${JSON.stringify(lines[i].slice(0, 60))}`);
      const name = lines[i].slice(0, colon).trim().toLowerCase();
      const value = lines[i].slice(colon + 1).trim();
      if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value) || (length !== null && Number(value) !== length)) bad(`Content-Length ${value}`);
        length = Number(value);
      } else if (name === 'transfer-encoding') {
        chunked = value.toLowerCase().split(',').at(-1).trim() === 'chunked';
        if (!chunked) bad(`Transfer-Encoding ${value} (not chunked last)`);
      } else if (name === 'connection') {
        conn += `,${value.toLowerCase()}`;
      }
    }
    const tokens = conn.split(',').map((t) => t.trim());
    this.status = status;
    this.keepAlive = minor === 1 ? !tokens.includes('close') : tokens.includes('keep-alive');
    this.bodyBytes = 0;
    if (status === 204 || status === 304) this.state = RS.HEAD;
    else if (chunked) this.state = RS.CHUNK_SIZE;
    else if (length !== null) {
      this.remaining = length;
      this.state = length === 0 ? RS.HEAD : RS.LENGTH;
    } else {
      this.state = RS.TO_EOF;
      this.keepAlive = false;
    }
  }

  #done(chunk, pos) {
    const r = { status: this.status, keepAlive: this.keepAlive, bodyBytes: this.bodyBytes, extra: chunk.subarray(pos) };
    this.reset();
    return r;
  }
}

function bad(what) {
  const e = new Error(`bad response: ${what}`);
  e.code = 'EBADRESPONSE';
  throw e;
}

// ---------------------------------------------------------------------------------------------------------
// The client side of a hold test, in one process.

/** Sockets one client process may hold: the 20,000 open-file limit, less Node's own fds and a margin. */
export const MAX_SOCKETS_PER_PROCESS = 19000;

/**
 * Up to MAX_SOCKETS_PER_PROCESS raw keep-alive connections (one fd each) to host:port. Connection g (counted
 * from `first`, so several processes share one numbering) comes from sources[g % sources.length].
 *   open(count, concurrency)   connects `count`, at most `concurrency` being set up at once; each sends one
 *                              `GET path` and reads its whole response, then stays open and idle
 *   requestAll(concurrency)    one more request on every connection still open, same bound
 *   closeAll(timeoutMs)        half-closes each (FIN), waits for the server's close, destroys what is left
 * Each resolves a stats object: { ok, failed, errors: { kind: count } }. An error kind is the errno code
 * (ECONNREFUSED, ECONNRESET, EADDRNOTAVAIL...), 'timeout', 'status NNN', 'closed' (EOF before a whole
 * response), 'Connection: close' (a 200 that will not keep the connection), or 'EBADRESPONSE'. A
 * connection the server closes while it is idle is counted in `closedIdle` (and its kind in idleErrors).
 * `openCount` is the number of sockets open right now.
 */
export class HeldClients {
  constructor({ host = HOST, port, sources, path = '/small', first = 0, timeoutMs = 30000 }) {
    this.host = host;
    this.port = port;
    this.sources = sources;
    this.first = first;
    this.timeoutMs = timeoutMs;
    this.request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUser-Agent: ffi-proxy-hold\r\n\r\n`);
    this.conns = [];
    this.openCount = 0;
    this.closedIdle = 0;
    this.idleErrors = {};
    this.progress = 0; // operations finished in the current phase
  }

  async open(count, concurrency) {
    const stats = newStats();
    const base = this.conns.length;
    for (let i = 0; i < count; i++) this.conns.push(null);
    await this.#pool(count, concurrency, async (i) => {
      const c = await this.#connect(base + i);
      this.conns[base + i] = c;
      if (c.kind) return count1(stats, c.kind);
      count1(stats, await this.#exchange(c));
    });
    return stats;
  }

  async requestAll(concurrency) {
    const stats = newStats();
    const list = this.conns.filter(Boolean);
    await this.#pool(list.length, concurrency, async (i) => {
      const c = list[i];
      if (c.kind) return; // never connected: already failed in open()
      count1(stats, c.closed ? c.closedKind ?? 'closed' : await this.#exchange(c));
    });
    return stats;
  }

  async closeAll(timeoutMs = 10000) {
    const live = this.conns.filter((c) => c && !c.kind && !c.closed);
    const stats = { clean: 0, forced: 0 };
    await Promise.all(
      live.map(
        (c) =>
          new Promise((res) => {
            c.closing = true;
            const t = setTimeout(() => {
              stats.forced++;
              c.sock.destroy();
              res();
            }, timeoutMs);
            c.sock.once('close', () => {
              clearTimeout(t);
              stats.clean++;
              res();
            });
            c.sock.end();
          }),
      ),
    );
    return stats;
  }

  /** At most `concurrency` calls of fn(i) for i in [0, n) running at once; fn never rejects. */
  async #pool(n, concurrency, fn) {
    this.progress = 0;
    let next = 0;
    const run = async () => {
      while (next < n) {
        await fn(next++);
        this.progress++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, n) }, run));
  }

  /** Resolves a connection record once connected, or one with `kind` set when it could not connect. */
  #connect(i) {
    const g = this.first + i;
    return new Promise((res) => {
      const sock = net.connect({ host: this.host, port: this.port, localAddress: this.sources[g % this.sources.length], noDelay: true });
      // busy: a request is in flight; closing: this side ended or dropped it. A close with neither is the
      // server closing an idle connection.
      const c = { sock, reader: new ResponseReader(), waiter: null, connected: false, busy: false, closed: false, closing: false, kind: null, closedKind: null };
      const timer = setTimeout(() => {
        c.kind = 'timeout (connect)';
        sock.destroy();
        res(c);
      }, this.timeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        if (c.kind) return; // timed out a moment ago
        c.connected = true;
        this.openCount++;
        res(c);
      });
      sock.on('data', (d) => this.#onData(c, d));
      sock.on('error', (e) => {
        const kind = e.code ?? e.message;
        // Node clears sock.connecting before it emits a failed connect's error: go by our own flag.
        if (!c.kind && !c.connected) {
          clearTimeout(timer);
          c.kind = kind;
          res(c);
        }
        c.closedKind ??= kind;
        this.#finish(c, kind);
      });
      sock.on('end', () => {
        // EOF: a response that runs to the close ends here; otherwise what was awaited is cut short.
        let r = null;
        try {
          r = c.reader.end();
        } catch {}
        if (r) this.#finish(c, r.status === 200 ? 'Connection: close' : `status ${r.status}`);
        else this.#finish(c, 'closed');
      });
      sock.on('close', () => {
        if (c.connected && !c.closed) {
          c.closed = true;
          this.openCount--;
          if (!c.busy && !c.closing) {
            this.closedIdle++;
            const kind = c.closedKind ?? 'closed';
            this.idleErrors[kind] = (this.idleErrors[kind] ?? 0) + 1;
          }
        }
        this.#finish(c, c.closedKind ?? 'closed');
      });
    });
  }

  /** Sends one request on c and resolves its outcome: 'ok' or an error kind. */
  #exchange(c) {
    if (c.closed || c.sock.destroyed) return Promise.resolve(c.closedKind ?? 'closed');
    return new Promise((res) => {
      const timer = setTimeout(() => {
        c.waiter = null;
        c.closedKind ??= 'timeout';
        c.closing = true;
        c.sock.destroy();
        res('timeout');
      }, this.timeoutMs);
      c.waiter = (kind) => {
        clearTimeout(timer);
        c.waiter = null;
        res(kind);
      };
      c.busy = true;
      c.sock.write(this.request);
    });
  }

  #onData(c, d) {
    let r;
    try {
      r = c.reader.push(d);
    } catch (e) {
      c.closedKind = e.code;
      c.closing = true;
      c.sock.destroy();
      return this.#finish(c, e.code);
    }
    if (!r) return;
    if (!c.waiter) {
      // A response nobody asked for (a 408 or 503 sent before closing an idle connection): counted with
      // the idle close that follows.
      c.closedKind = `unsolicited status ${r.status}`;
      c.sock.destroy();
      return;
    }
    if (r.extra.length) {
      // Bytes after the response: the connection is out of step, drop it.
      c.closedKind = 'EBADRESPONSE';
      c.closing = true;
      c.sock.destroy();
      return this.#finish(c, 'EBADRESPONSE');
    }
    c.busy = false;
    if (!r.keepAlive) {
      c.closing = true;
      c.sock.end();
    }
    if (r.status !== 200) return this.#finish(c, `status ${r.status}`);
    this.#finish(c, r.keepAlive ? 'ok' : 'Connection: close');
  }

  #finish(c, kind) {
    if (c.waiter) c.waiter(kind);
  }
}

function newStats() {
  return { ok: 0, failed: 0, errors: {} };
}
function count1(stats, kind) {
  if (kind === 'ok') stats.ok++;
  else {
    stats.failed++;
    stats.errors[kind] = (stats.errors[kind] ?? 0) + 1;
  }
}

/** Adds stats objects ({ ok, failed, errors }) together. */
export function sumStats(list) {
  const out = newStats();
  for (const s of list) {
    out.ok += s.ok;
    out.failed += s.failed;
    for (const [k, v] of Object.entries(s.errors)) out.errors[k] = (out.errors[k] ?? 0) + v;
  }
  return out;
}

/** "ECONNRESET 3, timeout 2" or "none". */
export function describeKinds(errors) {
  const parts = Object.entries(errors)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`);
  return parts.length ? parts.join(', ') : 'none';
}

/**
 * The body of a forked client process (`node SCRIPT --role client`, started by ClientFleet): one HeldClients
 * driven over IPC. Messages in: { type: 'open', host, port, sources, path, first, count, concurrency,
 * timeoutMs } (again: `count` more, same target), { type: 'request', concurrency }, { type: 'count' }, { type: 'close', timeoutMs }; each is
 * answered by one message ('opened', 'requested', 'count', 'closed'), or 'failed' with the error. While a
 * phase runs it sends { type: 'progress', done } every 500 ms. It exits when the parent disconnects or goes
 * away (the IPC channel closes).
 */
export function runClientRole() {
  let clients = null;
  const state = () => ({
    connected: clients ? clients.conns.reduce((n, c) => n + (c && !c.kind ? 1 : 0), 0) : 0,
    open: clients?.openCount ?? 0,
    closedIdle: clients?.closedIdle ?? 0,
    idleErrors: clients?.idleErrors ?? {},
    rssKiB: rssKiB(process.pid),
  });
  process.on('disconnect', () => process.exit(0));
  const phase = async (fn) => {
    const t = setInterval(() => process.send({ type: 'progress', done: clients.progress }), 500);
    try {
      return await fn();
    } finally {
      clearInterval(t);
    }
  };
  process.on('message', async (m) => {
    try {
      if (m.type === 'open') {
        // A second 'open' adds connections to the same set (numbered on from the first ones).
        clients ??= new HeldClients(m);
        const t0 = Date.now();
        const stats = await phase(() => clients.open(m.count, m.concurrency));
        process.send({ type: 'opened', stats, ms: Date.now() - t0, ...state() });
      } else if (m.type === 'request') {
        const t0 = Date.now();
        const stats = await phase(() => clients.requestAll(m.concurrency));
        process.send({ type: 'requested', stats, ms: Date.now() - t0, ...state() });
      } else if (m.type === 'count') {
        process.send({ type: 'count', ...state() });
      } else if (m.type === 'close') {
        const before = state();
        const t0 = Date.now();
        const stats = clients ? await clients.closeAll(m.timeoutMs) : { clean: 0, forced: 0 };
        process.send({ type: 'closed', stats, ms: Date.now() - t0, ...before });
      }
    } catch (e) {
      process.send({ type: 'failed', message: e?.stack ?? String(e) });
    }
  });
}

/**
 * `n` forked client processes running `script --role client` (see runClientRole), tracked for cleanup.
 * ask(msgs, want, timeoutMs) sends msgs[i] to process i and resolves their replies of type `want`, in process
 * order; it rejects when one answers 'failed', exits, or `timeoutMs` passes first. progress() sums the
 * processes' last progress counts.
 */
export class ClientFleet {
  constructor(script, n, { name = 'client', onLine } = {}) {
    this.procs = [];
    for (let i = 0; i < n; i++) {
      const child = forkTracked(`${name} ${i}`, script, ['--role', 'client'], {
        onLine: onLine && ((l) => onLine(`${name} ${i}: ${l}`)),
      });
      child.done = 0;
      child.waiting = null;
      child.on('message', (m) => {
        if (m.type === 'progress') child.done = m.done;
        else if (child.waiting && m.type === child.waiting.want) child.waiting.res(m);
        else if (child.waiting && m.type === 'failed') child.waiting.rej(new Error(`${child.label}: ${m.message}`));
      });
      child.exited.then(({ code, signal }) => {
        // Messages sent just before the exit may still be on their way: give them a moment.
        setTimeout(() => child.waiting?.rej(new Error(`${child.label} exited (${signal ?? code}):\n${tail(child.output)}`)), 200);
      });
      this.procs.push(child);
    }
  }

  progress() {
    return this.procs.reduce((a, c) => a + c.done, 0);
  }

  ask(msgs, want, timeoutMs) {
    let timer;
    const timeout = new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`no '${want}' from every client process after ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
    });
    const replies = this.procs.map((c, i) => {
      c.done = 0;
      return new Promise((res, rej) => {
        c.waiting = { want, res, rej };
        if (c.exitCode !== null || c.signalCode !== null) rej(new Error(`${c.label} is not running:\n${tail(c.output)}`));
        else c.send(msgs[i]);
      }).finally(() => {
        c.waiting = null;
      });
    });
    return Promise.race([Promise.all(replies), timeout]).finally(() => clearTimeout(timer));
  }

  /** Disconnects every process (which makes it exit), waits, SIGKILLs what is left after `graceMs`. */
  async stop(graceMs = 5000) {
    await Promise.all(
      this.procs.map(async (c) => {
        if (c.connected) c.disconnect();
        const t = setTimeout(() => killGroup(c, 'SIGKILL'), graceMs);
        await c.exited;
        clearTimeout(t);
      }),
    );
  }
}

/**
 * The A/B rounds of ab.mjs and tls-handshakes.mjs: each round measures both sides once, in alternating
 * order (A B, then B A); when either window was stolen (`w.stolen`), the round's two windows are set aside
 * (in each side's setAsideWindows) and the round measured again after 3 s, up to `retries` times. Each
 * side's windows[round] is the kept window. Returns how many rounds were set aside.
 */
export async function alternatingRounds(sides, rounds, retries, measure, describe) {
  let setAside = 0;
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 ? [sides[1], sides[0]] : sides;
    for (let attempt = 0; ; attempt++) {
      const wins = [];
      for (const s of order) wins.push(await measure(s));
      const line = order.map((s, i) => describe(s, wins[i])).join(' | ');
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
  return setAside;
}

/**
 * Stops each side's proxy (SIGTERM) and keeps what it printed past its start (warn and above for ffi-proxy;
 * HAProxy's alerts) in `s.log`, and in `s.exit` how it ended when that was not a clean stop.
 */
export async function stopSides(sides) {
  for (const s of sides) {
    const { code, signal } = await stopChild(s.child, { signal: 'SIGTERM', graceMs: 10000 });
    s.log = s.child.output.split('\n').filter((l) => l.trim() && !/listening on|^backend: |^tls: |^admin: |SIGTERM: no longer accepting|draining/.test(l));
    s.exit = code === 0 || signal === 'SIGTERM' ? null : `exited ${signal ?? code} on SIGTERM`;
  }
}
