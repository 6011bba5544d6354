// Failures on one side end that pair cleanly, are counted, and leave other connections alone.
import t from 'tap';
import type net from 'node:net';
import { start } from '../../dist/index.js';
import { closed, connect, peerDone, deadPort, echoServer, readBytes, serve, waitFor } from '../helpers/net.js';

t.test('backend refusing: the client is closed without a byte, and the refusal is counted', async (t) => {
  const port = await deadPort();
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${port}`, workers: 1, logLevel: 'silent' });
  t.teardown(() => proxy.close(0));
  for (let i = 1; i <= 3; i++) {
    const c = await connect(proxy.port);
    let bytes = 0;
    c.on('data', (d) => (bytes += d.length));
    const done = peerDone(c);
    c.write('anyone there?');
    // FIN, or RST when the kernel closes a socket with our unread bytes in it: either way, closed.
    await done;
    c.destroy();
    t.equal(bytes, 0, `client ${i} got no bytes`);
    t.equal(proxy.stats().connectErrors, i);
  }
  await waitFor(() => proxy.stats().active === 0, 'no pair left');
});

t.test('client reset mid-transfer: the backend side is closed, other connections carry on', async (t) => {
  const chunk = Buffer.alloc(1 << 20, 7);
  const backendClosed: Promise<unknown>[] = [];
  const streamer = await serve((s) => {
    backendClosed.push(closed(s));
    const pump = () => {
      while (s.writable && s.write(chunk));
    };
    s.on('drain', pump);
    pump();
  });
  const echo = await echoServer();
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${streamer.port}`, workers: 1, logLevel: 'silent' });
  const other = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${echo.port}`, workers: 1 });
  t.teardown(async () => {
    await proxy.close(0);
    await other.close(0);
    await streamer.close();
    await echo.close();
  });

  // A bystander on the same streaming proxy, and one on another proxy instance.
  const bystander = await connect(proxy.port);
  bystander.on('error', () => {});
  const e = await connect(other.port);

  const c = await connect(proxy.port);
  await readBytes(c, 4 << 20); // mid-transfer
  c.resetAndDestroy();
  await waitFor(() => backendClosed.length === 2, 'both backend connections');
  await backendClosed[1];
  await waitFor(() => proxy.stats().active === 1, 'the reset pair to close (the bystander stays)');
  t.ok(proxy.stats().ioErrors >= 1, 'the reset was counted');

  // The bystander is still being served, and so is the other proxy.
  const more = await readBytes(bystander, 2 << 20);
  t.ok(more.length >= 2 << 20, 'the bystander still receives');
  e.write('still fine');
  t.equal((await readBytes(e, 10)).toString(), 'still fine');
  bystander.destroy();
  e.destroy();
});

t.test('backend reset: the client sees a reset (RST), not a clean end', async (t) => {
  let server: net.Socket | null = null;
  const backend = await serve((s) => (server = s));
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${backend.port}`, workers: 1, logLevel: 'silent' });
  t.teardown(async () => {
    await proxy.close(0);
    await backend.close();
  });
  const c = await connect(proxy.port);
  await waitFor(() => server !== null, 'the backend connection');
  server!.write('partial');
  await readBytes(c, 7);
  const err = new Promise<NodeJS.ErrnoException | null>((r) => {
    c.once('error', (e) => r(e));
    c.once('end', () => r(null));
  });
  server!.resetAndDestroy();
  const e = await err;
  t.equal(e?.code, 'ECONNRESET', 'the abort was passed on as a reset');
  await waitFor(() => proxy.stats().active === 0, 'the pair to close');
});
