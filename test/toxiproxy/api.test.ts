// The toxiproxy server's HTTP API over raw requests: every status and message of toxiproxy-server 2.12
// (docs/toxiproxy.md), Go's lenient JSON (keys of any case, unknown keys, null), the router's own answers
// (404 page, 405, 301, the browser block), hostile values refused or taken without harm, HTTP mode, toxics
// in populate, and /metrics counting while a connection is still open.
import t, { type Test } from 'tap';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { toxiproxy } from '../../dist/index.js';
import { connect, echoServer, peerDone, readBytes } from '../helpers/net.js';

const server = await toxiproxy({ port: 0, logLevel: 'silent' });
t.teardown(() => server.close());
const echo = await echoServer();
t.teardown(() => echo.close());
const upstream = `127.0.0.1:${echo.port}`;
const base = server.url;

type Reply = { status: number; type: string; text: string; json: any };

/** One request; `body` a value is sent as JSON, a string as it is. */
async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const a = server.address;
  if (a.family === 'unix') throw new Error('not TCP');
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: a.host, port: a.port, method, path, headers: { 'User-Agent': 'test', ...headers }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let json: any = null;
        try {
          json = text === '' ? null : JSON.parse(text);
        } catch {
          json = null;
        }
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), text, json });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Asserts an error reply: its status, and the body `{"error": message, "status": status}`. */
function isError(t: Test, r: Reply, status: number, message: string | RegExp, what: string): void {
  t.equal(r.status, status, `${what}: ${status}`);
  t.match(r.json, { error: message, status }, `${what}: the error`);
}

function hostPort(listen: string): [string, number] {
  const at = listen.lastIndexOf(':');
  return [listen.slice(0, at), Number(listen.slice(at + 1))];
}

async function freshProxy(t: Test, name: string, extra: Record<string, unknown> = {}): Promise<any> {
  const r = await api('POST', '/proxies', { name, listen: '127.0.0.1:0', upstream, ...extra });
  t.equal(r.status, 201, `${name} created`);
  t.teardown(() => api('DELETE', `/proxies/${name}`));
  return r.json;
}

t.test('proxy errors: bad bodies, missing fields, a name in use, a port in use, a bad listen', async (t) => {
  isError(t, await api('POST', '/proxies', ''), 400, 'bad request body: EOF', 'empty body');
  isError(t, await api('POST', '/proxies', '{"name":'), 400, /^bad request body: /, 'not JSON');
  isError(t, await api('POST', '/proxies', '[]'), 400, /^bad request body: json: cannot unmarshal array/, 'a list');
  isError(t, await api('POST', '/proxies', { name: 5, upstream }), 400, /^bad request body: json: cannot unmarshal number 5 into Go struct field Proxy\.name of type string$/, 'a number for a name');
  isError(t, await api('POST', '/proxies', { name: 'x', upstream, enabled: 'yes' }), 400, /cannot unmarshal string into Go struct field Proxy\.enabled of type bool/, 'a string for enabled');
  isError(t, await api('POST', '/proxies', { upstream }), 400, 'missing required field: name', 'no name');
  isError(t, await api('POST', '/proxies', { name: '', upstream }), 400, 'missing required field: name', 'an empty name');
  isError(t, await api('POST', '/proxies', { name: 'x' }), 400, 'missing required field: upstream', 'no upstream');
  await freshProxy(t, 'dup');
  isError(t, await api('POST', '/proxies', { name: 'dup', upstream }), 409, 'proxy already exists', 'a name in use');

  const holder = net.createServer();
  holder.listen(0, '127.0.0.1');
  await once(holder, 'listening');
  t.teardown(() => holder.close());
  const port = (holder.address() as net.AddressInfo).port;
  const busy = await api('POST', '/proxies', { name: 'busy', listen: `127.0.0.1:${port}`, upstream });
  isError(t, busy, 500, `listen tcp 127.0.0.1:${port}: bind: address already in use`, 'a port in use');
  t.equal((await api('GET', '/proxies/busy')).status, 404, 'a proxy that could not listen is not created');
  isError(t, await api('POST', '/proxies', { name: 'p373', listen: 'local373', upstream }), 500, 'listen tcp: address local373: missing port in address', 'a listen without a port');
  const stored = await api('POST', '/proxies', { name: 'stored', listen: 'local373', upstream, enabled: false });
  t.equal(stored.status, 201, 'a disabled proxy is stored without binding');
  t.equal(stored.json.listen, 'local373', 'with its listen as given');
  isError(t, await api('POST', '/proxies/stored', { enabled: true }), 500, 'listen tcp: address local373: missing port in address', 'enabling it fails');
  t.equal((await api('GET', '/proxies/stored')).json.enabled, false, 'and it stays disabled');
  t.equal((await api('DELETE', '/proxies/stored')).status, 204, 'deleted');
});

