// TCP mode's deadlines: a backend connect that never finishes, and a tunnel in which nothing moves.
import t, { type Test } from 'tap';
import { once } from 'node:events';
import net from 'node:net';
import { start } from '../../dist/index.js';
import { listenSocket, localAddress, close as closeFd, type Address } from '../../dist/sys/index.js';
import { connect, echoServer, peerDone, readBytes, serve, waitFor } from '../helpers/net.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A loopback listener that never accepts, with its accept queue already full: the kernel drops further
 * SYNs, so a connect to it stays in SYN_SENT (retrying) until whoever started it gives up.
 */
async function blackHole(t: Test): Promise<number> {
  const fd = listenSocket({ family: 'ipv4', host: '127.0.0.1', port: 0 } as Address, { backlog: 0, reusePort: false });
  const { port } = localAddress(fd) as { port: number };
  // Connect until one connect hangs (backlog 0 admits one connection, but the kernel decides): from then on
  // the queue is full.
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 8; i++) {
    const f = net.connect({ port, host: '127.0.0.1' });
    f.on('error', () => {});
    fillers.push(f);
    const done = await Promise.race([once(f, 'connect').then(() => true), sleep(300).then(() => false)]);
    if (!done) break;
  }
  t.teardown(() => {
    for (const f of fillers) f.destroy();
    closeFd(fd);
  });
  return port;
}

/** A client of the proxy on `port`, and whether the proxy has closed it yet. */
async function watched(port: number): Promise<{ c: net.Socket; ended: () => boolean }> {
  const c = await connect(port);
  let done = false;
  void peerDone(c).then(() => (done = true));
  return { c, ended: () => done };
}

t.test('a backend connect that does not finish: the client is closed at the connect deadline, counted', async (t) => {
  const port = await blackHole(t);
  const proxy = await start({
    listen: '127.0.0.1:0',
    backend: `127.0.0.1:${port}`,
    workers: 1,
    logLevel: 'silent',
    backendTimeoutMs: 300,
  });
  t.teardown(() => proxy.close(0));
  const began = Date.now();
  const c = await connect(proxy.port);
  let bytes = 0;
  c.on('data', (d) => (bytes += d.length));
  c.write('hello?');
  await peerDone(c);
  c.destroy();
  const took = Date.now() - began;
  t.ok(took >= 300, `not before the deadline (${took} ms)`);
  t.ok(took < 5000, `long before the kernel's own connect timeout (${took} ms)`);
  t.equal(bytes, 0, 'no bytes to the client');
  t.equal(proxy.stats().connectErrors, 1, 'counted as a connect error');
  await waitFor(() => proxy.stats().active === 0, 'the pair released');
});

t.test('a tunnel with nothing moving is closed; one that moves, even one way or slowly, is not', async (t) => {
  const echo = await echoServer();
  // Takes everything, says nothing: an upload with no reply.
  const sink = await serve((s) => s.resume());
  // Sends 32 MiB as fast as its client takes it.
  const big = Buffer.alloc(32 << 20, 9);
  const source = await serve((s) => s.end(big));
  const proxyOf = async (backend: number, tunnelTimeoutMs: number) => {
    const p = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${backend}`, workers: 1, logLevel: 'silent', tunnelTimeoutMs });
    t.teardown(() => p.close(0));
    return p;
  };
  t.teardown(async () => {
    await echo.close();
    await sink.close();
    await source.close();
  });

  await t.test('quiet both ways: closed after the deadline, not before', async (t) => {
    const proxy = await proxyOf(echo.port, 400);
    const c = await connect(proxy.port);
    const done = peerDone(c);
    c.write('ping');
    t.equal((await readBytes(c, 4)).toString(), 'ping');
    const quietFrom = Date.now();
    await done;
    const quiet = Date.now() - quietFrom;
    c.destroy();
    t.ok(quiet >= 350, `closed after ${quiet} ms of quiet (deadline 400, kept to 100 ms ticks)`);
    t.ok(quiet < 3000, `and not long after (${quiet} ms)`);
    await waitFor(() => proxy.stats().active === 0, 'the pair released');
    t.equal(proxy.stats().ioErrors, 0, 'an idle close is not an I/O error');
  });

  await t.test('each read moves the deadline on: a chatty client stays for many deadlines', async (t) => {
    const proxy = await proxyOf(echo.port, 400);
    const { c, ended } = await watched(proxy.port);
    for (let i = 0; i < 12 && !ended(); i++) {
      c.write(`m${i % 10}`);
      t.equal((await readBytes(c, 2)).toString(), `m${i % 10}`);
      await sleep(150);
    }
    t.notOk(ended(), 'open after 12 exchanges 150 ms apart (1.8 s, deadline 400 ms)');
    c.destroy();
  });

  await t.test('bytes one way only (an upload with no reply) keep it open', async (t) => {
    const proxy = await proxyOf(sink.port, 400);
    const { c, ended } = await watched(proxy.port);
    for (let i = 0; i < 12; i++) {
      c.write('x'.repeat(1000));
      await sleep(150);
    }
    t.notOk(ended(), 'open while the client kept sending and the backend said nothing');
    await waitFor(() => proxy.stats().bytesIn === 12_000, 'every byte forwarded');
    c.destroy();
  });

  await t.test('a slow but steady reader is not cut off while the proxy holds bytes for it', async (t) => {
    const proxy = await proxyOf(source.port, 300);
    const { c, ended } = await watched(proxy.port);
    let got = 0;
    let window = 0;
    // At most 512 KiB every 50 ms: 32 MiB takes about 3 s, ten deadlines, far more than the kernel's
    // socket buffers hold, so the proxy spends most of it blocked on this client, then resumed by it.
    c.on('data', (d: Buffer) => {
      got += d.length;
      window += d.length;
      if (window >= 512 << 10) c.pause();
    });
    const until = Date.now() + 20_000;
    while (got < big.length && !ended() && Date.now() < until) {
      await sleep(50);
      window = 0;
      c.resume();
    }
    await waitFor(ended, 'the end of the stream');
    t.equal(got, big.length, 'every byte arrived');
    c.destroy();
  });

  await t.test('--tunnel-timeout 0: no deadline', async (t) => {
    const proxy = await proxyOf(echo.port, 0);
    const { c, ended } = await watched(proxy.port);
    c.write('ping');
    t.equal((await readBytes(c, 4)).toString(), 'ping');
    await sleep(800);
    t.notOk(ended(), 'open after 800 ms of quiet');
    c.write('again');
    t.equal((await readBytes(c, 5)).toString(), 'again', 'and still proxying');
    c.destroy();
  });
});
