// Server health through the proxy, with real servers on loopback: a refused connect retried on another
// server, a server killed under load (retries, then its checks), an HTTP check that wants 2xx/3xx, and
// passive health (a worker takes down a server whose connects keep failing). One worker, so that one
// balancer decides everything and the counts are exact where the algorithm is.
import t from 'tap';
import http from 'node:http';
import { once } from 'node:events';
import { deadPort, waitFor } from '../helpers/net.js';
import { Client, count, httpNamed, portOf, proxyOf, tcpName, tcpNamed, until } from '../helpers/servers.js';

/** A GET straight to a server, not through the proxy. */
async function direct(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, resolve).on('error', reject);
  });
  let body = '';
  for await (const d of res) body += d;
  return { status: res.statusCode ?? 0, body };
}

t.test('a refused connect is retried on another server (no checks): every request and connection succeeds', async (t) => {
  const live = await httpNamed(t, 'live');
  const liveTcp = await tcpNamed(t, 'L');
  const [dead1, dead2] = [await deadPort(), await deadPort()];
  const proxy = await proxyOf(t, {
    frontends: [
      { name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'h' },
      { name: 'raw', listen: '127.0.0.1:0', mode: 'tcp', backend: 'r' },
    ],
    backends: [
      { name: 'h', balance: 'round-robin', servers: [`127.0.0.1:${dead1}`, live.addr] },
      { name: 'r', balance: 'round-robin', servers: [`127.0.0.1:${dead2}`, liveTcp.addr] },
    ],
  });
  // Round-robin alternates its first picks (dead, live, dead, ...); a retry on the one other server leaves
  // the scores as they were. Without checks a dead server is never taken down: 10 refusals in 20.
  const web = new Client(t, portOf(proxy, 'web'));
  t.same(count(await web.names(20)), { live: 20 }, 'HTTP: 20 requests, all answered by the live server');
  t.equal(live.hits, 20);
  t.equal(proxy.stats().connectErrors, 10, 'HTTP: the 10 refused connects counted');

  const got: string[] = [];
  for (let i = 0; i < 20; i++) got.push(await tcpName(portOf(proxy, 'raw')));
  t.equal(got.join(''), 'L'.repeat(20), 'TCP: 20 connections, all to the live server');
  t.equal(proxy.stats().connectErrors, 20, 'TCP: 10 more refused connects counted');

  await waitFor(() => proxy.stats().active === 1, 'the TCP connections to end'); // the HTTP client stays
  const term = proxy.stats().terminations;
  t.equal(term.backend_refused, 0, 'no client was told of a refusal');
  t.equal(term.no_server, 0);
});

t.test('a server killed under load: retries cover the change, and once its checks notice, nothing fails', async (t) => {
  const a = await httpNamed(t, 'a');
  const b = await httpNamed(t, 'b');
  const proxy = await proxyOf(t, {
    frontends: [{ name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'app' }],
    backends: [
      {
        name: 'app',
        balance: 'round-robin',
        servers: [a.addr, b.addr],
        health: { http: '/health', interval: '100ms', fall: 2, rise: 1 },
      },
    ],
  });
  // Load: 3 clients sending requests in a loop, each result recorded with the phase it ended in.
  let phase: 'before' | 'transition' | 'after' = 'before';
  let stop = false;
  const results: { phase: string; r: string }[] = [];
  const loops = Array.from({ length: 3 }, async () => {
    const c = new Client(t, proxy.port);
    while (!stop) {
      const r = await c.get();
      results.push({ phase, r: r.status === 200 ? r.body : `!${r.status}` });
    }
  });
  t.teardown(() => {
    stop = true;
  });
  // A witness: one client whose requests are sequential, and that is idle when the server is killed.
  const witness = new Client(t, proxy.port);
  const seen: string[] = [];
  seen.push(...(await witness.names(10)));
  await waitFor(() => results.length >= 30, 'the load to run');
  t.ok(a.hits > 0 && b.hits > 0, 'both servers take requests at first');

  phase = 'transition';
  await a.kill();
  // Noticed once 20 requests in a row (with the load beside them) try no connect to it: with round-robin,
  // half of them would go to it while it is up.
  await until(async () => {
    const errors = proxy.stats().connectErrors;
    const r = await witness.names(20);
    seen.push(...r);
    return proxy.stats().connectErrors === errors && r.every((x) => x === 'b');
  }, 'the proxy to stop trying the killed server');
  phase = 'after';
  const errors = proxy.stats().connectErrors;
  t.ok(errors > 0, `connects to the killed server were refused and counted (${errors}), then stopped`);

  // 50 more, from 5 clients at once, besides the load.
  const more = (await Promise.all(Array.from({ length: 5 }, () => new Client(t, proxy.port).names(10)))).flat();
  t.same(count(more), { b: 50 }, '50 more requests: all answered by the survivor');
  stop = true;
  await Promise.all(loops);
  t.equal(proxy.stats().connectErrors, errors, 'no connect to the killed server since');

  const failed = (p: string) => results.filter((x) => x.phase === p && x.r !== 'a' && x.r !== 'b');
  t.same(failed('after'), [], 'no load request failed once the checks noticed');
  t.same(failed('before'), [], 'nor before the kill');
  // In flight at the kill, a load request may be lost on a connection that was not pooled (nothing to
  // replay): counted, not asserted.
  const lost = failed('transition');
  t.comment(`load requests: ${results.length}; during the transition ${results.filter((x) => x.phase === 'transition').length}, of which failed: ${lost.length} ${JSON.stringify(count(lost.map((x) => x.r)))}`);
  t.same(
    seen.filter((x) => x !== 'a' && x !== 'b'),
    [],
    `the witness, idle at the kill, saw no request fail at all (${seen.length} requests): refused connects were retried`,
  );
});

