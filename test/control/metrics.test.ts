// What the admin endpoint's /metrics and /stats count, against what the tests sent through real sockets:
// requests, responses by class, connections, bytes, the histograms' counts, and a termination code for each
// failure the suite can cause (backend refused, reset, timeout, client gone, malformed).
import t from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { connect, deadPort, echoServer, readBytes, readResponse, serve, waitFor } from '../helpers/net.js';
import { Client, httpNamed, portOf, proxyOf } from '../helpers/servers.js';
import { admin, metric, samples, scrape } from '../helpers/admin.js';

const HIST = ['0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '30', '+Inf'];

/** The histogram `name` with `labels`: its cumulative buckets, count and sum. */
function histogram(s: Map<string, number>, name: string, labels: string) {
  const buckets = HIST.map((le) => s.get(`${name}_bucket{${labels},le="${le}"}`) ?? NaN);
  return { buckets, count: s.get(`${name}_count{${labels}}`) ?? NaN, sum: s.get(`${name}_sum{${labels}}`) ?? NaN };
}

t.test('counters and histograms match the requests sent', async (t) => {
  const app = await httpNamed(t, 'a');
  const proxy = await proxyOf(t, {
    admin: '127.0.0.1:0',
    frontends: [{ name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'app' }],
    backends: [{ name: 'app', servers: [{ name: 'a1', address: app.addr }] }],
  });
  const port = portOf(proxy, 'web');
  // 20 requests on one kept-alive connection, then 5 connections of one request each.
  const client = new Client(t, port);
  for (let i = 0; i < 20; i++) t.equal((await client.get('/x')).status, 200);
  for (let i = 0; i < 5; i++) {
    const s = await connect(port);
    const reply = readResponse(s);
    s.write('GET /y HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    t.match((await reply).raw, /^HTTP\/1\.1 200/);
    s.destroy();
  }
  await waitFor(() => proxy.stats().active <= 1, 'the closed connections counted');
  const s = await scrape(proxy);
  const fe = { frontend: 'web' };
  const sv = { backend: 'app', server: 'a1' };
  t.equal(metric(s, 'ffi_proxy_frontend_requests_total', fe), 25, 'requests');
  t.equal(metric(s, 'ffi_proxy_frontend_connections_total', fe), 6, 'client connections');
  t.equal(metric(s, 'ffi_proxy_frontend_responses_total', { ...fe, code: '2xx' }), 25, '2xx responses');
  t.equal(metric(s, 'ffi_proxy_frontend_responses_total', { ...fe, code: '5xx' }), 0, 'no 5xx');
  t.equal(metric(s, 'ffi_proxy_server_requests_total', sv), 25, 'requests to the server');
  t.equal(metric(s, 'ffi_proxy_server_responses_total', { ...sv, code: '2xx' }), 25, "the server's 2xx");
  t.equal(metric(s, 'ffi_proxy_backend_requests_total', { backend: 'app' }), 25, "the backend's requests");
  t.equal(metric(s, 'ffi_proxy_server_up', sv), 1, 'the server is up');
  t.equal(metric(s, 'ffi_proxy_server_state', { ...sv, state: 'up' }), 1, 'its state is up');
  t.equal(metric(s, 'ffi_proxy_frontend_terminations_total', { ...fe, code: 'done' }), 5, 'five connections ended normally');
  t.ok((metric(s, 'ffi_proxy_frontend_bytes_in_total', fe) ?? 0) > 25 * 20, 'bytes in counted');
  t.ok((metric(s, 'ffi_proxy_frontend_bytes_out_total', fe) ?? 0) > 25 * 20, 'bytes out counted');
  t.equal(metric(s, 'ffi_proxy_frontend_bytes_out_total', fe), metric(s, 'ffi_proxy_server_bytes_out_total', sv), 'bytes out: frontend == server');

  const duration = histogram(s, 'ffi_proxy_frontend_request_duration_seconds', 'frontend="web"');
  t.equal(duration.count, 25, 'the request-duration histogram counted each request');
  t.equal(duration.buckets.at(-1), 25, '+Inf == count');
  t.ok(duration.buckets.every((n, i) => i === 0 || n >= duration.buckets[i - 1]), 'buckets are cumulative');
  t.ok(duration.sum > 0 && duration.sum < 25 * 5, `the sum is seconds (${duration.sum})`);
  const first = histogram(s, 'ffi_proxy_server_first_byte_seconds', 'backend="app",server="a1"');
  t.equal(first.count, 25, 'a first byte per request');
  const connects = metric(s, 'ffi_proxy_server_connections_total', sv)!;
  t.equal(histogram(s, 'ffi_proxy_server_connect_duration_seconds', 'backend="app",server="a1"').count, connects, 'a connect time per new server connection');

  const stats = (await admin(proxy, '/stats')).json;
  const web = stats.frontends.find((f: any) => f.name === 'web');
  t.equal(web.requests, 25, '/stats: the same requests');
  t.equal(web.duration.count, 25, '/stats: the same histogram count');
  t.equal(stats.backends[0].servers[0].requests, 25, "/stats: the server's requests");
  t.equal(stats.totals.requests, 25, '/stats: totals');

  const om = await admin(proxy, '/metrics', { headers: { Accept: 'application/openmetrics-text; version=1.0.0' } });
  t.match(om.type, /^application\/openmetrics-text/, 'OpenMetrics when asked for');
  t.ok(om.body.endsWith('# EOF\n'), 'OpenMetrics ends with # EOF');
  t.match(om.body, /# TYPE ffi_proxy_frontend_requests counter\n/, 'an OpenMetrics counter family is named without _total');
  t.equal(metric(samples(om.body), 'ffi_proxy_frontend_requests_total', fe), 25, 'its sample keeps _total');
});

t.test('a termination code for each failure', async (t) => {
  const dead = await deadPort();
  // Reads a request, then resets the connection.
  const resetter = await serve((s) => s.once('data', () => s.resetAndDestroy()));
  t.teardown(() => resetter.close());
  // Reads a request and never answers.
  const silent = await serve((s) => s.resume());
  t.teardown(() => silent.close());
  const slow = await serve((s) => {
    s.on('error', () => {});
    s.once('data', () => setTimeout(() => s.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), 2000));
  });
  t.teardown(() => slow.close());
  const echo = await echoServer();
  t.teardown(() => echo.close());
  const http = (name: string, backend: string, extra = {}) => ({ name, listen: '127.0.0.1:0', mode: 'http', backend, ...extra });
  const proxy = await proxyOf(t, {
    admin: '127.0.0.1:0',
    retries: 0,
    frontends: [
      http('refused', 'dead'),
      http('reset', 'resetter'),
      http('timeout', 'silent', { 'backend-timeout': '300ms' }),
      http('gone', 'slow'),
      http('malformed', 'slow'),
      { name: 'tcp', listen: '127.0.0.1:0', mode: 'tcp', backend: 'echo' },
    ],
    backends: [
      { name: 'dead', servers: [`127.0.0.1:${dead}`] },
      { name: 'resetter', servers: [`127.0.0.1:${resetter.port}`] },
      { name: 'silent', servers: [`127.0.0.1:${silent.port}`] },
      { name: 'slow', servers: [`127.0.0.1:${slow.port}`] },
      { name: 'echo', servers: [`127.0.0.1:${echo.port}`] },
    ],
  });
  const status = async (fe: string, request = 'GET / HTTP/1.1\r\nHost: t\r\n\r\n') => {
    const s = await connect(portOf(proxy, fe));
    const reply = readResponse(s);
    s.write(request);
    const { raw } = await reply;
    s.destroy();
    return Number(raw.slice(9, 12));
  };
  t.equal(await status('refused'), 502, 'refused: 502');
  t.equal(await status('reset'), 502, 'reset: 502');
  t.equal(await status('timeout'), 504, 'timeout: 504');
  t.equal(await status('malformed', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'), 400, 'malformed: 400');
  // A client resets its connection while the slow backend has not answered yet: gone (a FIN would be a
  // half-close, which HTTP allows: the response would still go out).
  const g = await connect(portOf(proxy, 'gone'));
  g.on('error', () => {});
  g.write('GET / HTTP/1.1\r\nHost: t\r\n\r\n');
  await new Promise((r) => setTimeout(r, 200));
  g.resetAndDestroy();
  // A client closes in the middle of its request head.
  const h = await connect(portOf(proxy, 'gone'));
  h.write('GET / HTTP/1.1\r\nHost');
  await new Promise((r) => setTimeout(r, 100));
  h.end();
  // A TCP connection that ends normally.
  const c = await connect(portOf(proxy, 'tcp'));
  c.write('ping');
  t.equal((await readBytes(c, 4)).toString(), 'ping');
  c.end();
  await once(c, 'close');
  await waitFor(() => proxy.stats().active === 0, 'every connection ended');

  const s = await scrape(proxy);
  const term = (frontend: string, code: string) => metric(s, 'ffi_proxy_frontend_terminations_total', { frontend, code });
  t.equal(term('refused', 'backend_refused'), 1, 'backend_refused');
  t.equal(term('reset', 'backend_reset'), 1, 'backend_reset');
  t.equal(term('timeout', 'backend_timeout'), 1, 'backend_timeout');
  t.equal(term('malformed', 'malformed'), 1, 'malformed');
  t.equal(term('gone', 'client_reset'), 1, 'client_reset: the client reset its connection while waiting for the response');
  t.equal(term('gone', 'client_abort'), 1, 'client_abort: the client closed in the middle of its request');
  t.equal(term('tcp', 'done'), 1, 'a TCP connection that ended normally: done');
  t.equal(metric(s, 'ffi_proxy_server_connect_errors_total', { backend: 'dead', server: `127.0.0.1:${dead}` }), 1, 'the refused connect is a connect error');
  t.equal(metric(s, 'ffi_proxy_frontend_responses_total', { frontend: 'refused', code: '5xx' }), 1, 'the 502 is a 5xx response');
  t.equal(metric(s, 'ffi_proxy_frontend_responses_total', { frontend: 'malformed', code: '4xx' }), 1, 'the 400 is a 4xx response');
  t.equal(metric(s, 'ffi_proxy_terminations_total', { code: 'backend_refused' }), 1, 'the process-wide count too');
});

t.test('retries are counted on the server that failed', async (t) => {
  const dead = await deadPort();
  const app = await httpNamed(t, 'a');
  const proxy = await proxyOf(t, {
    admin: '127.0.0.1:0',
    frontends: [{ name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'app' }],
    backends: [{ name: 'app', balance: 'round-robin', servers: [{ name: 'dead', address: `127.0.0.1:${dead}` }, { name: 'a', address: app.addr }] }],
  });
  const client = new Client(t, portOf(proxy, 'web'));
  for (let i = 0; i < 4; i++) t.equal((await client.get()).status, 200, 'answered by the live server');
  const s = await scrape(proxy);
  const retries = metric(s, 'ffi_proxy_server_retries_total', { backend: 'app', server: 'dead' })!;
  t.ok(retries >= 1, `retries away from the dead server (${retries})`);
  t.equal(metric(s, 'ffi_proxy_server_connect_errors_total', { backend: 'app', server: 'dead' }), retries, 'each retry followed a connect error');
  t.equal(metric(s, 'ffi_proxy_backend_retries_total', { backend: 'app' }), retries, "the backend's sum");
});

t.test('process metrics and label hygiene', async (t) => {
  const proxy = await proxyOf(t, { admin: '127.0.0.1:0', frontends: [{ name: 'web', listen: '127.0.0.1:0', mode: 'tcp', backend: 'b' }], backends: [{ name: 'b', servers: [{ name: 's', address: '127.0.0.1:9' }] }] });
  const r = await admin(proxy, '/metrics');
  t.match(r.type, /^text\/plain; version=0\.0\.4/, 'the Prometheus text format');
  const s = samples(r.body);
  t.ok(metric(s, 'process_cpu_seconds_total')! > 0, 'CPU seconds');
  t.ok(metric(s, 'process_resident_memory_bytes')! > 10e6, 'RSS');
  t.ok(metric(s, 'process_open_fds')! > 5, 'open fds');
  for (const line of r.body.split('\n')) {
    if (line.startsWith('# TYPE') && line.endsWith(' counter')) t.match(line, /_total counter$/, `${line}: a counter ends in _total`);
  }
  t.notMatch(r.body, /client=|127\.0\.0\.1:\d+"/, 'no label names a client');
});
