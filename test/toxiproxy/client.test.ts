// The toxiproxy server driven by a real client, toxiproxy-node-client (npm), as a test suite would drive
// toxiproxy-server: proxies created, read, listed, populated, disabled and enabled (the listen kept; the
// listener and live connections closed while disabled), removed; toxics of every type added with every
// attribute echoed, read, updated (merged) and removed; reset; the version; bytes through a proxy to a
// real echo server. Toxics' effects on bytes are the engine's tests, not these.
import t from 'tap';
import net from 'node:net';
import { Toxiproxy } from 'toxiproxy-node-client';
import { toxiproxy } from '../../dist/index.js';
import { TOXIC_ATTRIBUTES, HTTP_TOXIC_TYPES, TOXIC_TYPES } from '../../dist/route/index.js';
import { connect, echoServer, peerDone, readBytes } from '../helpers/net.js';

const server = await toxiproxy({ port: 0, logLevel: 'silent' });
t.teardown(() => server.close());
const echo = await echoServer();
t.teardown(() => echo.close());
const client = new Toxiproxy(server.url);
const upstream = `localhost:${echo.port}`;

/** Host and port of a listen as the server returns it (`127.0.0.1:41234`). */
function hostPort(listen: string): [string, number] {
  const at = listen.lastIndexOf(':');
  return [listen.slice(0, at), Number(listen.slice(at + 1))];
}

/** `p`'s value, or undefined when it has not settled within `ms` (a wait that fails the test, never hangs it). */
function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

async function roundTrip(listen: string, text: string): Promise<string> {
  const [host, port] = hostPort(listen);
  const s = await connect(port, host);
  try {
    s.write(text);
    return (await readBytes(s, Buffer.byteLength(text))).toString();
  } finally {
    s.destroy();
  }
}

/** The error code of a connect to `listen`, or 'connected'. */
function tryConnect(listen: string): Promise<string> {
  const [host, port] = hostPort(listen);
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? String(e)));
  });
}

t.test('createProxy, get, getAll, a byte round trip, remove', async (t) => {
  const p = await client.createProxy({ name: 'rt', listen: 'localhost:0', upstream });
  t.match(p.listen, /^127\.0\.0\.1:\d+$/, 'localhost:0 comes back as the address bound');
  t.not(hostPort(p.listen)[1], 0, 'with a real port');
  t.equal(p.enabled, true, 'enabled by default');
  t.equal(p.upstream, upstream, 'the upstream as given');
  t.equal(await roundTrip(p.listen, 'hello through toxiproxy'), 'hello through toxiproxy', 'bytes go to the echo server and back');

  const got = await client.get('rt');
  t.same(got.toJson(), p.toJson(), 'get returns the same proxy');
  const all = await client.getAll();
  t.ok(all.rt, 'getAll lists it by name');
  t.equal(all.rt.listen, p.listen);

  await p.remove();
  await t.rejects(client.get('rt'), { message: 'Request failed with status code 404' }, 'gone after remove');
  t.equal(await tryConnect(p.listen), 'ECONNREFUSED', 'and its listener is closed');
});

t.test('disable closes the listener and every live connection; enable and reset bind the same address again', async (t) => {
  const p = await client.createProxy({ name: 'toggle', listen: '127.0.0.1:0', upstream });
  t.teardown(() => p.remove().catch(() => {}));
  const [host, port] = hostPort(p.listen);
  const live = await connect(port, host);
  t.teardown(() => live.destroy());
  live.write('ping');
  t.equal((await readBytes(live, 4)).toString(), 'ping', 'a live connection');
  const ended = peerDone(live);

  const off = await p.update({ enabled: false } as any);
  t.equal(off.enabled, false, 'disabled');
  t.equal(off.listen, p.listen, 'the listen is kept while disabled');
  t.ok(await within(ended, 10_000), 'the live connection was closed by the disable');
  t.equal(await tryConnect(p.listen), 'ECONNREFUSED', 'a new connection is refused while disabled');
  await p.addToxic({ type: 'latency', attributes: { latency: 5 } } as any);
  t.equal((await client.get('toggle')).listen, p.listen, 'a toxic can be added while disabled');

  const on = await p.update({ enabled: true } as any);
  t.equal(on.enabled, true, 'enabled again');
  t.equal(on.listen, p.listen, 'on the same address and port');
  t.equal(await roundTrip(on.listen, 'back'), 'back', 'and it proxies');
  t.equal((await p.getToxic('latency_downstream')).name, 'latency_downstream', 'its toxics were kept');

  await p.update({ enabled: false } as any);
  await client.reset();
  const after = await client.get('toggle');
  t.equal(after.enabled, true, 'reset enables every proxy');
  t.equal(after.listen, p.listen, 'on the same address');
  await t.rejects(p.getToxic('latency_downstream'), { message: 'Request failed with status code 404' }, 'reset removes every toxic');
});

