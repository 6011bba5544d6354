// The admin endpoint: the live connection list (a held connection with its bytes and the kernel's TCP_INFO,
// filters, a request in flight), its actions (drain, maintenance and weight of a server, closing one
// connection, the log level), toxics (their routes and the library's calls), the bearer token, the CLI's
// default and `off`.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { start, ProxyError } from '../../dist/index.js';
import { connect, echoServer, peerDone, readBytes, runCli, serve, startCli, waitFor } from '../helpers/net.js';
import { Client, count, httpNamed, portOf, proxyOf, tcpName, tcpNamed } from '../helpers/servers.js';
import { admin, metric, post, scrape } from '../helpers/admin.js';

t.test('/connections: a held TCP connection with its bytes and TCP_INFO; filters; a limit', async (t) => {
  const echo = await echoServer();
  t.teardown(() => echo.close());
  const proxy = await proxyOf(t, {
    admin: '127.0.0.1:0',
    frontends: [
      { name: 'raw', listen: '127.0.0.1:0', mode: 'tcp', backend: 'echo' },
      { name: 'other', listen: '127.0.0.1:0', mode: 'tcp', backend: 'echo' },
    ],
    backends: [{ name: 'echo', servers: [{ name: 'e1', address: `127.0.0.1:${echo.port}` }] }],
  });
  const held: net.Socket[] = [];
  t.teardown(() => held.forEach((s) => s.destroy()));
  for (let i = 0; i < 3; i++) {
    const s = await connect(portOf(proxy, 'raw'));
    held.push(s);
    const data = Buffer.alloc(1000 * (i + 1), 'x');
    s.write(data);
    t.equal((await readBytes(s, data.length)).length, data.length, 'echoed through the proxy');
  }
  const all = (await admin(proxy, '/connections')).json;
  t.equal(all.total, 3, 'three client connections');
  t.equal(all.connections.length, 3, 'all listed');
  const c = all.connections.find((x: any) => x.bytesIn === 3000);
  t.ok(c, 'the third connection, by its bytes');
  t.equal(c.bytesOut, 3000, 'bytes out');
  t.equal(c.frontend, 'raw');
  t.equal(c.backend, 'echo');
  t.equal(c.server, 'e1');
  t.equal(c.protocol, 'tunnel');
  t.equal(c.state, 'PROXYING');
  t.match(c.client, /^127\.0\.0\.1:\d+$/, 'the client address');
  t.equal(c.client, `127.0.0.1:${held[2].localPort}`, "the client's own port");
  t.ok(c.ageSeconds >= 0 && c.ageSeconds < 30, 'an age');
  t.ok(c.idleSeconds >= 0 && c.idleSeconds <= c.ageSeconds + 0.01, 'idle no longer than its age');
  t.match(c.id, /^\d+\.\d+\.\d+$/, 'an id');
  t.equal(c.tcp.client.state, 'established', "the client socket's TCP state");
  t.ok(c.tcp.client.rttMs > 0, `the client socket's rtt (${c.tcp.client.rttMs} ms)`);
  t.equal(c.tcp.client.unacked, 0, 'nothing unacked');
  t.equal(c.tcp.server.state, 'established', 'the server socket too');
  t.type(c.tcp.server.totalRetrans, 'number', 'retransmits');

  t.equal((await admin(proxy, '/connections?frontend=other')).json.matched, 0, 'filtered by frontend: none on the other');
  t.equal((await admin(proxy, '/connections?server=echo/e1')).json.matched, 3, 'by backend/server');
  t.equal((await admin(proxy, '/connections?server=nope')).json.matched, 0, 'by an unknown server: none');
  t.equal((await admin(proxy, '/connections?state=PROXYING')).json.matched, 3, 'by state');
  t.equal((await admin(proxy, '/connections?min_age=3600')).json.matched, 0, 'none an hour old');
  const limited = (await admin(proxy, '/connections?limit=1&sort=bytes')).json;
  t.equal(limited.matched, 3, 'a limit still counts every match');
  t.equal(limited.connections.length, 1, 'and lists one');
  t.equal(limited.connections[0].bytesIn, 3000, 'the busiest first with sort=bytes');
  t.equal((await admin(proxy, '/connections?limit=0')).status, 400, 'limit 0: 400');
  t.equal((await admin(proxy, '/connections?sort=size')).status, 400, 'an unknown sort: 400');
});

