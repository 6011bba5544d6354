// `ffi-proxy top`, without a terminal: its frames, rendered from a running proxy's real /stats and
// /connections, fit 80 and 120 columns; `top --once` prints the frontends and servers; an endpoint where
// nothing listens is one clear line and a non-zero exit; a token-protected endpoint says a token is needed.
// (scripts/top-tmux.mjs checks the live screen, its keys and the terminal's restoration under tmux.)
import t, { type Test } from 'tap';
import http from 'node:http';
import net from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';
import { start } from '../../dist/index.js';
import { frame, text } from '../../dist/top/render.js';
import { age, bytes, clean, latency, num } from '../../dist/top/format.js';
import { fixed, flex, table } from '../../dist/top/table.js';
import type { ConnectionList, Stats, View } from '../../dist/top/types.js';
import { deadPort, runCli } from '../helpers/net.js';

function getJson(port: number, path: string, token?: string): Promise<{ status: number; body: any }> {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(b) }));
    }).on('error', reject);
  });
}

/** A proxy on the demo backend with an admin endpoint, a few requests done, and one client held mid-request. */
async function busyProxy(t: Test, adminToken?: string) {
  const p = await start({ listen: '127.0.0.1:0', mode: 'http', admin: '127.0.0.1:0', adminToken, workers: 1, logLevel: 'silent' });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  for (let i = 0; i < 20; i++) {
    await new Promise<void>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: p.port, path: `/page/${i}`, agent }, (r) => r.resume().on('end', resolve)).on('error', reject);
    });
  }
  // Held: half a request head.
  const held = net.connect(p.port, '127.0.0.1');
  held.write('GET /held HTTP/1.1\r\nHost: x\r\n');
  t.teardown(async () => {
    held.destroy();
    agent.destroy();
    await p.close(0);
  });
  const admin = (p.admin as { port: number }).port;
  return { admin, label: `127.0.0.1:${admin}` };
}

t.test('frames of a real /stats and /connections fit 80 and 120 columns', async (t) => {
  const { admin, label } = await busyProxy(t);
  let stats: Stats | null = null;
  // The endpoint's rates need two of its one-second samples.
  for (let k = 0; k < 30 && stats?.rates == null; k++) {
    stats = (await getJson(admin, '/stats')).body;
    if (stats?.rates == null) await new Promise((r) => setTimeout(r, 200));
  }
  t.ok(stats?.rates, 'the endpoint has rates');
  const connections: ConnectionList = (await getJson(admin, '/connections?limit=50&sort=age')).body;
  t.ok(connections.connections.length >= 2, 'connections are listed');
  const view: View = { target: label, stats, connections, cpuPercent: 4.2, error: null, sort: 'age', help: false };
  for (const [w, h] of [[80, 24], [120, 40], [80, 12], [50, 20]]) {
    const lines = frame(view, w, h);
    t.ok(lines.length <= h, `${w}x${h}: at most ${h} lines (${lines.length})`);
    const over = lines.filter((l) => l.text.length > w);
    t.same(over, [], `${w}x${h}: no line over ${w} columns`);
    const all = text(lines);
    t.match(all, /^ffi-proxy top  127\.0\.0\.1:\d+  up /, `${w}x${h}: the header`);
    t.match(all, /req\/s \d/, `${w}x${h}: the request rate`);
    t.match(all, /^default\s+/m, `${w}x${h}: the frontend row`);
    t.match(all, /^demo\/demo\s+up/m, `${w}x${h}: the server row`);
  }
  const wide = text(frame(view, 120, 40));
  t.match(wide, /sorted by age/, 'the sort is named');
  t.match(wide, /^FRONTEND MODE ACTIVE CONN\/S\s+REQ\/S\s+2XX\s+4XX\s+5XX\s+P50\s+P99$/m, 'every frontend column at 120');
  t.match(wide, /^CLIENT\s+FRONTEND\s+SERVER\s+STATE\s+AGE\s+IDLE\s+IN\s+OUT\s+REQUEST$/m, 'every connection column at 120');
  t.match(wide, /^127\.0\.0\.1:\d+ +default +- +H_HEAD/m, 'a connection row');
  t.notMatch(text(frame(view, 80, 24)), /FRONTEND +SERVER/, 'at 80 the connections drop a column rather than overflow');
  const help = text(frame({ ...view, help: true }, 80, 24));
  t.match(help, /q, Ctrl-C +quit/, 'the help names the keys');
});

