// Balancing through the proxy, with real servers on loopback that answer with their own name: weighted
// round-robin (nginx's smooth order), least-conn, random-two, the consistent hash of the client address,
// backup servers, weight 0, and a backend with no server up. One worker, so that one balancer decides
// everything (each worker balances on its own) and the counts are exact where the algorithm is.
import t from 'tap';
import http from 'node:http';
import { once } from 'node:events';
import net from 'node:net';
import { deadPort, peerDone, readBytes, waitFor } from '../helpers/net.js';
import { Client, count, httpNamed, portOf, proxyOf, tcpName, tcpNamed, until } from '../helpers/servers.js';

t.test('weighted round-robin, HTTP: weights 1, 2, 1 give 10/20/10 of 40, in the smooth order', async (t) => {
  const [a, b, c] = [await httpNamed(t, 'a'), await httpNamed(t, 'b'), await httpNamed(t, 'c')];
  const proxy = await proxyOf(t, {
    frontends: [{ name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'app' }],
    backends: [
      {
        name: 'app',
        balance: 'round-robin',
        servers: [
          { address: a.addr, weight: 1 },
          { address: b.addr, weight: 2 },
          { address: c.addr, weight: 1 },
        ],
      },
    ],
  });
  const got = await new Client(t, proxy.port).names(40);
  t.same(count(got), { a: 10, b: 20, c: 10 }, 'each server its share of 40, exactly');
  t.same([a.hits, b.hits, c.hits], [10, 20, 10], 'as the servers counted them');
  // Smooth: the sequence repeats every 4 (a, b, b, c in some order), so no window of 4 in a row bunches.
  const bad: string[] = [];
  for (let i = 0; i + 4 <= got.length; i++) {
    const w = got.slice(i, i + 4);
    if (w.slice().sort().join('') !== 'abbc') bad.push(`${i}: ${w.join('')}`);
  }
  t.same(bad, [], `every window of 4 holds a, b, b, c (sequence ${got.join('')})`);
});

t.test('round-robin, TCP: each new connection goes to the next server', async (t) => {
  const a = await tcpNamed(t, 'A');
  const b = await tcpNamed(t, 'B');
  const proxy = await proxyOf(t, {
    frontends: [{ name: 'raw', listen: '127.0.0.1:0', mode: 'tcp', backend: 'app' }],
    backends: [{ name: 'app', balance: 'round-robin', servers: [a.addr, b.addr] }],
  });
  const got: string[] = [];
  for (let i = 0; i < 10; i++) got.push(await tcpName(proxy.port));
  t.equal(got.join(''), 'ABABABABAB', 'alternating, the first server first');
});

t.test('least-conn, TCP: new connections go to the server with fewer open', async (t) => {
  const a = await tcpNamed(t, 'A');
  const b = await tcpNamed(t, 'B');
  const proxy = await proxyOf(t, {
    frontends: [{ name: 'raw', listen: '127.0.0.1:0', mode: 'tcp', backend: 'app' }],
    backends: [{ name: 'app', balance: 'least-conn', servers: [a.addr, b.addr] }],
  });
  const held: { name: string; s: net.Socket }[] = [];
  t.teardown(() => held.forEach((h) => h.s.destroy()));
  const open = async () => {
    const s = net.connect({ port: proxy.port, host: '127.0.0.1' });
    s.on('error', () => {});
    await once(s, 'connect');
    const h = { name: (await readBytes(s, 1)).toString(), s };
    held.push(h);
    return h.name;
  };
  const first: string[] = [];
  for (let i = 0; i < 4; i++) first.push(await open());
  // Each goes to the one with fewer open; a tie goes round the list (A first).
  t.equal(first.join(''), 'ABAB', '4 held connections split 2 and 2');
  t.equal(proxy.stats().active, 4);

  // A's two end; B still holds two.
  for (const h of held.filter((x) => x.name === 'A')) h.s.end();
  await waitFor(() => a.sockets.size === 0 && proxy.stats().active === 2, "A's connections to end in the proxy");
  t.equal(b.sockets.size, 2, 'B still holds its two');

  const next = [await open(), await open()];
  t.same(next, ['A', 'A'], 'both new connections go to A, which had none open');
  t.equal(a.sockets.size, 2);
  t.equal(b.sockets.size, 2);
});

