// Helpers shared by scripts/bench.mjs and scripts/profile.mjs: tool checks, a registry of child processes
// that are always killed on the way out, an nginx backend in a temp dir, port waits, CPU pinning, wrk runs
// and /proc CPU accounting. Plain Node ESM, no dependencies. Loopback (127.0.0.1) only.

import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, readFileSync, readdirSync, rmSync, chmodSync, accessSync, constants } from 'node:fs';
import { tmpdir, availableParallelism } from 'node:os';
import { join, dirname, delimiter } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import http from 'node:http';

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
  child.label = name;
  child.output = '';
  children.add(child);
  let readyResolve;
  let readyReject;
  child.ready = new Promise((res, rej) => {
    readyResolve = res;
    readyReject = rej;
  });
  child.ready.catch(() => {});
  const onData = (d) => {
    child.output += d.toString();
    if (child.output.length > 65536) child.output = child.output.slice(-65536);
    if (ready && ready.test(child.output)) readyResolve();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  child.exited = new Promise((res) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      // What it forked (nginx's worker) is in the same group: make sure it goes too.
      killGroup(child, 'SIGKILL');
      readyReject(new Error(`${name} exited (${signal ?? code}) before it was ready:\n${tail(child.output)}`));
      res({ code, signal });
    });
  });
  child.on('error', (e) => readyReject(new Error(`${name}: ${e.message}`)));
  return child;
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

/** One GET through http://HOST:port/path; resolves { status, length } or rejects. */
export function httpGet(port, path, timeoutMs = 5000) {
  return new Promise((res, rej) => {
    const req = http.get({ host: HOST, port, path, agent: false, timeout: timeoutMs }, (r) => {
      let length = 0;
      r.on('data', (d) => (length += d.length));
      r.on('end', () => res({ status: r.statusCode, length }));
      r.on('error', rej);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out after ${timeoutMs} ms`)));
    req.on('error', rej);
  });
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
 * A SECOND nginx, as a reverse proxy (bench --mode http): one worker, its own directory `dir/nginx-proxy-PORT`
 * (conf, pid, error log, temp paths), its own port, proxy_pass to the backend nginx over an upstream
 * keep-alive pool of 64, buffering left at nginx's defaults. Pinned to `cpu` (the worker inherits it).
 * Resolves once the port accepts; nothing is checked through it here (benchOne does that).
 */
export async function startNginxProxy(parentDir, { cpu, port, backendPort }) {
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
    worker_connections 4096;
    multi_accept on;
}
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
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
        keepalive_timeout 300s;
    }
    server {
        listen ${HOST}:${port} backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
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
// CPU time from /proc: utime + stime (fields 14 and 15 of /proc/PID/stat, in clock ticks). The process line
// already includes every thread (live and exited) of the process.

let clkTck = null;
export function clockTicks() {
  if (clkTck === null) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
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
  const fields = (p) => {
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  };
  const own = fields(pid);
  // fields 14-17: utime, stime, cutime, cstime
  let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === pid) continue;
    let f;
    try {
      f = fields(name);
    } catch {
      continue; // gone meanwhile
    }
    if (Number(f[4 - 3]) === pid) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / clockTicks();
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
 * Runs `wrk -t1 -cC -dDs --latency URL` pinned to `cpu`; resolves the parsed output. Killed if it
 * runs `durationS + 30` s.
 */
export async function runWrk(url, { durationS, connections = 64, threads = 1, cpu }) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${durationS}s`, '--latency', url];
  const child = startPinned('wrk', cpu, 'wrk', args);
  const killer = setTimeout(() => stopChild(child, { signal: 'SIGKILL' }), (durationS + 30) * 1000);
  const { code, signal } = await child.exited;
  clearTimeout(killer);
  const out = child.output;
  if (code !== 0) throw new Error(`wrk ${args.join(' ')} failed (${signal ?? code}):\n${tail(out)}`);
  return { ...parseWrk(out), raw: out, command: `wrk ${args.join(' ')}` };
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
