// TCP mode moves bytes both ways untouched: echo over IPv4, IPv6 and a unix-socket backend; 1000
// connections open at once; two workers that both take connections.
import t from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unlinkSync } from 'node:fs';
import { start } from '../../dist/index.js';
import { connect, echoServer, readBytes, waitFor } from '../helpers/net.js';

t.test('echo through the proxy, and the byte counters agree', async (t) => {
  const backend = await echoServer();
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${backend.port}`, workers: 1 });
  t.teardown(async () => {
    await proxy.close(0);
    await backend.close();
  });
  t.ok(proxy.port > 0, 'port 0 resolved to a real port');
  const c = await connect(proxy.port);
  c.write('hello, proxy');
  t.equal((await readBytes(c, 12)).toString(), 'hello, proxy');
  c.write('again');
  t.equal((await readBytes(c, 5)).toString(), 'again');
  c.end();
  await once(c, 'close');
  await waitFor(() => proxy.stats().active === 0, 'the pair to close');
  const s = proxy.stats();
  t.equal(s.accepted, 1);
  t.equal(s.bytesIn, 17);
  t.equal(s.bytesOut, 17);
  t.equal(s.buffers, 0, 'no buffer held once idle');
  t.equal(s.pipes, 0, 'no pipe held once idle');
});

t.test('IPv6 listener in front of an IPv6 backend', async (t) => {
  const backend = await echoServer('::1');
  const proxy = await start({ listen: '[::1]:0', backend: `[::1]:${backend.port}`, workers: 1 });
  t.teardown(async () => {
    await proxy.close(0);
    await backend.close();
  });
  t.equal(proxy.address.family, 'ipv6');
  const c = await connect(proxy.port, '::1');
  c.write('six');
  t.equal((await readBytes(c, 3)).toString(), 'six');
  c.destroy();
});

t.test('unix socket backend', async (t) => {
  const path = join(tmpdir(), `ffip-echo-${process.pid}.sock`);
  const srv = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => srv.listen(path, r));
  const proxy = await start({ listen: '127.0.0.1:0', backend: `unix:${path}`, workers: 1 });
  t.teardown(async () => {
    await proxy.close(0);
    srv.close();
    try {
      unlinkSync(path);
    } catch {}
  });
  const c = await connect(proxy.port);
  c.write('via unix');
  t.equal((await readBytes(c, 8)).toString(), 'via unix');
  c.destroy();
});

t.test('1000 concurrent connections each get their own bytes back', async (t) => {
  const backend = await echoServer();
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${backend.port}`, workers: 2 });
  t.teardown(async () => {
    await proxy.close(0);
    await backend.close();
  });
  const N = 1000;
  const clients: net.Socket[] = [];
  // Connect in batches so the listen backlog never overflows on this small machine.
  for (let i = 0; i < N; i += 100) {
    clients.push(...(await Promise.all(Array.from({ length: 100 }, () => connect(proxy.port)))));
  }
  const replies = await Promise.all(
    clients.map((c, i) => {
      const msg = `connection ${i} of ${N}`;
      c.write(msg);
      return readBytes(c, msg.length).then((b) => b.toString() === msg);
    }),
  );
  t.equal(replies.filter(Boolean).length, N, 'every connection got its own message back');
  t.equal(proxy.stats().active, N, 'all pairs open at once');
  t.equal(backend.sockets.size, N, 'one backend connection per client');
  for (const c of clients) c.destroy();
  await waitFor(() => proxy.stats().active === 0, 'every pair to close');
  t.equal(proxy.stats().accepted, N);
});

t.test('two workers both take connections (SO_REUSEPORT)', async (t) => {
  const backend = await echoServer();
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${backend.port}`, workers: 2 });
  t.teardown(async () => {
    await proxy.close(0);
    await backend.close();
  });
  // The kernel hashes each connection's 4-tuple to a listener: with 200 source ports, the chance that
  // one worker gets them all is 2^-199.
  for (let i = 0; i < 200; i++) {
    const c = await connect(proxy.port);
    c.write('x');
    await readBytes(c, 1);
    c.destroy();
  }
  const per = proxy.workerStats();
  t.equal(per.length, 2);
  t.ok(per[0].accepted > 0, `worker 0 accepted ${per[0].accepted}`);
  t.ok(per[1].accepted > 0, `worker 1 accepted ${per[1].accepted}`);
  t.equal(per[0].accepted + per[1].accepted, 200);
});
