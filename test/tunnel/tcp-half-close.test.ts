// Half-close is passed on with shutdown(SHUT_WR): a side that sent FIN can still receive, in both directions.
import t from 'tap';
import { once } from 'node:events';
import type net from 'node:net';
import { start } from '../../dist/index.js';
import { connect, readBytes, serve, waitFor } from '../helpers/net.js';

/** Collects what a socket receives until its peer's FIN. */
function collect(s: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    s.on('data', (d) => (text += d));
    s.once('end', () => resolve(text));
    s.once('error', reject);
  });
}

t.test('client half-closes first: the backend sees EOF, then still answers', async (t) => {
  const backend = await serve((s) => {
    // Answer only after the request's FIN arrived, as a "read the whole request" server does.
    void collect(s).then((req) => s.end(`got ${req.length} bytes: ${req}`));
  });
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${backend.port}`, workers: 1 });
  t.teardown(async () => {
    await proxy.close(0);
    await backend.close();
  });
  const c = await connect(proxy.port);
  const reply = collect(c);
  c.end('request body');
  t.equal(await reply, 'got 12 bytes: request body', 'the reply came after the client FIN, then the backend FIN');
  await once(c, 'close');
  await waitFor(() => proxy.stats().active === 0, 'the pair to close once both sides sent FIN');
  t.equal(proxy.stats().ioErrors, 0);
});

t.test('backend half-closes first: the client sees EOF, then can still send', async (t) => {
  let backendGot: Promise<string> | null = null;
  const backend = await serve((s) => {
    backendGot = collect(s);
    s.end('greeting, then FIN');
  });
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${backend.port}`, workers: 1 });
  t.teardown(async () => {
    await proxy.close(0);
    await backend.close();
  });
  const c = await connect(proxy.port);
  t.equal(await collect(c), 'greeting, then FIN', 'the client got the data and the FIN');
  c.end('sent after the backend FIN');
  await waitFor(() => backendGot !== null, 'the backend connection');
  t.equal(await backendGot!, 'sent after the backend FIN', 'the backend received bytes after its own FIN');
  await waitFor(() => proxy.stats().active === 0, 'the pair to close');
});

t.test('a half-closed pair stays open while the other direction still flows', async (t) => {
  let server: net.Socket | null = null;
  const backend = await serve((s) => (server = s));
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${backend.port}`, workers: 1 });
  t.teardown(async () => {
    await proxy.close(0);
    await backend.close();
  });
  const c = await connect(proxy.port);
  await waitFor(() => server !== null, 'the backend connection');
  const ended = once(server!, 'end');
  c.end();
  await ended;
  for (let i = 0; i < 3; i++) {
    server!.write(`chunk ${i};`);
    t.equal((await readBytes(c, 8)).toString(), `chunk ${i};`);
  }
  t.equal(proxy.stats().active, 1, 'still open: only one direction is done');
  server!.end();
  await once(c, 'end');
  await waitFor(() => proxy.stats().active === 0, 'the pair to close');
});