t.test('random-two, HTTP: every server gets some of 90 requests, none gets all', async (t) => {
  const servers = [await httpNamed(t, 'a'), await httpNamed(t, 'b'), await httpNamed(t, 'c')];
  const proxy = await proxyOf(t, {
    frontends: [{ name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'app' }],
    backends: [{ name: 'app', balance: 'random-two', servers: servers.map((s) => s.addr) }],
  });
  const got = await new Client(t, proxy.port).names(90);
  t.equal(got.filter((x) => x.startsWith('!')).length, 0, 'every request answered');
  // A sequential client: every pick sees no server busy, so each of the 90 is uniform over 3 (mean 30, sd
  // 4.5): outside 5..70 is a 5-sigma event.
  for (const s of servers) {
    t.ok(s.hits >= 5 && s.hits <= 70, `${s.name} got ${s.hits}, between 5 and 70`);
  }
  t.equal(servers.reduce((n, s) => n + s.hits, 0), 90);
});

t.test('hash, TCP: a client address keeps its server; a server going down moves only its own clients', async (t) => {
  const servers = [await tcpNamed(t, 'A'), await tcpNamed(t, 'B'), await tcpNamed(t, 'C')];
  const proxy = await proxyOf(t, {
    frontends: [{ name: 'raw', listen: '127.0.0.1:0', mode: 'tcp', backend: 'app' }],
    backends: [
      {
        name: 'app',
        balance: 'hash',
        servers: servers.map((s) => s.addr),
        health: { tcp: true, interval: '100ms', fall: 1, rise: 1 },
      },
    ],
  });
  const clients = Array.from({ length: 30 }, (_, i) => `127.0.0.${i + 2}`);
  const round = async () => {
    const out: string[] = [];
    for (const c of clients) out.push(await tcpName(proxy.port, c));
    return out;
  };
  const first = await round();
  const second = await round();
  t.same(second, first, 'each client address sees the same server on its second connection');
  const byServer = count(first);
  t.comment(`clients per server: ${JSON.stringify(byServer)}`);
  t.equal(Object.keys(byServer).length, 3, 'the 30 addresses are spread over all three servers');

  // Take down the server with the most clients (at least 10 of them).
  const victim = Object.entries(byServer).sort((x, y) => y[1] - x[1])[0][0];
  await servers[['A', 'B', 'C'].indexOf(victim)].close();
  const victims = clients.filter((_, i) => first[i] === victim);
  // Down once a whole round of its clients connects with no connect failing (a first refusal takes it down
  // at once with fall 1; until then a refused connect is retried on another server).
  await until(async () => {
    const before = proxy.stats().connectErrors;
    for (const c of victims) await tcpName(proxy.port, c);
    return proxy.stats().connectErrors === before;
  }, 'the dead server to be avoided');
  const errors = proxy.stats().connectErrors;
  const after = await round();
  t.equal(proxy.stats().connectErrors, errors, 'the dead server is not tried any more');
  const moved: string[] = [];
  const kept: string[] = [];
  clients.forEach((c, i) => {
    if (first[i] === victim) {
      if (after[i] === victim) moved.push(`${c} still on ${victim}`);
    } else if (after[i] !== first[i]) kept.push(`${c}: ${first[i]} -> ${after[i]}`);
  });
  t.same(kept, [], "clients of the other two servers keep theirs");
  t.same(moved, [], `the ${victims.length} clients of ${victim} moved`);
  t.ok(after.every((x) => x !== victim && /^[ABC]$/.test(x)), 'every client answered by a live server');
});