t.test('/connections: an HTTP request in flight shows its request line and how long it has run', async (t) => {
  let answer: (() => void) | null = null;
  const slow = http.createServer((req, res) => {
    answer = () => res.end('late');
  });
  slow.listen(0, '127.0.0.1');
  await once(slow, 'listening');
  t.teardown(() => {
    slow.closeAllConnections();
    slow.close();
  });
  const proxy = await proxyOf(t, {
    admin: '127.0.0.1:0',
    frontends: [{ name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'slow' }],
    backends: [{ name: 'slow', servers: [`127.0.0.1:${(slow.address() as net.AddressInfo).port}`] }],
  });
  const s = await connect(portOf(proxy, 'web'));
  t.teardown(() => s.destroy());
  s.write('GET /waiting/for/it?x=1 HTTP/1.1\r\nHost: t\r\n\r\n');
  await waitFor(() => answer !== null, 'the request at the backend');
  await new Promise((r) => setTimeout(r, 150));
  const list = (await admin(proxy, '/connections?state=http')).json;
  t.equal(list.connections.length, 1, 'one HTTP client');
  const c = list.connections[0];
  t.equal(c.request?.line, 'GET /waiting/for/it?x=1 HTTP/1.1', 'its request line');
  t.ok(c.request.seconds >= 0.1, `running for ${c.request.seconds} s`);
  t.equal(c.state, 'H_WAIT');
  answer!();
  await readBytes(s, 20);
  await waitFor(() => true, '');
  await new Promise((r) => setTimeout(r, 50));
  const after = (await admin(proxy, '/connections')).json.connections[0];
  t.equal(after.request, null, 'between requests: no request');
  t.ok(after.bytesOut > 0, 'the response counted');
});

t.test('actions: drain, maintenance and ready; weight', async (t) => {
  const a = await httpNamed(t, 'a');
  const b = await httpNamed(t, 'b');
  const proxy = await proxyOf(t, {
    admin: '127.0.0.1:0',
    frontends: [{ name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'app' }],
    backends: [{ name: 'app', balance: 'round-robin', servers: [{ name: 'a', address: a.addr }, { name: 'b', address: b.addr }] }],
  });
  const client = new Client(t, portOf(proxy, 'web'));
  t.same(count(await client.names(10)), { a: 5, b: 5 }, 'both take requests');

  const drained = await post(proxy, '/servers/app/a/state', 'state=drain');
  t.equal(drained.status, 200);
  t.same(drained.json, { backend: 'app', server: 'a', state: { from: 'up', to: 'drain' } }, 'the answer says what changed');
  t.same(count(await client.names(10)), { b: 10 }, 'drained: no new requests go to it');
  const s = await scrape(proxy);
  t.equal(metric(s, 'ffi_proxy_server_state', { backend: 'app', server: 'a', state: 'drain' }), 1, 'the metric says drain');
  t.equal(metric(s, 'ffi_proxy_server_up', { backend: 'app', server: 'a' }), 0, 'and not taking connections');
  const stats = (await admin(proxy, '/stats')).json;
  t.equal(stats.backends[0].servers[0].state, 'drain', '/stats says drain');

  t.same((await post(proxy, '/servers/app/a/state', JSON.stringify({ state: 'maint' }))).json.state, { from: 'drain', to: 'maint' }, 'maint (a JSON body)');
  t.same(count(await client.names(6)), { b: 6 }, 'in maintenance: none either');
  t.same((await post(proxy, '/servers/app/a/state?state=ready')).json.state, { from: 'maint', to: 'up' }, 'ready (a query parameter)');
  t.same(count(await client.names(10)), { a: 5, b: 5 }, 'ready: it takes its share again');

  t.same((await post(proxy, '/servers/app/b/weight', 'weight=0')).json.weight, { from: 1, to: 0 }, 'weight 0');
  t.same(count(await client.names(6)), { a: 6 }, 'weight 0: no new requests');
  t.equal(metric(await scrape(proxy), 'ffi_proxy_server_weight', { backend: 'app', server: 'b' }), 0, 'the metric shows the weight');
  await post(proxy, '/servers/app/b/weight', 'weight=3');
  t.same(count(await client.names(8)), { a: 2, b: 6 }, 'weight 3 against 1');

  t.equal((await post(proxy, '/servers/app/a/state', 'state=sleep')).status, 400, 'an unknown state: 400');
  t.equal((await post(proxy, '/servers/app/zz/state', 'state=drain')).status, 400, 'an unknown server: 400');
  t.match((await post(proxy, '/servers/nope/a/state', 'state=drain')).json.error, /no backend named "nope"/, 'an unknown backend says so');
  t.equal((await post(proxy, '/servers/app/a/weight', 'weight=999')).status, 400, 'a weight out of range: 400');
  t.equal((await post(proxy, '/servers/app/a/weight', '{bad json')).status, 400, 'a body that is not JSON: 400');
  const get = await admin(proxy, '/servers/app/a/state');
  t.equal(get.status, 405, 'an action by GET: 405');
  t.equal((await admin(proxy, '/nothing')).status, 404, 'an unknown path: 404');
  t.equal((await post(proxy, '/metrics')).status, 405, 'a POST to a GET endpoint: 405');
});

