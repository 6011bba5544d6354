// The access log: one line per HTTP request and per TCP connection, in each format, with the timers, the
// bytes and the termination code of each failure; and a ring that overflows under a flood while the proxy
// keeps serving (the drops counted, in a metric and a line).
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, createReadStream } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import http from 'node:http';
import { once } from 'node:events';
import { start } from '../../dist/index.js';
import { connect, deadPort, echoServer, readBytes, readResponse, serve, startCli, waitFor } from '../helpers/net.js';
import { Client, httpNamed, portOf, proxyOf } from '../helpers/servers.js';
import { admin, metric, samples } from '../helpers/admin.js';

const dir = mkdtempSync(join(tmpdir(), 'ffip-alog-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** The file's lines, once it has `n` (the main thread writes them every 100 ms). */
async function lines(file: string, n: number): Promise<string[]> {
  let got: string[] = [];
  await waitFor(() => {
    try {
      got = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
    } catch {
      got = [];
    }
    return got.length >= n;
  }, `${n} lines in ${file}`);
  return got;
}

t.test('json: a line per request with the fields, and a line per TCP connection', async (t) => {
  const app = await httpNamed(t, 'a');
  const echo = await echoServer();
  t.teardown(() => echo.close());
  const httpLog = join(dir, 'http.log');
  const tcpLog = join(dir, 'tcp.log');
  const proxy = await proxyOf(t, {
    admin: '127.0.0.1:0',
    frontends: [
      { name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'app', 'access-log': httpLog, 'access-log-format': 'json' },
      { name: 'raw', listen: '127.0.0.1:0', mode: 'tcp', backend: 'echo', 'access-log': tcpLog, 'access-log-format': 'json' },
      { name: 'quiet', listen: '127.0.0.1:0', mode: 'http', backend: 'app' },
    ],
    backends: [
      { name: 'app', servers: [{ name: 'a1', address: app.addr }] },
      { name: 'echo', servers: [{ name: 'e1', address: `127.0.0.1:${echo.port}` }] },
    ],
  });
  const client = new Client(t, portOf(proxy, 'web'));
  for (let i = 0; i < 12; i++) t.equal((await client.get(`/item/${i}?q=${i}`)).status, 200);
  t.equal((await new Client(t, portOf(proxy, 'quiet')).get()).status, 200, 'a frontend without a log');
  const c = await connect(portOf(proxy, 'raw'));
  c.write('hello');
  await readBytes(c, 5);
  c.end();
  await once(c, 'close');

  const got = (await lines(httpLog, 12)).map((l) => JSON.parse(l));
  t.equal(got.length, 12, 'one line per request: 12 sent, 12 logged');
  const r = got[3];
  t.equal(r.mode, 'http');
  t.equal(r.method, 'GET');
  t.equal(r.path, '/item/3?q=3', 'the path with its query');
  t.equal(r.version, 'HTTP/1.1');
  t.equal(r.status, 200);
  t.equal(r.frontend, 'web');
  t.equal(r.backend, 'app');
  t.equal(r.server, 'a1');
  t.equal(r.client, '127.0.0.1');
  t.ok(r.client_port > 0, 'the client port');
  t.ok(r.bytes_in > 20 && r.bytes_out > 20, 'bytes each way');
  t.equal(r.termination, 'done');
  t.equal(r.termination_state, '--');
  t.equal(r.retries, 0);
  t.ok(r.tr_ms >= 0 && r.ta_ms >= r.tr_ms, 'first byte, then the end');
  t.equal(got[0].tc_ms >= 0, true, 'the first request connected');
  t.equal(got[5].tc_ms, 0, 'a later one went on a pooled connection');
  t.ok(!Number.isNaN(Date.parse(r.time)), 'an ISO time');
  t.equal(new Set(got.map((x) => x.client_port)).size, 1, 'all on one connection');

  const tcp = (await lines(tcpLog, 1)).map((l) => JSON.parse(l));
  t.equal(tcp.length, 1, 'one line for the TCP connection');
  t.match(tcp[0], { mode: 'tcp', frontend: 'raw', backend: 'echo', server: 'e1', bytes_in: 5, bytes_out: 5, termination: 'done' });
  t.ok(tcp[0].tt_ms > 0, 'its whole time');

  const s = samples((await admin(proxy, '/metrics')).body);
  t.equal(metric(s, 'ffi_proxy_access_log_lines_total'), 13, 'lines written: 12 + 1');
  t.equal(metric(s, 'ffi_proxy_access_log_dropped_total'), 0, 'none dropped');
  t.equal(proxy.accessLogStats().written, 13);
});

t.test('haproxy and combined formats, and the termination codes of failures', async (t) => {
  const dead = await deadPort();
  const silent = await serve((s) => s.resume());
  t.teardown(() => silent.close());
  const app = await httpNamed(t, 'a');
  const hlog = join(dir, 'haproxy.log');
  const clog = join(dir, 'combined.log');
  const proxy = await proxyOf(t, {
    retries: 0,
    frontends: [
      { name: 'h', listen: '127.0.0.1:0', mode: 'http', backend: 'app', 'access-log': hlog, 'access-log-format': 'haproxy' },
      { name: 'hdead', listen: '127.0.0.1:0', mode: 'http', backend: 'dead', 'access-log': hlog, 'access-log-format': 'haproxy' },
      { name: 'hslow', listen: '127.0.0.1:0', mode: 'http', backend: 'silent', 'backend-timeout': '300ms', 'access-log': hlog, 'access-log-format': 'haproxy' },
      { name: 'tdead', listen: '127.0.0.1:0', mode: 'tcp', backend: 'dead', 'access-log': hlog, 'access-log-format': 'haproxy' },
      { name: 'c', listen: '127.0.0.1:0', mode: 'http', backend: 'app', 'access-log': clog, 'access-log-format': 'combined' },
    ],
    backends: [
      { name: 'app', servers: [{ name: 'a1', address: app.addr }] },
      { name: 'dead', servers: [{ name: 'd1', address: `127.0.0.1:${dead}` }] },
      { name: 'silent', servers: [{ name: 's1', address: `127.0.0.1:${silent.port}` }] },
    ],
  });
  const ask = async (fe: string, request = 'GET /p HTTP/1.1\r\nHost: t\r\n\r\n') => {
    const s = await connect(portOf(proxy, fe));
    s.on('error', () => {});
    const reply = readResponse(s);
    s.write(request);
    const status = Number((await reply).raw.slice(9, 12));
    s.destroy();
    return status;
  };
  t.equal(await ask('h'), 200);
  t.equal(await ask('hdead'), 502);
  t.equal(await ask('hslow'), 504);
  t.equal(await ask('h', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'), 400);
  const tc = net.connect(portOf(proxy, 'tdead'), '127.0.0.1');
  tc.on('error', () => {});
  await once(tc, 'close');
  t.equal(await ask('c'), 200);

  const h = await lines(hlog, 5);
  const find = (re: RegExp) => h.find((l) => re.test(l)) ?? '';
  // client:port [date] frontend backend/server TR/Tw/Tc/Tr/Ta status bytes - - state conns queues "request"
  t.match(find(/ h app\//), /^127\.0\.0\.1:\d+ \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d\.\d{3}\] h app\/a1 \d+\/0\/\d+\/\d+\/\d+ 200 \d+ - - ---- -\/-\/-\/-\/0 0\/0 "GET \/p HTTP\/1\.1"$/, 'an httplog line');
  t.match(find(/ hdead /), / hdead dead\/d1 \d+\/0\/-1\/-1\/\d+ 502 \d+ - - SC-- /, 'refused: SC, no connect time, 502');
  t.match(find(/ hslow /), / hslow silent\/s1 \d+\/0\/\d+\/-1\/\d+ 504 \d+ - - sH-- /, 'timed out waiting for the head: sH, 504');
  t.match(find(/"<BADREQ>"/), / h app\/<NOSRV> .* 400 \d+ - - PR-- .*"<BADREQ>"$/, 'malformed: PR, 400, <BADREQ>');
  t.match(find(/ tdead /), /^127\.0\.0\.1:\d+ \[[^\]]+\] tdead dead\/d1 0\/-1\/\d+ 0 SC -\/-\/-\/-\/0 0\/0$/, 'a tcplog line: refused, SC');

  const c = await lines(clog, 1);
  t.match(c[0], /^127\.0\.0\.1 - - \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \/p HTTP\/1\.1" 200 \d+ "-" "-"$/, 'a combined line');
});

t.test('a request line longer than the record keeps is cut and says so; control bytes are escaped', async (t) => {
  const app = await httpNamed(t, 'a');
  const log = join(dir, 'long.log');
  const hlog = join(dir, 'long-h.log');
  const proxy = await proxyOf(t, {
    frontends: [
      { name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'app', 'access-log': log, 'access-log-format': 'json' },
      { name: 'h', listen: '127.0.0.1:0', mode: 'http', backend: 'app', 'access-log': hlog, 'access-log-format': 'haproxy' },
    ],
    backends: [{ name: 'app', servers: [app.addr] }],
  });
  const long = '/' + 'x'.repeat(400);
  t.equal((await new Client(t, portOf(proxy, 'web')).get(long)).status, 200);
  t.equal((await new Client(t, portOf(proxy, 'h')).get('/a"b')).status, 200);
  const [j] = (await lines(log, 1)).map((l) => JSON.parse(l));
  t.equal(j.line_truncated, true, 'marked as cut');
  t.ok(long.startsWith(j.path) && j.path.length > 200, 'the path as far as it was kept');
  const [h] = await lines(hlog, 1);
  t.match(h, /"GET \/a\\x22b HTTP\/1\.1"$/, 'a quote inside the line is escaped');
});

t.test('a flood overflows the ring: the proxy keeps serving, the drops are counted (metric and line)', async (t) => {
  // The log is a FIFO nobody reads yet: the main thread's writes wait in memory until they pass its limit,
  // then the workers' rings fill and drop. Every request must still be answered.
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const app = http.createServer((req, res) => res.end('ok'));
  app.keepAliveTimeout = 60_000;
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  t.teardown(() => {
    app.closeAllConnections();
    app.close();
  });
  const cli = await startCli(['--mode', 'http', '--workers', '1', '--admin', '127.0.0.1:0', '--backend', `127.0.0.1:${(app.address() as net.AddressInfo).port}`, '--access-log', fifo, '--access-log-format', 'json']);
  t.teardown(() => cli.child.kill('SIGKILL'));
  await waitFor(() => /admin: http:\/\/127\.0\.0\.1:(\d+)/.test(cli.stdout()), 'the admin line');
  const adminPort = Number(/admin: http:\/\/127\.0\.0\.1:(\d+)/.exec(cli.stdout())![1]);

  const CONNS = 16;
  const PER = 1000;
  let ok = 0;
  await Promise.all(
    Array.from({ length: CONNS }, async () => {
      const s = await connect(cli.port);
      for (let i = 0; i < PER; i++) {
        const reply = readResponse(s);
        s.write('GET /flood HTTP/1.1\r\nHost: t\r\n\r\n');
        if ((await reply).raw.startsWith('HTTP/1.1 200')) ok++;
      }
      s.destroy();
    }),
  );
  t.equal(ok, CONNS * PER, `every one of ${CONNS * PER} requests answered 200 while the log could not keep up`);
  const scrape = async () => samples(await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text());
  await waitFor(() => /access log: \d+ record\(s\) dropped/.test(cli.stderr()), 'the drop warning', 5000);

  // Now read the FIFO: what was kept comes out, and kept + dropped == sent.
  let text = '';
  const reader = createReadStream(fifo, { encoding: 'utf8' });
  reader.on('data', (d) => (text += d));
  const count = () => text.split('\n').filter((l) => l !== '').length;
  let written = 0;
  let dropped = 0;
  const settled = async () => {
    const s = await scrape();
    written = metric(s, 'ffi_proxy_access_log_lines_total')!;
    dropped = metric(s, 'ffi_proxy_access_log_dropped_total')!;
    return written + dropped === CONNS * PER && count() === written;
  };
  const deadline = Date.now() + 20_000;
  while (!(await settled()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  reader.destroy();
  t.ok(dropped > 0, `records dropped (${dropped})`);
  t.ok(written > 0, `records written (${written})`);
  t.equal(written + dropped, CONNS * PER, 'written + dropped = requests');
  t.equal(count(), written, 'every line written came out of the FIFO');
});

t.test('an access log that cannot be opened is an error at start and at reload, naming the file', async (t) => {
  const bad = join(dir, 'no-such-dir', 'x.log');
  await t.rejects(
    start({ listen: '127.0.0.1:0', workers: 1, logLevel: 'silent', accessLog: bad }),
    { code: 'FFIP_ERR_BAD_OPTION', message: `access log ${bad}: cannot open it for appending (ENOENT)` },
    'at start',
  );
  const app = await httpNamed(t, 'a');
  const ok = join(dir, 'ok.log');
  const config = (log: string) => ({
    frontends: [{ name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'app', 'access-log': log }],
    backends: [{ name: 'app', servers: [app.addr] }],
  });
  const proxy = await proxyOf(t, config(ok));
  await t.rejects(proxy.reload({ ...config(bad), frontends: [{ ...config(bad).frontends[0], listen: `127.0.0.1:${portOf(proxy, 'web')}` }] }), { message: /cannot open it/ }, 'at reload');
  t.equal((await new Client(t, portOf(proxy, 'web')).get()).status, 200, 'still serving, logging where it did');
  t.equal((await lines(ok, 1)).length, 1);
});