t.test('not found, toxic errors in their order, and a name unique over both directions', async (t) => {
  isError(t, await api('GET', '/proxies/nope'), 404, 'proxy not found', 'GET an unknown proxy');
  isError(t, await api('PATCH', '/proxies/nope', { enabled: false }), 404, 'proxy not found', 'update');
  isError(t, await api('DELETE', '/proxies/nope'), 404, 'proxy not found', 'delete');
  isError(t, await api('GET', '/proxies/nope/toxics'), 404, 'proxy not found', 'its toxics');
  isError(t, await api('POST', '/proxies/nope/toxics', ''), 404, 'proxy not found', 'a toxic on it (before the body is read)');
  isError(t, await api('GET', '/proxies/nope/toxics/x'), 404, 'proxy not found', 'a toxic of it');
  await freshProxy(t, 'terr');
  isError(t, await api('POST', '/proxies/terr/toxics', ''), 400, 'bad request body: EOF', 'an empty toxic body');
  isError(t, await api('POST', '/proxies/terr/toxics', { type: 'latency', stream: 'sideways' }), 400, 'stream was invalid, can be either upstream or downstream', 'a bad stream');
  isError(t, await api('POST', '/proxies/terr/toxics', { type: 'latency', stream: '' }), 400, 'stream was invalid, can be either upstream or downstream', 'an empty stream');
  isError(t, await api('POST', '/proxies/terr/toxics', { type: 'down', stream: 'nope' }), 400, /^stream was invalid/, 'the stream is checked before the type');
  isError(t, await api('POST', '/proxies/terr/toxics', { type: 'down' }), 400, 'invalid toxic type', 'an unknown type');
  isError(t, await api('POST', '/proxies/terr/toxics', { attributes: {} }), 400, 'invalid toxic type', 'no type');
  const up = await api('POST', '/proxies/terr/toxics', { name: 'same', type: 'latency', stream: 'upstream' });
  t.equal(up.status, 200, 'a toxic is created with 200');
  isError(t, await api('POST', '/proxies/terr/toxics', { name: 'same', type: 'bandwidth', stream: 'downstream' }), 409, 'toxic already exists', 'the same name on the other direction');
  isError(t, await api('GET', '/proxies/terr/toxics/nope'), 404, 'toxic not found', 'an unknown toxic');
  isError(t, await api('PATCH', '/proxies/terr/toxics/nope', { toxicity: 1 }), 404, 'toxic not found', 'update it');
  isError(t, await api('DELETE', '/proxies/terr/toxics/nope'), 404, 'toxic not found', 'delete it');
  isError(t, await api('POST', '/proxies/terr/toxics/same', '{'), 400, /^bad request body: /, 'an update that is not JSON');
  t.equal((await api('DELETE', '/proxies/terr/toxics/same')).status, 204, 'a toxic is deleted with 204');
});