t.test('actions: drained TCP server; close one connection; the log level', async (t) => {
  const a = await tcpNamed(t, 'A');
  const b = await tcpNamed(t, 'B');
  const proxy = await proxyOf(t, {
    admin: '127.0.0.1:0',
    frontends: [{ name: 'raw', listen: '127.0.0.1:0', mode: 'tcp', backend: 'app' }],
    backends: [{ name: 'app', balance: 'round-robin', servers: [{ name: 'a', address: a.addr }, { name: 'b', address: b.addr }] }],
  });
  const port = portOf(proxy, 'raw');
  // A connection held to A stays up through the drain.
  const held = await connect(port);
  held.on('error', () => {});
  t.equal((await readBytes(held, 1)).toString(), 'A');
  await post(proxy, '/servers/app/a/state', 'state=drain');
  const names: string[] = [];
  for (let i = 0; i < 4; i++) names.push(await tcpName(port));
  t.equal(names.join(''), 'BBBB', 'new connections avoid the drained server');
  t.equal(held.destroyed, false, 'the held connection to it is still open');

  const list = (await admin(proxy, '/connections?server=a')).json.connections;
  t.equal(list.length, 1, 'the held connection, listed on its server');
  const gone = peerDone(held);
  const r = await post(proxy, `/connections/${list[0].id}/close`);
  t.equal(r.status, 200);
  t.same(r.json, { closed: list[0].id }, 'the answer names it');
  t.ok(await gone, 'the client sees its connection closed');
  await waitFor(() => proxy.stats().terminations.killed === 1, 'counted as killed');
  t.equal((await post(proxy, `/connections/${list[0].id}/close`)).status, 404, 'closing it again: 404');
  t.equal((await post(proxy, '/connections/banana/close')).status, 400, 'a malformed id: 400');

  t.same((await post(proxy, '/log-level', 'level=debug')).json, { logLevel: { from: 'silent', to: 'debug' } }, 'the log level changes');
  t.same((await post(proxy, '/log-level', 'level=silent')).json.logLevel, { from: 'debug', to: 'silent' }, 'and back');
  t.equal((await post(proxy, '/log-level', 'level=loud')).status, 400, 'an unknown level: 400');
});

t.test('a bearer token: required when set; a non-loopback address without one is refused', async (t) => {
  const proxy = await start({ listen: '127.0.0.1:0', workers: 1, logLevel: 'silent', admin: '127.0.0.1:0', adminToken: 's3cret' });
  t.teardown(() => proxy.close(0));
  const none = await admin(proxy, '/stats');
  t.equal(none.status, 401, 'no token: 401');
  t.match(none.json.error, /Bearer/, 'it says what to send');
  t.equal((await admin(proxy, '/metrics', { headers: { Authorization: 'Bearer wrong' } })).status, 401, 'a wrong token: 401');
  t.equal((await admin(proxy, '/metrics', { headers: { Authorization: 'Bearer s3cret' } })).status, 200, 'the token: 200');
  t.equal((await admin(proxy, '/stats?token=s3cret')).status, 200, '?token= for a browser');
  t.equal((await post(proxy, '/log-level', 'level=info')).status, 401, 'actions too');

  await t.rejects(start({ listen: '127.0.0.1:0', workers: 1, logLevel: 'silent', admin: '0.0.0.0:0' }), { code: 'FFIP_ERR_BAD_OPTION', message: /not a loopback address: give --admin-token/ }, 'off loopback without a token: refused, before it binds');
  await t.rejects(start({ listen: '127.0.0.1:0', workers: 1, logLevel: 'silent', admin: 'localhost:x' }), ProxyError, 'a bad address');
  await t.rejects(start({ listen: '127.0.0.1:0', workers: 1, logLevel: 'silent', admin: 'unix:/tmp/a' }), { code: 'FFIP_ERR_BAD_OPTION' }, 'a unix path');
});

