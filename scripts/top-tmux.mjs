// Checks `ffi-proxy top` in a real terminal: tmux (a private server, -L, no user config) at 80 × 24.
//
//   npm run build && node scripts/top-tmux.mjs [--keep]     (--keep: leave the temporary directory)
//
// 1. top starts against an admin port where nothing listens yet: the error is on screen and top keeps running.
// 2. A proxy starts there (the library, from a config file: an HTTP frontend `web` with three servers behind
//    it, one of them drained, and a TCP frontend `db`), with load going: fast and slow requests, 404s and
//    500s. top recovers by itself; the frame has the header, a frontend row, a server row, the alternate
//    screen on and the cursor hidden, and no line over 80 columns (wrapped lines joined: capture-pane -J).
//    That frame is saved to docs/top.txt.
// 3. `b` changes the sort label, `h` shows the keys and any key returns, and a resize to 120 × 30 redraws at
//    the new width.
// 4. `q` ends top: the pane goes (the session ends), and just before, the shell in the pane records that top
//    exited 0 and left the terminal restored: main screen, cursor shown, not raw (stty: icanon echo).
// 5. The same with Ctrl-C.
// Prints a PASS or FAIL line per check; exits 1 if any failed.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist', 'cli.js');
const SOCK = `ffi-top-check-${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'ffi-top-'));
let failed = 0;

function check(ok, what, detail = '') {
  console.log(`${ok ? 'PASS' : 'FAIL'} ${what}${!ok && detail ? `\n     ${detail.replace(/\n/g, '\n     ')}` : ''}`);
  if (!ok) failed++;
  return ok;
}

function tmux(...args) {
  return spawnSync('/usr/bin/tmux', ['-L', SOCK, '-f', '/dev/null', ...args], { encoding: 'utf8' });
}

/** The pane's text; `joined` joins lines the terminal wrapped, so that an overlong line shows as one. */
function capture(session, joined = false) {
  return tmux('capture-pane', '-p', ...(joined ? ['-J'] : []), '-t', session).stdout;
}

const alive = (session) => tmux('has-session', '-t', session).status === 0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond, ms = 8000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = cond();
    if (v || Date.now() > end) return v;
    await sleep(100);
  }
}

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** Starts top in a new session; when top ends, the pane's shell writes its exit code and the terminal's state to `after`. */
function startTop(session, admin, after) {
  const state = `alt=#{alternate_on} cursor=#{cursor_flag}`;
  const cmd = `node ${CLI} top --admin ${admin} --interval 0.5; echo "rc=$?" > ${after}; tmux display -p -t "$TMUX_PANE" '${state}' >> ${after}; stty -a >> ${after}`;
  const r = tmux('new-session', '-d', '-s', session, '-x', '80', '-y', '24', cmd);
  if (r.status !== 0) throw new Error(`tmux new-session: ${r.stderr}`);
}

/** The backend: /slow answers after 5 s, /missing is 404, /fail is 500, the rest 200 with some bytes. */
async function backend() {
  const s = http.createServer((req, res) => {
    const status = req.url.startsWith('/missing') ? 404 : req.url.startsWith('/fail') ? 500 : 200;
    const body = 'x'.repeat(200 + Math.floor(Math.random() * 4000));
    const answer = () => res.writeHead(status, { 'Content-Type': 'text/plain' }).end(body);
    if (req.url.startsWith('/slow')) setTimeout(answer, 5000);
    else answer();
  });
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  return s;
}

async function startProxy(adminPort) {
  const { start } = await import(join(ROOT, 'dist', 'index.js'));
  const servers = [await backend(), await backend(), await backend()];
  const echo = net.createServer((c) => c.pipe(c));
  await new Promise((r) => echo.listen(0, '127.0.0.1', r));
  const at = (s) => `127.0.0.1:${s.address().port}`;
  const config = join(dir, 'proxy.json');
  writeFileSync(config, JSON.stringify({
    admin: `127.0.0.1:${adminPort}`,
    frontends: [
      { name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'app' },
      { name: 'db', listen: '127.0.0.1:0', mode: 'tcp', backend: 'pg' },
    ],
    backends: [
      { name: 'app', servers: [
        { name: 'app1', address: at(servers[0]), weight: 2 },
        { name: 'app2', address: at(servers[1]) },
        { name: 'spare', address: at(servers[2]), backup: true },
      ] },
      { name: 'pg', servers: [{ name: 'pg1', address: at(echo) }] },
    ],
  }));
  const proxy = await start({ config, workers: 1, logLevel: 'silent' });
  const ports = Object.fromEntries(proxy.listening().map((l) => [l.name, l.address.port]));
  await post(adminPort, '/servers/app/app2/state?state=drain');
  const stopLoad = load(ports.web, ports.db);
  return {
    async close() {
      stopLoad();
      await proxy.close(0);
      for (const s of [...servers, echo]) s.close();
    },
  };
}

function post(port, path) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST' }, (res) => res.resume().on('end', resolve));
    req.on('error', reject).end();
  });
}

/** Requests all the time (some 404 and 500), three slow ones always waiting, and a TCP connection echoing. */
function load(web, db) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const paths = ['/', '/index.html', '/api/users?page=2', '/missing', '/fail', '/static/app.js'];
  let stopped = false;
  const get = (path) => http.get({ host: '127.0.0.1', port: web, path, agent }, (r) => r.resume()).on('error', () => {});
  const tick = setInterval(() => paths.forEach(get), 100);
  const slow = (k) => {
    if (stopped) return;
    http.get({ host: '127.0.0.1', port: web, path: `/slow/report-${k}.csv?from=2024-01-01&to=2024-12-31` }, (r) => r.resume().on('end', () => slow(k))).on('error', () => {});
  };
  for (let k = 1; k <= 3; k++) slow(k);
  const tcp = net.connect(db, '127.0.0.1');
  tcp.on('error', () => {});
  const ping = setInterval(() => tcp.write('ping\n'), 200);
  tcp.resume();
  return () => {
    stopped = true;
    clearInterval(tick);
    clearInterval(ping);
    tcp.destroy();
    agent.destroy();
  };
}