t.test("Go's JSON: keys of any case, unknown keys ignored, null is the default; an update merges", async (t) => {
  const r = await api('POST', '/proxies', { NAME: 'ci', Listen: '127.0.0.1:0', UpStream: upstream, Enabled: null, Logger: {}, toxics: [{ type: 'latency' }], frobnicate: 1 });
  t.equal(r.status, 201);
  t.teardown(() => api('DELETE', '/proxies/ci'));
  t.equal(r.json.name, 'ci', 'Name read whatever its case');
  t.equal(r.json.upstream, upstream);
  t.equal(r.json.enabled, true, 'enabled: null is enabled');
  t.strictSame(r.json.toxics, [], "toxics in a proxy body are ignored (only populate reads them)");
  t.match(r.type, /^application\/json/);

  const tx = await api('POST', '/proxies/ci/toxics', { Type: 'latency', Stream: 'UpStream', Attributes: { LATENCY: 100, colour: 'red' }, Toxicity: null, enabled: false });
  t.equal(tx.status, 200);
  t.strictSame(tx.json, { attributes: { latency: 100, jitter: 0 }, name: 'latency_UpStream', type: 'latency', stream: 'UpStream', toxicity: 1 }, 'the stream echoed as given, and in the default name');
  const u = await api('PATCH', '/proxies/ci/toxics/latency_UpStream', { attributes: { Jitter: 7, latency: null }, name: 'ignored', type: 'bandwidth' });
  t.strictSame(u.json, { attributes: { latency: 100, jitter: 7 }, name: 'latency_UpStream', type: 'latency', stream: 'UpStream', toxicity: 1 }, 'merged; name and type cannot change');
  const dn = await api('POST', '/proxies/ci/toxics', { type: 'bandwidth', attributes: null });
  t.equal(dn.json.name, 'bandwidth_downstream', 'downstream by default; attributes: null is fine');
  const list = await api('GET', '/proxies/ci/toxics');
  t.same(list.json.map((x: any) => x.name), ['latency_UpStream', 'bandwidth_downstream'], 'upstream toxics first');
  const renamed = await api('POST', '/proxies/ci', { name: 'other', enabled: true });
  t.equal(renamed.json.name, 'ci', 'an update ignores name');
});

t.test('values: whole numbers for integer attributes; hostile values taken or refused without harm', async (t) => {
  const p = await freshProxy(t, 'hostile');
  const add = (body: unknown) => api('POST', '/proxies/hostile/toxics', body);
  isError(t, await add({ type: 'latency', attributes: { latency: 1.5 } }), 400, /^bad request body: json: cannot unmarshal number 1\.5 into Go struct field latency\.latency of type int64$/, 'a fraction');
  isError(t, await add({ type: 'latency', attributes: { latency: '100' } }), 400, /cannot unmarshal string into Go struct field latency\.latency of type int64/, 'a string');
  isError(t, await add({ type: 'latency', attributes: { latency: 1e300 } }), 400, /cannot unmarshal number 1e\+300/, 'beyond an int64');
  isError(t, await add({ type: 'latency', toxicity: 'all' }), 400, /of type float32/, 'a string toxicity');
  isError(t, await add({ type: 'latency', attributes: [1] }), 400, /cannot unmarshal array/, 'attributes as a list');
  const taken: [string, unknown][] = [
    ['slicer_zero', { type: 'slicer', attributes: { average_size: 0, size_variation: 10 } }],
    ['slicer_wide', { type: 'slicer', attributes: { average_size: 1, size_variation: 9007199254740991, delay: -1 } }],
    ['negative', { type: 'latency', attributes: { latency: -100, jitter: -5 } }],
    ['huge', { type: 'bandwidth', attributes: { rate: 9007199254740991 } }],
    ['tox5', { type: 'limit_data', toxicity: 5, attributes: { bytes: -1 } }],
    ['toxneg', { type: 'timeout', toxicity: -1, attributes: { timeout: -1 } }],
    ['reset', { type: 'reset_peer', attributes: { timeout: 2147483648000 } }],
  ];
  for (const [name, body] of taken) {
    const r = await add({ name, ...(body as object) });
    t.equal(r.status, 200, `${name}: taken`);
  }
  t.equal((await api('GET', '/proxies/hostile/toxics/tox5')).json.toxicity, 5, 'toxicity 5 is echoed (it applies always)');
  t.equal((await api('GET', '/proxies/hostile/toxics/negative')).json.attributes.latency, -100, 'a negative latency is echoed');
  const v = await api('GET', '/version');
  t.equal(v.status, 200, 'the server still answers');
  t.equal((await api('GET', '/proxies/hostile')).json.toxics.length, taken.length, 'every hostile toxic is listed');
  t.equal((await api('DELETE', '/proxies/hostile')).status, 204, 'and the proxy with them is deleted');
  t.match(p.listen, /^127\.0\.0\.1:\d+$/);
});

