// No API call waits on a connection: toxiproxy-server's calls wait for every live connection to take a
// change, and hang behind a stalled one (its issues #412, #558: 25 s, then 503). Here a connection is
// stalled on purpose (a client that reads nothing, behind a slow toxic holding a full lane), and every call
// that touches its proxy still answers, and does what it says.
import t from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { toxiproxy } from '../../dist/index.js';
import { serve } from '../helpers/net.js';

t.test('toxics added, changed and removed, and the proxy deleted, beside a stalled connection', async (t) => {
  const big = await serve((s) => s.on('data', () => s.write(Buffer.alloc(4 << 20, 1))));
  t.teardown(() => big.close());
  const server = await toxiproxy({ port: 0, logLevel: 'silent' });
  t.teardown(() => server.close());
  const call = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${server.url}${path}`, { method, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
    return r.status;
  };
  const p: any = await (await fetch(`${server.url}/proxies`, { method: 'POST', body: JSON.stringify({ name: 'p', listen: '127.0.0.1:0', upstream: `127.0.0.1:${big.port}` }) })).json();
  t.equal(await call('POST', '/proxies/p/toxics', { name: 'slow', type: 'bandwidth', attributes: { rate: 1 } }), 200);
  const port = Number(String(p.listen).split(':')[1]);
  const s = net.connect(port, '127.0.0.1');
  await once(s, 'connect');
  s.pause(); // reads nothing: the proxy's send queue to it fills, and its lane with it
  s.write('go');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(await call('POST', '/proxies/p/toxics/slow', { attributes: { rate: 2 } }), 200, 'a toxic updated');
  t.equal(await call('POST', '/proxies/p/toxics', { type: 'latency', attributes: { latency: 1000 } }), 200, 'a toxic added');
  t.equal(await call('DELETE', '/proxies/p/toxics/slow'), 204, 'a toxic removed');
  t.equal(await call('POST', '/proxies/p', { enabled: false }), 200, 'the proxy disabled');
  const closed = once(s, 'close');
  s.resume();
  await closed;
  t.pass('and its stalled connection closed');
  t.equal(await call('DELETE', '/proxies/p'), 204, 'the proxy deleted');
});