/** After quitting with `key`: the session is gone, and top left the terminal as it found it. */
async function checkQuit(session, after, key, label) {
  tmux('send-keys', '-t', session, key);
  check(await waitFor(() => !alive(session), 5000), `${label} ends top: the pane and its session are gone`);
  const state = existsSync(after) ? readFileSync(after, 'utf8') : '';
  check(/^rc=0$/m.test(state), `${label}: top exited 0`, state.split('\n')[0]);
  check(/alt=0 cursor=1/.test(state), `${label}: terminal restored: main screen, cursor shown`, state.split('\n')[1] ?? '(nothing recorded)');
  check(/(^|\s)icanon(\s|$)/.test(state) && /(^|\s)echo(\s|$)/.test(state), `${label}: terminal restored: not raw (stty: icanon echo)`);
}

async function main() {
  const adminPort = await freePort();
  const admin = `127.0.0.1:${adminPort}`;
  const after1 = join(dir, 'after-q');
  startTop('top1', admin, after1);
  check(await waitFor(() => /cannot reach the admin endpoint/.test(capture('top1'))), 'nothing listening: the error is on screen', capture('top1'));
  await sleep(1500);
  check(alive('top1') && /retrying/.test(capture('top1')), 'nothing listening: top keeps running and retrying');

  const proxy = await startProxy(adminPort);
  try {
    const ready = (t) => /^web\s/m.test(t) && /^app\/app1\s/m.test(t) && /sorted by age/.test(t) && /^\S+:\d+\s.*\/slow\//m.test(t);
    check(await waitFor(() => ready(capture('top1')), 10_000), 'the proxy came up: top recovered by itself', capture('top1'));
    await sleep(2500); // a few seconds of rates and latencies
    const frame = capture('top1');
    const lines = frame.split('\n');
    check(/^ffi-proxy top\s+127\.0\.0\.1:\d+\s+up /.test(lines[0]) && /conn\/s .*req\/s .*active .*5xx\/s .*cpu .*rss /.test(lines[1]), 'header: uptime, rates, active, 5xx/s, CPU, RSS', lines.slice(0, 2).join('\n'));
    check(/^FRONTEND\s+MODE\s+ACTIVE/m.test(frame) && /^web\s+http\s+\d/m.test(frame) && /^db\s+tcp\s+\d/m.test(frame), 'frontend rows: web (http) and db (tcp)', frame);
    check(/^app\/app1\s+up\s+2\s/m.test(frame) && /^app\/app2\s+drain\s/m.test(frame) && /^app\/spare\s+up\*/m.test(frame), 'server rows: app1 up weight 2, app2 drain, spare a backup', frame);
    const joined = capture('top1', true).split('\n').map((l) => l.trimEnd());
    const over = joined.filter((l) => l.length > 80);
    check(over.length === 0, 'no line over 80 columns', over.join('\n'));
    const mode = tmux('display', '-p', '-t', 'top1', '#{alternate_on} #{cursor_flag}').stdout.trim();
    check(mode === '1 0', 'while running: alternate screen on, cursor hidden', mode);
    writeFileSync(join(ROOT, 'docs', 'top.txt'), lines.map((l) => l.trimEnd()).join('\n').trimEnd() + '\n');
    console.log('     (frame saved to docs/top.txt)');

    tmux('send-keys', '-t', 'top1', 'b');
    check(await waitFor(() => /sorted by bytes/.test(capture('top1')), 3000), '`b`: the sort label says bytes', capture('top1'));
    tmux('send-keys', '-t', 'top1', 'h');
    check(await waitFor(() => /^keys/m.test(capture('top1')) && /q, Ctrl-C/.test(capture('top1')), 3000), '`h`: the keys are shown');
    tmux('send-keys', '-t', 'top1', 'x');
    check(await waitFor(() => /^FRONTEND/m.test(capture('top1')), 3000), 'any key: back to the tables');

    tmux('resize-window', '-t', 'top1', '-x', '120', '-y', '30');
    const wide = () => capture('top1', true).split('\n').map((l) => l.trimEnd());
    check(await waitFor(() => wide().some((l) => l.length > 80 && /q quit$/.test(l)), 3000), 'resize to 120 x 30: redrawn at the new width', wide().join('\n'));
    check(wide().every((l) => l.length <= 120), 'at 120 columns: no line over 120');

    await checkQuit('top1', after1, 'q', '`q`');
    const after2 = join(dir, 'after-ctrl-c');
    startTop('top2', admin, after2);
    check(await waitFor(() => /^web\s/m.test(capture('top2'))), 'top started again');
    await checkQuit('top2', after2, 'C-c', 'Ctrl-C');
  } finally {
    await proxy.close();
  }
}

try {
  await main();
} catch (e) {
  check(false, 'the check ran to its end', e.stack);
} finally {
  tmux('kill-server');
  if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  else console.log(`kept ${dir}`);
}
console.log(failed === 0 ? 'PASS all' : `FAIL ${failed} check(s)`);
process.exit(failed === 0 ? 0 : 1);