t.test('the router: 404 page, trailing slash, 405 with no body, // redirected, browsers refused, /version', async (t) => {
  const nf = await api('GET', '/not_found');
  t.equal(nf.status, 404);
  t.equal(nf.text, '404 page not found\n');
  t.equal((await api('GET', '/proxies/')).status, 404, 'no trailing-slash tolerance');
  const m = await api('DELETE', '/proxies');
  t.equal(m.status, 405, 'a known path with another method');
  t.equal(m.text, '', 'and no body');
  t.equal((await api('GET', '/reset')).status, 405, 'GET /reset');
  t.equal((await api('HEAD', '/version')).status, 405, 'HEAD where only GET is');
  const r = await api('GET', '//proxies');
  t.equal(r.status, 301, '//proxies is cleaned');
  const b = await api('GET', '/proxies', undefined, { 'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64)' });
  t.equal(b.status, 403, 'a browser is refused');
  t.equal(b.text, 'User agent not allowed\n');
  const v = await api('GET', '/version');
  t.equal(v.text, '{"version": "2.12.0"}\n');
  t.equal(v.type, 'application/json;charset=utf-8');
  t.equal((await api('POST', '/reset', 'anything at all')).status, 204, 'reset ignores its body');
});

t.test('update: a new listen or upstream closes connections and re-binds; delete and re-create gives a fresh proxy', async (t) => {
  const other = await echoServer();
  t.teardown(() => other.close());
  const p = await freshProxy(t, 'moving');
  const [host, port] = hostPort(p.listen);
  const a = await connect(port, host);
  t.teardown(() => a.destroy());
  const aDone = peerDone(a);
  const same = await api('PATCH', '/proxies/moving', { listen: `localhost:${port}` });
  t.equal(same.json.listen, p.listen, 'localhost:PORT is the same listen as 127.0.0.1:PORT: nothing changes');
  const moved = await api('PATCH', '/proxies/moving', { upstream: `127.0.0.1:${other.port}` });
  t.equal(moved.status, 200);
  t.equal(moved.json.upstream, `127.0.0.1:${other.port}`);
  t.equal(moved.json.listen, p.listen, 'a new upstream keeps the listen');
  t.ok(await aDone, "the old upstream's connection was closed");
  const b = await connect(port, host);
  t.teardown(() => b.destroy());
  b.write('x');
  t.equal((await readBytes(b, 1)).toString(), 'x', 'new connections go to the new upstream');
  t.equal(other.sockets.size, 1, 'which has it');

  const bDone = peerDone(b);
  t.equal((await api('DELETE', '/proxies/moving')).status, 204);
  t.ok(await bDone, 'a delete closes its connections');
  const again = await api('POST', '/proxies', { name: 'moving', listen: p.listen, upstream });
  t.equal(again.status, 201, 're-created with the same name and address');
  const c = await connect(port, host);
  t.teardown(() => c.destroy());
  c.write('fresh');
  t.equal((await readBytes(c, 5)).toString(), 'fresh', 'and it proxies to its upstream');
});

t.test('an upstream that cannot be resolved is stored; each of its connections is closed at once', async (t) => {
  // Not a name to look up: a test makes no DNS query.
  const p = await freshProxy(t, 'nowhere', { upstream: 'no such host' });
  t.equal(p.upstream, 'no such host', 'stored as given');
  const [host, port] = hostPort(p.listen);
  const s = await connect(port, host);
  t.teardown(() => s.destroy());
  t.ok(await peerDone(s), 'the client is closed');
  const zero = await freshProxy(t, 'portzero', { upstream: '127.0.0.1:0' });
  t.equal(zero.enabled, true, 'port 0 too: the API call does not fail');
});

