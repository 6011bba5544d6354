// Checks the admin endpoint's status page in a real headless browser and takes its screenshot.
//
//   npm run build && node scripts/status-screenshot.mjs [--out docs/status-page.png] [--seconds 10]
//
// It builds nothing (dist/ must be built). It starts the proxy from the library (HTTP mode, 2 workers, the
// built-in demo backend, the admin endpoint on a free loopback port with a bearer token, so the page's
// ?token= pass-through is exercised too), then reloads it into a small scene:
//
//   web    (http) -> demo (the built-in demo backend); /api/ -> api
//   legacy (http) -> legacy: old-1 on a closed port (502, then 503 once its health check takes it down),
//                    old-2 put in maint
//   db     (tcp)  -> api
//   api: api-1, api-2 (weight 2), api-3 (drained), api-4 (closed port: down) on this script's own HTTP app,
//        which answers /api/... in 2-40 ms (some 404 and 500), and holds /api/slow/... until the end
//
// It drives a steady mix of requests with Node's http client, holds a few connections open (slow requests,
// a TCP tunnel, an idle keep-alive client), and after --seconds (default 10), with the load still going, runs
// Debian's chromium (apt-get install -y chromium) headless twice on the page, with a virtual time budget so
// the page's one-second rounds run: first --dump-dom, checked for live data (PASS/FAIL lines), then
// --screenshot. Exit: 0 when every check passed, 1 when one failed, 2 when chromium or dist/ is missing.
//
// --serve runs no browser: it prints the page's address and keeps the scene and its load going until
// Ctrl-C, to look at the page (or work on it: page.ts reads the files once, so restart after an edit).
// --admin HOST:PORT and --token TOKEN fix the admin endpoint's address and token (default: a free port and
// a random token), so a page left open finds the endpoint again after a restart.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
// Virtual time: the page's one-second rounds run back to back, each as fast as its fetches answer. 30 s of
// it is a few dozen rounds, about a second of real time: enough for the CPU tile, which needs two /stats at
// least half a second apart by the proxy's clock, and for the charts to append new samples.
const VIRTUAL_MS = 30000;
const WINDOW = '1280,1400';
// The pause after each request of each of the load's 7 loops: a steady few hundred requests per second,
// enough to fill the charts without the client starving the proxy of the machine's CPU.
const LOAD_GAP_MS = 5;

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The browser binary, or exit 2 saying how to install it. */
function findChromium() {
  const found = [process.env.CHROMIUM, ...CHROMIUM].find((p) => p && existsSync(p));
  if (found) return found;
  console.error('status-screenshot: no chromium found (looked for $CHROMIUM, ' + CHROMIUM.join(', ') + ').');
  console.error('Install it with: sudo apt-get install -y chromium    (Debian/Ubuntu), or set CHROMIUM=/path/to/chrome');
  process.exit(2);
}

async function loadLibrary() {
  const entry = join(ROOT, 'dist', 'index.js');
  if (!existsSync(entry)) {
    console.error('status-screenshot: dist/index.js is missing: run `npm run build` first');
    process.exit(2);
  }
  return import(entry);
}

/** The scene's own HTTP app: quick answers with some 404/500, downloads, uploads, and slow requests held. */
async function startApp() {
  const held = new Set();
  const server = http.createServer((req, res) => {
    req.resume();
    if (req.url.startsWith('/api/slow/')) {
      held.add(res);
      return;
    }
    const r = Math.random();
    const status = req.url.includes('missing') ? 404 : r < 0.03 ? 500 : 200;
    const size = req.url.startsWith('/api/download') ? 200_000 : 40 + Math.floor(r * 400);
    setTimeout(() => {
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': size });
      res.end(Buffer.alloc(size, 0x20));
    }, 2 + r * 38);
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    address: `127.0.0.1:${server.address().port}`,
    close() {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      server.close();
    },
  };
}

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort() {
  const s = net.createServer();
  await new Promise((ok) => s.listen(0, '127.0.0.1', ok));
  const { port } = s.address();
  await new Promise((ok) => s.close(ok));
  return port;
}

/** The config document of the scene (see the header). */
function sceneConfig(demo, app, closed) {
  const dead = `127.0.0.1:${closed}`;
  const health = { tcp: true, interval: '1s', fall: 2, rise: 2 };
  return {
    'log-level': 'error',
    frontends: [
      { name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'demo', routes: [{ path: '/api/', backend: 'api' }] },
      { name: 'legacy', listen: '127.0.0.1:0', mode: 'http', backend: 'legacy' },
      { name: 'db', listen: '127.0.0.1:0', mode: 'tcp', backend: 'api' },
    ],
    backends: [
      { name: 'demo', servers: [{ name: 'demo', address: demo }] },
      {
        name: 'api',
        balance: 'least-conn',
        health,
        servers: [
          { name: 'api-1', address: app },
          { name: 'api-2', address: app, weight: 2 },
          { name: 'api-3', address: app },
          { name: 'api-4', address: dead },
        ],
      },
      { name: 'legacy', retries: 1, health, servers: [{ name: 'old-1', address: dead }, { name: 'old-2', address: app }] },
    ],
  };
}

/** Starts the proxy and the scene. Returns what the load and the browser need, and a stop(). */
async function startScene() {
  const { start } = await loadLibrary();
  const token = arg('token', randomBytes(12).toString('hex'));
  const app = await startApp();
  const closed = await closedPort();
  const proxy = await start({ listen: '127.0.0.1:0', mode: 'http', workers: 2, admin: arg('admin', '127.0.0.1:0'), adminToken: token, logLevel: 'error' });
  const demo = `${proxy.backend.host}:${proxy.backend.port}`;
  await proxy.reload(sceneConfig(demo, app.address, closed));
  const ports = Object.fromEntries(proxy.listening().map((l) => [l.name, l.address.port]));
  const adminPort = proxy.admin.port;
  await adminPost(adminPort, token, '/servers/api/api-3/state', { state: 'drain' });
  await adminPost(adminPort, token, '/servers/legacy/old-2/state', { state: 'maint' });
  return {
    ports,
    token,
    url: `http://127.0.0.1:${adminPort}/?token=${token}`,
    async stop() {
      app.close();
      await proxy.close(200);
    },
  };
}

function adminPost(port, token, path, body) {
  return new Promise((ok, fail) => {
    const text = JSON.stringify(body);
    const req = http.request(
      { host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } },
      (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? ok() : fail(new Error(`POST ${path}: ${res.statusCode}`))));
      },
    );
    req.on('error', fail);
    req.end(text);
  });
}