t.test('admin off: the library default and --admin off; the CLI banner names it when on', async (t) => {
  const proxy = await start({ listen: '127.0.0.1:0', workers: 1, logLevel: 'silent' });
  t.teardown(() => proxy.close(0));
  t.equal(proxy.admin, null, 'the library starts none unless asked');
  const busy = await serve(() => {});
  t.teardown(() => busy.close());
  await t.rejects(start({ listen: '127.0.0.1:0', workers: 1, logLevel: 'silent', admin: `127.0.0.1:${busy.port}` }), { message: /the port is in use/ }, 'an admin port in use, asked for: an error');

  const off = await startCli(['--workers', '1', '--admin', 'off']);
  t.teardown(() => off.child.kill('SIGKILL'));
  t.notMatch(off.stdout(), /admin:/, '--admin off: no admin line');
  const on = await startCli(['--workers', '1', '--admin', '127.0.0.1:0']);
  t.teardown(() => on.child.kill('SIGKILL'));
  await waitFor(() => /admin: http:\/\/127\.0\.0\.1:(\d+)\//.test(on.stdout()), 'the admin line');
  const port = Number(/admin: http:\/\/127\.0\.0\.1:(\d+)\//.exec(on.stdout())![1]);
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  t.equal(res.status, 200, 'the CLI serves /metrics where its banner says');
  t.match(await res.text(), /ffi_proxy_frontend_connections_total\{frontend="default"\} 0/, 'with its frontend');
  const bad = await runCli(['start', '--listen', '127.0.0.1:0', '--admin', '10.0.0.1:9901']);
  t.equal(bad.code, 2, 'a non-loopback --admin without a token: exit 2');
  t.match(bad.stderr, /admin-token/, 'saying to give a token');
});

t.test("toxics through the admin endpoint: Toxiproxy's bodies, statuses and words; HTTP toxics on HTTP frontends only", async (t) => {
  const echo = await echoServer();
  t.teardown(() => echo.close());
  const proxy = await proxyOf(t, {
    admin: '127.0.0.1:0',
    frontends: [
      { name: 'raw', listen: '127.0.0.1:0', mode: 'tcp', backend: 'echo' },
      { name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'echo', toxics: [{ type: 'http_request_delay', name: 'slow', attributes: { delay: 5 } }] },
    ],
    backends: [{ name: 'echo', servers: [`127.0.0.1:${echo.port}`] }],
  });
  const body = (method: string, path: string, b: unknown) => admin(proxy, path, { method, body: typeof b === 'string' ? b : JSON.stringify(b), headers: { 'Content-Type': 'application/json' } });
  const live = await connect(portOf(proxy, 'raw'));
  t.teardown(() => live.destroy());
  live.write('a');
  t.equal((await readBytes(live, 1)).toString(), 'a', 'a live connection');

  t.same((await admin(proxy, '/frontends/raw/toxics')).json, [], 'none at first');
  t.same((await admin(proxy, '/frontends/web/toxics')).json.map((x: any) => x.name), ['slow'], "the config file's");
  const added = await body('POST', '/frontends/raw/toxics', { type: 'latency', stream: 'upstream', attributes: { latency: 100 } });
  t.equal(added.status, 200);
  t.same(added.json, { attributes: { latency: 100, jitter: 0 }, name: 'latency_upstream', type: 'latency', stream: 'upstream', toxicity: 1 });
  t.equal((await body('POST', '/frontends/raw/toxics', { type: 'noop' })).status, 200, 'a second one');
  t.same((await admin(proxy, '/frontends/raw/toxics')).json.map((x: any) => x.name), ['latency_upstream', 'noop_downstream'], 'listed');
  const merged = await body('PATCH', '/frontends/raw/toxics/latency_upstream', { attributes: { jitter: 4 } });
  t.same(merged.json.attributes, { latency: 100, jitter: 4 }, 'an update merges');
  t.same((await body('POST', '/frontends/raw/toxics/latency_upstream', { toxicity: 0.25 })).json.toxicity, 0.25, 'POST updates too');
  t.same((await admin(proxy, '/frontends/raw/toxics/latency_upstream')).json.attributes, { latency: 100, jitter: 4 }, 'GET one');
  live.write('b');
  t.equal((await readBytes(live, 1)).toString(), 'b', 'the live connection is still there');

  const dup = await body('POST', '/frontends/raw/toxics', { type: 'latency', stream: 'upstream' });
  t.equal(dup.status, 409);
  t.same(dup.json, { error: 'toxic already exists', status: 409 }, "Toxiproxy's error shape");
  t.same((await body('POST', '/frontends/raw/toxics', { type: 'http_error' })).json, {
    error: 'toxic type http_error acts on HTTP requests: it needs mode http (this is tcp)',
    status: 400,
  });
  t.equal((await body('POST', '/frontends/web/toxics', { type: 'http_error', attributes: { status: 503, body: 'no' } })).status, 200, 'on an HTTP frontend');
  t.same((await body('POST', '/frontends/raw/toxics', '')).json, { error: 'bad request body: EOF', status: 400 });
  t.match((await body('POST', '/frontends/raw/toxics', { type: 'latency', name: 'x', attributes: { latency: 1.5 } })).json, { status: 400, error: /cannot unmarshal number 1\.5/ });
  t.match((await body('POST', '/frontends/raw/toxics', { type: 'latency', name: 'x', toxicity: 2 })).json, { status: 400, error: 'toxicity must be a number from 0 to 1, not 2' }, 'stricter than the API: toxicity 0..1');
  t.same((await body('POST', '/frontends/nope/toxics', { type: 'noop' })).json, { error: 'frontend not found', status: 404 });
  t.same((await admin(proxy, '/frontends/raw/toxics/nope')).json, { error: 'toxic not found', status: 404 });
  t.equal((await admin(proxy, '/frontends/raw/toxics', { method: 'PUT' })).status, 405, 'another method: 405');

  const del = await admin(proxy, '/frontends/raw/toxics/noop_downstream', { method: 'DELETE' });
  t.equal(del.status, 204, 'deleted');
  t.same((await admin(proxy, '/frontends/raw/toxics/noop_downstream', { method: 'DELETE' })).json, { error: 'toxic not found', status: 404 }, 'twice: 404');
});

t.test('toxics in the library: addToxic, updateToxic, removeToxic, toxics; they survive an edit of the config', async (t) => {
  const echo = await echoServer();
  t.teardown(() => echo.close());
  const proxy = await proxyOf(t, {
    frontends: [{ name: 'raw', listen: '127.0.0.1:0', backend: 'echo' }],
    backends: [{ name: 'echo', servers: [`127.0.0.1:${echo.port}`] }],
  });
  const added = await proxy.addToxic('raw', { type: 'bandwidth', attributes: { rate: 1000 } });
  t.same(added, { attributes: { rate: 1000 }, name: 'bandwidth_downstream', type: 'bandwidth', stream: 'downstream', toxicity: 1 });
  t.same(await proxy.updateToxic('raw', 'bandwidth_downstream', { toxicity: 0.5 }), { ...added, toxicity: 0.5 });
  await t.rejects(proxy.addToxic('raw', { type: 'bandwidth' }), { name: 'ApiError', status: 409, message: 'toxic already exists' });
  await t.rejects(proxy.updateToxic('raw', 'nope', {}), { status: 404, message: 'toxic not found' });
  t.throws(() => proxy.toxics('nope'), { status: 404, message: 'frontend not found' });
  await proxy.addFrontend({ name: 'more', listen: '127.0.0.1:0', backend: 'echo' });
  t.same(proxy.toxics('raw'), [{ ...added, toxicity: 0.5 }], 'an edit of the config (addFrontend) keeps them');
  const s = await connect(portOf(proxy, 'raw'));
  t.teardown(() => s.destroy());
  await proxy.removeToxic('raw', 'bandwidth_downstream');
  t.same(proxy.toxics('raw'), []);
  s.write('ok');
  t.equal((await readBytes(s, 2)).toString(), 'ok', 'the proxy still proxies');
});