t.test('addToxic of every type echoes every attribute (0 or "" where none was given); getToxic, update merges, remove', async (t) => {
  const tcp = await client.createProxy({ name: 'tox', listen: '127.0.0.1:0', upstream });
  t.teardown(() => tcp.remove().catch(() => {}));
  const http = await client.createProxy({ name: 'toxhttp', listen: '127.0.0.1:0', upstream, mode: 'http' } as any);
  t.teardown(() => http.remove().catch(() => {}));
  for (const type of TOXIC_TYPES) {
    const on = HTTP_TOXIC_TYPES.includes(type) ? http : tcp;
    const toxic = await on.addToxic({ type } as any);
    const attrs = TOXIC_ATTRIBUTES[type] as readonly string[];
    const zeros = Object.fromEntries(attrs.map((k) => [k, k === 'body' || k === 'path' ? '' : 0]));
    t.strictSame(toxic.toJson(), { attributes: zeros, name: `${type}_downstream`, stream: 'downstream', toxicity: 1, type }, `${type}: defaults`);
    t.strictSame((await on.getToxic(toxic.name)).toJson(), toxic.toJson(), `${type}: getToxic`);
  }

  const lat = await tcp.addToxic({ name: 'slow', type: 'latency', stream: 'upstream', toxicity: 0.5, attributes: { latency: 100, jitter: 10 } });
  t.strictSame(lat.toJson(), { attributes: { latency: 100, jitter: 10 }, name: 'slow', stream: 'upstream', toxicity: 0.5, type: 'latency' });
  const merged = await lat.update({ attributes: { jitter: 3 } } as any);
  t.strictSame(merged.attributes, { latency: 100, jitter: 3 }, 'an update merges the attributes');
  t.equal(merged.toxicity, 0.5, 'and keeps the toxicity it does not give');
  const again = await lat.update({ toxicity: 1 } as any);
  t.strictSame(again.attributes, { latency: 100, jitter: 3 }, 'a toxicity alone keeps the attributes');
  t.equal(again.toxicity, 1);
  await lat.remove();
  await t.rejects(tcp.getToxic('slow'), { message: 'Request failed with status code 404' }, 'removed');
  await t.rejects(tcp.addToxic({ type: 'latency' } as any), { message: 'Request failed with status code 409' }, 'a name in use is 409');
  await t.rejects(tcp.addToxic({ type: 'http_error' } as any), { message: 'Request failed with status code 400' }, 'an HTTP toxic on a TCP proxy is 400');
});

t.test('populate: new ones created, an identical one kept with its toxics and connections, a changed one replaced', async (t) => {
  const other = await echoServer();
  t.teardown(() => other.close());
  const kept = await client.createProxy({ name: 'pop-kept', listen: 'localhost:0', upstream });
  const changed = await client.createProxy({ name: 'pop-changed', listen: '127.0.0.1:0', upstream });
  t.teardown(async () => {
    for (const n of ['pop-kept', 'pop-changed', 'pop-new']) await client.get(n).then((p) => p.remove(), () => {});
  });
  await kept.addToxic({ type: 'noop', name: 'marker' } as any);
  await changed.addToxic({ type: 'noop', name: 'lost' } as any);
  const [host, port] = hostPort(kept.listen);
  const live = await connect(port, host);
  t.teardown(() => live.destroy());

  const result = await client.populate([
    { name: 'pop-kept', listen: kept.listen.replace('127.0.0.1', 'localhost'), upstream },
    { name: 'pop-changed', listen: '127.0.0.1:0', upstream: `127.0.0.1:${other.port}` },
    { name: 'pop-new', listen: '127.0.0.1:0', upstream },
  ]);
  t.same(Object.keys(result).sort(), ['pop-changed', 'pop-kept', 'pop-new'], 'every item comes back');
  t.equal(result['pop-kept'].listen, kept.listen, 'the identical one keeps its address');
  t.equal((await kept.getToxic('marker')).type, 'noop', 'and its toxics');
  live.write('still');
  t.equal((await readBytes(live, 5)).toString(), 'still', 'and its live connection');
  t.equal(result['pop-changed'].upstream, `127.0.0.1:${other.port}`, 'the changed one has its new upstream');
  await t.rejects(changed.getToxic('lost'), { message: 'Request failed with status code 404' }, 'and lost its toxics (a new proxy)');
  t.equal(await roundTrip(result['pop-new'].listen, 'new'), 'new', 'the new one proxies');
  t.match(result['pop-new'].listen, /^127\.0\.0\.1:[1-9]\d*$/);
});

t.test('getVersion: JSON with a semver of 2.6.0 or later', async (t) => {
  const v = await client.getVersion();
  t.equal(v, '{"version": "2.12.0"}\n');
  t.equal(JSON.parse(v).version, '2.12.0');
});