t.test('backup: takes traffic only while the normal server is down, and gives it back', async (t) => {
  const main = await httpNamed(t, 'main');
  const spare = await httpNamed(t, 'spare');
  const proxy = await proxyOf(t, {
    frontends: [{ name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'app' }],
    backends: [
      {
        name: 'app',
        servers: [main.addr, { address: spare.addr, backup: true }],
        health: { tcp: true, interval: '100ms', fall: 1, rise: 1 },
      },
    ],
  });
  const client = new Client(t, proxy.port);
  t.same(count(await client.names(10)), { main: 10 }, 'all to the normal server');
  t.equal(spare.hits, 0, 'none to the backup');

  await main.kill();
  // Stopped between two requests: a refused connect is retried on the backup, so none fails, even before
  // the server is marked down.
  t.same(count(await client.names(5)), { spare: 5 }, 'the backup answers at once');
  // Down (by its checks, or by the refused connect itself with fall 1) once requests no longer try it.
  let errors = 0;
  await until(async () => {
    errors = proxy.stats().connectErrors;
    const r = await client.names(3);
    if (r.some((x) => x !== 'spare')) throw new Error(`not all answered by the backup: ${r.join(' ')}`);
    return proxy.stats().connectErrors === errors;
  }, 'the normal server to be marked down');
  t.same(count(await client.names(10)), { spare: 10 }, 'while it is down, all to the backup');
  t.equal(proxy.stats().connectErrors, errors, 'and the dead server is not tried');

  await main.restart();
  await until(async () => (await client.get()).body === 'main', 'the normal server to come back (rise 1)');
  const spareHits = spare.hits;
  t.same(count(await client.names(10)), { main: 10 }, 'back up: all to the normal server again');
  t.equal(spare.hits, spareHits, 'none to the backup');
});

t.test('weight 0 takes nothing; a backend with no server up: 503 in HTTP, closed in TCP', async (t) => {
  const a = await httpNamed(t, 'a');
  const z = await httpNamed(t, 'z');
  const [dead1, dead2] = [await deadPort(), await deadPort()];
  const proxy = await proxyOf(t, {
    frontends: [
      { name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'weighted' },
      { name: 'zero', listen: '127.0.0.1:0', mode: 'http', backend: 'nothing' },
      { name: 'down', listen: '127.0.0.1:0', mode: 'http', backend: 'dead' },
      { name: 'raw', listen: '127.0.0.1:0', mode: 'tcp', backend: 'dead' },
    ],
    backends: [
      { name: 'weighted', servers: [{ address: a.addr, weight: 1 }, { address: z.addr, weight: 0 }] },
      { name: 'nothing', servers: [{ address: z.addr, name: 'z0', weight: 0 }] },
      {
        name: 'dead',
        servers: [`127.0.0.1:${dead1}`, `127.0.0.1:${dead2}`],
        health: { tcp: true, interval: '100ms', fall: 1, rise: 1 },
      },
    ],
  });
  t.same(count(await new Client(t, proxy.port).names(10)), { a: 10 }, 'weight 0: all to the other server');
  t.equal(z.hits, 0, 'none to the server of weight 0');

  const noServer = () => proxy.stats().terminations.no_server;
  // A backend whose only server has weight 0 has no server to take anything.
  const r0 = await new Client(t, portOf(proxy, 'zero')).get();
  t.equal(r0.status, 503, 'only weight 0: 503');
  await waitFor(() => noServer() === 1, 'no_server counted');
  t.equal(z.hits, 0);

  // Dead servers: down once their checks (or their refused connects, fall 1) say so; until then a request
  // gets 502 (refused, on both).
  const down = portOf(proxy, 'down');
  await until(async () => (await new Client(t, down).get()).status === 503, 'both dead servers to be marked down');
  await waitFor(() => noServer() === 2, 'no_server counted');
  const errors = proxy.stats().connectErrors;
  const r = await new Client(t, down).get();
  t.equal(r.status, 503, 'no server up: 503');
  await waitFor(() => noServer() === 3, 'no_server counted for it');
  t.equal(proxy.stats().connectErrors, errors, 'no connect tried');

  const s = net.connect({ port: portOf(proxy, 'raw'), host: '127.0.0.1' });
  t.teardown(() => s.destroy());
  let bytes = 0;
  s.on('data', (d: Buffer) => (bytes += d.length));
  await once(s, 'connect');
  const how = await Promise.race([peerDone(s), new Promise<string>((r) => setTimeout(() => r('still open after 5 s'), 5000).unref())]);
  t.ok(how === 'end' || how === 'close', `TCP: the proxy closes the connection (${how})`);
  t.equal(bytes, 0, 'having sent nothing');
  s.destroy();
  await waitFor(() => noServer() === 4, 'no_server counted for the TCP client');
  t.equal(proxy.stats().connectErrors, errors, 'no connect tried');
});