t.test('HTTP mode: HTTP toxics on HTTP proxies only', async (t) => {
  await freshProxy(t, 'plain');
  isError(t, await api('POST', '/proxies/plain/toxics', { type: 'http_error', attributes: { status: 503 } }), 400, 'toxic type http_error acts on HTTP requests: it needs mode http (this is tcp)', 'on a TCP proxy');
  isError(t, await api('POST', '/proxies', { name: 'm', upstream, mode: 'udp' }), 400, 'mode must be tcp or http, not "udp"', 'an unknown mode');
  const web = await freshProxy(t, 'web', { mode: 'http' });
  t.equal(web.mode, 'http');
  const e = await api('POST', '/proxies/web/toxics', { type: 'http_error', attributes: { status: 503, body: 'down', path: '/api' } });
  t.strictSame(e.json, { attributes: { status: 503, body: 'down', path: '/api' }, name: 'http_error_downstream', type: 'http_error', stream: 'downstream', toxicity: 1 });
  isError(t, await api('POST', '/proxies/web/toxics', { type: 'http_head_delay', attributes: { path: 7 } }), 400, /into Go struct field http_head_delay\.path of type string/, 'a number for a path');
  isError(t, await api('PATCH', '/proxies/web', { mode: 'tcp' }), 400, /needs mode http/, 'tcp mode while an HTTP toxic is on it');
  const be = http.createServer((req, res) => res.end(`hi ${req.url}`));
  be.listen(0, '127.0.0.1');
  await once(be, 'listening');
  t.teardown(() => be.close());
  const site = await freshProxy(t, 'site', { mode: 'http', upstream: `localhost:${(be.address() as net.AddressInfo).port}` });
  const res = await fetch(`http://${site.listen}/x`);
  t.equal(await res.text(), 'hi /x', 'an HTTP proxy proxies requests');
});

t.test('populate: checks every item first; toxics in items; an empty one; an object refused', async (t) => {
  t.teardown(async () => {
    for (const n of ['pa', 'pb']) await api('DELETE', `/proxies/${n}`);
  });
  const bad = await api('POST', '/populate', [{ name: 'pa', upstream }, { listen: '127.0.0.1:0', upstream }]);
  isError(t, bad, 400, 'missing required field: name at proxy 2', 'an item without a name');
  t.strictSame(bad.json.proxies, [], 'with the proxies made: none');
  t.equal((await api('GET', '/proxies/pa')).status, 404, 'nothing changed');
  isError(t, await api('POST', '/populate', [{ name: 'pa' }]), 400, 'missing required field: upstream at proxy 1', 'an item without an upstream');
  isError(t, await api('POST', '/populate', [{ name: 'pa', upstream, toxics: [{ type: 'nope' }] }]), 400, 'invalid toxic type at proxy 1', 'a bad toxic');
  isError(t, await api('POST', '/populate', { name: 'pa', upstream }), 400, /^bad request body: json: cannot unmarshal object/, 'an object');
  const empty = await api('POST', '/populate', []);
  t.equal(empty.status, 201);
  t.strictSame(empty.json, { proxies: [] }, 'an empty list gives an empty list');

  const ok = await api('POST', '/populate', [
    { name: 'pa', listen: '127.0.0.1:0', upstream, toxics: [{ type: 'latency', attributes: { latency: 10 } }, { name: 'cut', type: 'limit_data', stream: 'upstream' }] },
    { name: 'pb', listen: '127.0.0.1:0', upstream, enabled: false },
  ]);
  t.equal(ok.status, 201);
  t.same(ok.json.proxies.map((p: any) => [p.name, p.enabled]), [['pa', true], ['pb', false]], 'in order, enabled as said');
  t.same(ok.json.proxies[0].toxics.map((x: any) => x.name), ['cut', 'latency_downstream'], "an item's toxics are created");
  const again = await api('POST', '/populate', [{ name: 'pa', listen: ok.json.proxies[0].listen, upstream }]);
  t.equal(again.json.proxies[0].toxics.length, 2, 'the same item again keeps the proxy and its toxics');
  const cleared = await api('POST', '/populate', [{ name: 'pa', listen: '127.0.0.1:0', upstream, toxics: [] }]);
  t.equal(cleared.json.proxies[0].listen, ok.json.proxies[0].listen, 'port 0 is any port: the proxy stays where it is');
  t.strictSame(cleared.json.proxies[0].toxics, [], 'and an item with toxics sets them');
});