/** One request; resolves with the status (or the error's code), never rejects. */
function request(agent, port, path, method = 'GET', body = null) {
  return new Promise((ok) => {
    const headers = body ? { 'content-type': 'application/octet-stream', 'content-length': body.length } : {};
    const req = http.request({ host: '127.0.0.1', port, path, method, agent, headers, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => ok(res.statusCode));
      res.on('error', () => ok('ERR'));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => ok(e.code ?? 'ERR'));
    req.end(body ?? undefined);
  });
}

/**
 * The mix, as loops each sending one request after another until stop(): demo pages, API calls (a few
 * 404s), uploads and downloads, and the failing legacy frontend. `gapMs` paces every loop (0: flat out).
 */
function driveLoad(ports, gapMs) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const counts = {};
  let running = true;
  const upload = randomBytes(24_000);
  let n = 0;
  const kinds = [
    () => request(agent, ports.web, `/page/${n % 50}`),
    () => request(agent, ports.web, `/page/${n % 50}`),
    () => request(agent, ports.web, `/api/items?id=${n}`),
    () => request(agent, ports.web, n % 7 === 0 ? '/api/missing' : `/api/users/${n % 100}`),
    () => request(agent, ports.web, '/api/upload', 'POST', upload),
    () => request(agent, ports.web, '/api/download/report.csv'),
    () => request(null, ports.legacy, `/old/${n % 10}`),
  ];
  const loop = async (kind, pause) => {
    while (running) {
      n++;
      const status = await kind();
      counts[status] = (counts[status] ?? 0) + 1;
      await sleep(pause);
    }
  };
  const loops = kinds.map((k, i) => loop(k, gapMs + (i === kinds.length - 1 ? 40 : 0)));
  return {
    counts,
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}

/** Connections kept open for the connection list: slow requests, a TCP tunnel, an idle keep-alive client. */
async function holdConnections(ports) {
  const sockets = [];
  // The last one's target is markup: the page must show it as text.
  for (const target of ['/api/slow/report?id=17', '/api/slow/report?id=42', '/api/slow/<b>markup</b>']) {
    const s = net.connect(ports.web, '127.0.0.1');
    s.write(`GET ${target} HTTP/1.1\r\nHost: web.example\r\nUser-Agent: status-screenshot\r\n\r\n`);
    sockets.push(s);
    await sleep(400);
  }
  const tunnel = net.connect(ports.db, '127.0.0.1');
  tunnel.write('GET /api/slow/export HTTP/1.1\r\nHost: db\r\n\r\n');
  sockets.push(tunnel);
  const idle = net.connect(ports.web, '127.0.0.1');
  idle.write('GET /page/idle HTTP/1.1\r\nHost: web.example\r\n\r\n');
  idle.resume();
  sockets.push(idle);
  for (const s of sockets) s.on('error', () => {});
  return { close: () => sockets.forEach((s) => s.destroy()) };
}

/** Runs chromium headless on `url` with `extra` flags; resolves with its stdout (and stderr for errors). */
function runChromium(bin, url, extra) {
  const profile = mkdtempSync(join(tmpdir(), 'status-page-chromium-'));
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--hide-scrollbars',
    '--no-first-run',
    '--disable-dev-shm-usage',
    `--user-data-dir=${profile}`,
    `--window-size=${WINDOW}`,
    `--virtual-time-budget=${VIRTUAL_MS}`,
    ...extra,
    url,
  ];
  return new Promise((ok, fail) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      rmSync(profile, { recursive: true, force: true });
      if (code === 0) ok({ out, err });
      else fail(new Error(`chromium exited with ${code}:\n${err.slice(-2000)}`));
    });
  });
}