t.test('an HTTP check wants 2xx or 3xx: /health answering 500 takes a server out, 302 brings it back', async (t) => {
  const a = await httpNamed(t, 'a');
  const b = await httpNamed(t, 'b');
  const proxy = await proxyOf(t, {
    frontends: [{ name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'app' }],
    backends: [
      {
        name: 'app',
        balance: 'round-robin',
        servers: [a.addr, b.addr],
        health: { http: '/health', interval: '100ms', fall: 2, rise: 2 },
      },
    ],
  });
  const client = new Client(t, proxy.port);
  t.same(count(await client.names(10)), { a: 5, b: 5 }, 'both up: 5 and 5');

  a.health = 500;
  // While both are up, of two requests in a row one goes to a.
  await until(async () => (await client.names(2)).every((x) => x === 'b'), 'a to be taken out');
  const aHits = a.hits;
  t.same(count(await client.names(20)), { b: 20 }, 'a out: all 20 to b');
  t.equal(a.hits, aHits, 'a got none');
  t.same(await direct(a.port, '/'), { status: 200, body: 'a' }, 'though a still answers its other paths');
  t.equal((await direct(a.port, '/health')).status, 500);
  const checks = a.checks;
  await waitFor(() => a.checks >= checks + 2, 'a to be checked on while down');
  t.equal(proxy.stats().connectErrors, 0, 'no connect failed: only its check said no');

  a.health = 302;
  await until(async () => (await client.get()).body === 'a', 'a to come back (3xx counts as up)');
  t.same(count(await client.names(20)), { a: 10, b: 10 }, 'back: 10 and 10 of 20');
});

t.test('passive health: a worker takes down a server after `fall` failed connects, before any check runs', async (t) => {
  const live = await httpNamed(t, 'live');
  const liveTcp = await tcpNamed(t, 'L');
  const [dead1, dead2] = [await deadPort(), await deadPort()];
  // Checks every 60 s: the first runs at a random moment within the first minute; with fall 3 one failed
  // check cannot take a server down, so only the worker's own count of failed connects can here.
  const health = { tcp: true, interval: '60s', fall: 3, rise: 1 };
  const proxy = await proxyOf(t, {
    frontends: [
      { name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'h' },
      { name: 'raw', listen: '127.0.0.1:0', mode: 'tcp', backend: 'r' },
    ],
    backends: [
      { name: 'h', balance: 'round-robin', servers: [`127.0.0.1:${dead1}`, live.addr], health },
      { name: 'r', balance: 'round-robin', servers: [`127.0.0.1:${dead2}`, liveTcp.addr], health },
    ],
  });
  const web = new Client(t, portOf(proxy, 'web'));
  t.same(count(await web.names(30)), { live: 30 }, 'HTTP: 30 requests, all answered');
  t.equal(proxy.stats().connectErrors, 3, 'HTTP: exactly fall (3) refused connects, then the dead server is down');
  t.same(count(await web.names(30)), { live: 30 }, 'HTTP: 30 more, all answered');
  t.equal(proxy.stats().connectErrors, 3, 'HTTP: and no more connects to it');

  const got: string[] = [];
  for (let i = 0; i < 30; i++) got.push(await tcpName(portOf(proxy, 'raw')));
  t.equal(got.join(''), 'L'.repeat(30), 'TCP: 30 connections, all to the live server');
  t.equal(proxy.stats().connectErrors, 6, 'TCP: 3 more refused connects, then down');
  got.length = 0;
  for (let i = 0; i < 30; i++) got.push(await tcpName(portOf(proxy, 'raw')));
  t.equal(got.join(''), 'L'.repeat(30), 'TCP: 30 more');
  t.equal(proxy.stats().connectErrors, 6, 'TCP: and no more connects to it');
  t.equal(proxy.stats().terminations.backend_refused, 0, 'no client was told of a refusal');
});