t.test('/metrics: Prometheus text whose byte counters move while a connection is open', async (t) => {
  const p = await freshProxy(t, 'counted');
  const [host, port] = hostPort(p.listen);
  const s = await connect(port, host);
  t.teardown(() => s.destroy());
  const read = async () => {
    const r = await api('GET', '/metrics');
    t.equal(r.status, 200);
    t.match(r.type, /^text\/plain/);
    const values = new Map<string, number>();
    for (const line of r.text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const m = /^([a-z_]+)\{([^}]*)\} (\d+)$/.exec(line);
      t.ok(m, `a sample line: ${line}`);
      if (m && m[2].includes('proxy="counted"')) values.set(`${m[1]} ${/direction="(\w+)"/.exec(m[2])![1]}`, Number(m[3]));
    }
    return values;
  };
  // The worker counts bytes right after its send returns, so a client can read them a moment before the
  // count moves: read again until it has (a second at most).
  const settled = async (key: string, want: number) => {
    let v = await read();
    for (let i = 0; i < 50 && v.get(key) !== want; i++) {
      await new Promise((r) => setTimeout(r, 20));
      v = await read();
    }
    return v;
  };
  s.write('12345');
  await readBytes(s, 5);
  const first = await settled('toxiproxy_proxy_sent_bytes_total downstream', 5);
  t.equal(first.get('toxiproxy_proxy_received_bytes_total upstream'), 5, 'received from the client, before it closes');
  t.equal(first.get('toxiproxy_proxy_sent_bytes_total downstream'), 5, 'sent to the client');
  s.write('678');
  await readBytes(s, 3);
  const second = await settled('toxiproxy_proxy_received_bytes_total downstream', 8);
  t.equal(second.get('toxiproxy_proxy_received_bytes_total upstream'), 8, 'and they move on');
  t.equal(second.get('toxiproxy_proxy_received_bytes_total downstream'), 8);
  const r = await api('GET', '/metrics');
  t.match(r.text, `toxiproxy_proxy_received_bytes_total{direction="upstream",listener="${p.listen}",proxy="counted",upstream="${upstream}"} 8`, "Toxiproxy's labels");
});

t.test('proxies created and deleted, disabled and enabled, many more times than there are frontend indices', async (t) => {
  // Each start takes a frontend index; a retired one (every connection of it closed) is given again, so a
  // long test suite never runs out of the 1024.
  for (let i = 0; i < 1100; i++) {
    const r = await api('POST', '/proxies', { name: 'churn', listen: '127.0.0.1:0', upstream });
    if (r.status !== 201) {
      t.fail(`create ${i}: ${r.status} ${r.text}`);
      return;
    }
    if (i % 2 === 0) {
      await api('POST', '/proxies/churn', { enabled: false });
      await api('POST', '/proxies/churn', { enabled: true });
    }
    await api('DELETE', '/proxies/churn');
  }
  const p = await freshProxy(t, 'after-churn');
  const [host, port] = hostPort(p.listen);
  const s = await connect(port, host);
  s.write('still works');
  t.equal((await readBytes(s, 11)).toString(), 'still works');
  s.destroy();
  const m = await api('GET', '/metrics');
  t.match(m.text, /toxiproxy_proxy_sent_bytes_total\{[^}]*proxy="after-churn"[^}]*\} 11/, 'its counters start from 0');
});