/** The part of `html` from the element with `id` to the next `<section` (or the end). */
function part(html, id) {
  const at = html.indexOf(`id="${id}"`);
  if (at < 0) return '';
  const end = html.indexOf('<section', at);
  return html.slice(at, end < 0 ? undefined : end);
}

/** The checks on the dumped DOM: [name, passed, detail]. */
function checkDom(html) {
  const fronts = part(html, 'frontends');
  const backs = part(html, 'backends');
  const conns = part(html, 'connections');
  const charts = part(html, 'charts');
  const kpis = part(html, 'kpis');
  const rows = (conns.match(/<tr title="connection /g) ?? []).length;
  const canvases = (charts.match(/<canvas/g) ?? []).length;
  const banner = /<div id="banner"[^>]*\shidden/.test(html);
  return [
    ['the page is live (no failure banner)', banner && /class="live ok"/.test(html), banner ? '' : 'the banner is showing'],
    ['totals filled (requests/s is a number)', /<div class="kpi-value">[0-9][^<]*<\/div><div class="kpi-label">requests\/s/.test(kpis), ''],
    ...['web', 'legacy', 'db'].map((n) => [`frontend "${n}" in the frontends table`, fronts.includes(`<b>${n}</b>`), '']),
    ['legacy shows 5xx responses', /class="num bad"/.test(fronts), ''],
    ['a termination code is listed', /backend_refused|no_server|backend_unreachable/.test(fronts), ''],
    ...['demo', 'api', 'legacy'].map((n) => [`backend "${n}" in the backends table`, backs.includes(`<b>${n}</b>`), '']),
    ...['up', 'down', 'drain', 'maint'].map((s) => [`a server shown ${s}`, backs.includes(`class="state st-${s}"`), '']),
    ['four charts drew a canvas', canvases >= 4, `${canvases} canvases`],
    ['charts have legends with series', (charts.match(/class="u-series/g) ?? []).length >= 8, ''],
    ['the connection list has rows', rows >= 4, `${rows} rows`],
    ['a slow request line is listed', conns.includes('GET /api/slow/report?id='), ''],
    ['a request line with markup is shown as text', conns.includes('/api/slow/&lt;b&gt;markup&lt;/b&gt;') && !conns.includes('<b>markup</b>'), ''],
    ['a TCP tunnel is listed', conns.includes('tunnel') || conns.includes('PROXYING'), ''],
  ];
}

/** --serve: the scene and a light load until SIGINT or SIGTERM. */
async function serve() {
  const scene = await startScene();
  const load = driveLoad(scene.ports, LOAD_GAP_MS);
  const held = await holdConnections(scene.ports);
  console.log(`status page: ${scene.url}\n(Ctrl-C to stop)`);
  await new Promise((ok) => ['SIGINT', 'SIGTERM'].forEach((sig) => process.once(sig, ok)));
  await load.stop();
  held.close();
  await scene.stop();
  process.exit(0);
}

async function main() {
  if (process.argv.includes('--serve')) return serve();
  const bin = findChromium();
  const out = resolve(ROOT, arg('out', 'docs/status-page.png'));
  const seconds = Number(arg('seconds', '10'));
  const scene = await startScene();
  let failed = 0;
  let load = null;
  let held = null;
  try {
    load = driveLoad(scene.ports, LOAD_GAP_MS);
    held = await holdConnections(scene.ports);
    console.log(`proxy: web :${scene.ports.web}, legacy :${scene.ports.legacy}, db :${scene.ports.db}; status page ${scene.url.replace(/token=.*/, 'token=…')}`);
    console.log(`driving load for ${seconds} s, then chromium (the load goes on while it runs)...`);
    await sleep(seconds * 1000);
    console.log('responses so far:', JSON.stringify(load.counts));
    const dom = await runChromium(bin, scene.url, ['--dump-dom']);
    for (const [name, ok, detail] of checkDom(dom.out)) {
      console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? ` (${detail})` : ''}`);
      if (!ok) failed++;
    }
    rmSync(out, { force: true });
    const t0 = Date.now();
    await runChromium(bin, scene.url, [`--screenshot=${out}`]);
    console.log(`chromium took ${((Date.now() - t0) / 1000).toFixed(1)} s for the screenshot`);
    console.log(existsSync(out) ? `screenshot: ${out}` : 'FAIL no screenshot written');
    if (!existsSync(out)) failed++;
  } finally {
    await load?.stop();
    held?.close();
    await scene.stop();
  }
  console.log(failed === 0 ? 'all checks passed' : `${failed} check(s) failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(`status-screenshot: ${e.stack ?? e}`);
  process.exit(1);
});
