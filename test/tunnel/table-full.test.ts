// A full connection table refuses the new connection (closed at accept, counted, logged at a bounded rate)
// and leaves the connections it holds alone.
import t from 'tap';
import { start } from '../../dist/index.js';
import { connect, echoServer, peerDone, readBytes, waitFor } from '../helpers/net.js';

t.test('table full: the extra connection is closed and counted, the open one keeps working', async (t) => {
  const backend = await echoServer();
  const proxy = await start({
    listen: '127.0.0.1:0',
    backend: `127.0.0.1:${backend.port}`,
    workers: 1,
    maxConnections: 1,
    logLevel: 'silent',
  });
  t.teardown(async () => {
    await proxy.close(0);
    await backend.close();
  });
  t.equal(proxy.capacityPerWorker, 1);
  const a = await connect(proxy.port);
  a.write('first');
  t.equal((await readBytes(a, 5)).toString(), 'first');

  for (let i = 1; i <= 3; i++) {
    const b = await connect(proxy.port);
    let bytes = 0;
    b.on('data', (d) => (bytes += d.length));
    b.write('second');
    await peerDone(b);
    b.destroy();
    t.equal(bytes, 0, `refused connection ${i} got nothing`);
    t.equal(proxy.stats().refusedFull, i);
  }
  a.write('still here');
  t.equal((await readBytes(a, 10)).toString(), 'still here', 'the held connection is unharmed');
  a.destroy();
  await waitFor(() => proxy.stats().active === 0, 'the pair to close');
  // With the slot free again, a new connection is served.
  const c = await connect(proxy.port);
  c.write('third');
  t.equal((await readBytes(c, 5)).toString(), 'third');
  c.destroy();
});