t.test('a frame without an answer: the error, wrapped to the width; text from the proxy is made safe', async (t) => {
  const view: View = { target: '127.0.0.1:9', stats: null, connections: null, cpuPercent: null, error: 'cannot reach the admin endpoint at 127.0.0.1:9: nothing listens there (ECONNREFUSED): is the proxy running, with its admin endpoint there? (retrying every 1s)', sort: 'age', help: false };
  const lines = frame(view, 40, 10);
  t.ok(lines.every((l) => l.text.length <= 40));
  t.ok(lines.some((l) => l.style === 'error' && /cannot reach/.test(l.text)));
  t.equal(clean('GET /\x1b[2J\x9b31m\x07 x'), 'GET /?[2J?31m? x', 'ESC, CSI and BEL cannot reach the terminal');
});

t.test('numbers stay short; narrow tables drop their lowest-ranked columns first', async (t) => {
  t.same([num(0), num(2.5), num(31), num(12345), num(123456), num(4_560_000)], ['0', '2.5', '31', '12345', '123k', '4.56M']);
  t.same([bytes(512), bytes(4096), bytes(1.2 * 1024 * 1024)], ['512', '4.0K', '1.2M']);
  t.same([latency(null), latency(0.000085), latency(0.0085), latency(0.12), latency(1.25)], ['-', '85us', '8.50ms', '120ms', '1.25s']);
  t.same([age(0.4), age(42), age(245), age(11040), age(183600)], ['0.4s', '42s', '4m05s', '3h04m', '2d03h']);
  const cols = [
    flex<string>('NAME', 4, 20, 10, (r) => r),
    fixed<string>('LOW', 5, 1, () => 'low'),
    fixed<string>('HIGH', 5, 9, () => 'high'),
  ];
  t.same(table(cols, ['a-long-name'], 40).head.split(/\s+/), ['NAME', 'LOW', 'HIGH']);
  t.same(table(cols, ['a-long-name'], 12).head.split(/\s+/), ['NAME', 'HIGH'], 'LOW goes first');
  t.ok(table(cols, ['a-long-name'], 3).lines.every((l) => l.length <= 3), 'even narrower: cut, never wider');
});

t.test('top --once prints the frontends and servers; a dead port and a missing token are one clear line', async (t) => {
  const { label } = await busyProxy(t);
  const ok = await runCli(['top', '--once', '--admin', label]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /^default\s+http\s/m, 'the frontend');
  t.match(ok.stdout, /^demo\/demo\s+up\s/m, 'the server');

  const dead = await runCli(['top', '--once', '--admin', `127.0.0.1:${await deadPort()}`]);
  t.equal(dead.code, 1);
  t.equal(dead.stdout, '');
  t.match(dead.stderr, /^ffi-proxy: top: cannot reach the admin endpoint at 127\.0\.0\.1:\d+: nothing listens there \(ECONNREFUSED\)[^\n]*\n$/);

  const bad = await runCli(['top', '--once', '--admin', 'nowhere']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^ffi-proxy: top: --admin nowhere: give the admin endpoint's HOST:PORT[^\n]*\n$/);
});

t.test('a token-protected endpoint: without the token top says one is needed; with it, it prints', async (t) => {
  const { label } = await busyProxy(t, 'sesame');
  const none = await runCli(['top', '--once', '--admin', label]);
  t.equal(none.code, 1);
  t.match(none.stderr, /^ffi-proxy: top: the admin endpoint at 127\.0\.0\.1:\d+ needs a token: give --admin-token TOKEN\n$/);
  const wrong = await runCli(['top', '--once', '--admin', label, '--admin-token', 'open']);
  t.match(wrong.stderr, /refused the token/);
  const right = await runCli(['top', '--once', '--admin', label, '--admin-token', 'sesame']);
  t.equal(right.code, 0, right.stderr);
  t.match(right.stdout, /^demo\/demo\s+up/m);
});

t.test('src/top/ is a client of the admin endpoint: it imports nothing of src/ outside its folder', async (t) => {
  const dir = new URL('../../src/top/', import.meta.url);
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
    const src = readFileSync(new URL(f, dir), 'utf8');
    const specs = [...src.matchAll(/(?:from|import\()\s*['"]([^'"]+)['"]/g)].map((m) => m[1]);
    t.same(specs.filter((s) => s.startsWith('.') && !s.startsWith('./')), [], `${f} imports only ./ and node:`);
  }
});
