// A client that stops reading while its backend has a lot to send: the proxy stops reading the backend
// (backpressure), so the backend stalls after a few MiB of kernel buffers and the proxy's memory stays
// flat; once the client reads again, every byte arrives. The proxy runs as its own process here so that
// its RSS is its own.
import t from 'tap';
import net from 'node:net';
import { rssOf, serve, startCli, waitFor, closed } from '../helpers/net.js';

const TOTAL = 256 << 20;
const CHUNK = Buffer.alloc(1 << 20, 0x5a);
// Loopback socket buffers on both hops come to about 9-12 MiB here (autotuned rmem/wmem); 64 MiB leaves
// room for other kernels while still failing a proxy that buffers without bound.
const STALL_BOUND = 64 << 20;
// Measured growth is about 0.1 MiB; a proxy that queued the backend's bytes would grow by the stall amount.
const RSS_BOUND = 16 << 20;

for (const splice of ['off', 'on']) {
  t.test(`slow reader, splice ${splice}: backend stalls, proxy memory stays bounded, nothing is lost`, async (t) => {
    let server: net.Socket | null = null;
    let queued = 0;
    const backend = await serve((s) => {
      server = s;
      const pump = () => {
        while (queued < TOTAL) {
          queued += CHUNK.length;
          if (!s.write(CHUNK)) return;
        }
        s.end();
      };
      s.on('drain', pump);
      pump();
    });
    const run = await startCli(['--backend', `127.0.0.1:${backend.port}`, '--workers', '1', '--splice', splice]);
    t.teardown(async () => {
      run.child.kill('SIGKILL');
      await backend.close();
    });
    const rssBefore = rssOf(run.child.pid!);
    const c = net.connect(run.port, '127.0.0.1');
    c.pause();

    // Wait until what the backend hands to its kernel stops growing.
    let last = -1;
    await waitFor(
      () => {
        const now = server ? server.bytesWritten : 0;
        const still = now > 0 && now === last;
        last = now;
        return still;
      },
      'the backend to stall',
      30_000,
    );
    t.ok(last < STALL_BOUND, `the backend stalled after ${(last / 1048576).toFixed(1)} MiB of ${TOTAL >> 20} MiB`);
    const growth = rssOf(run.child.pid!) - rssBefore;
    t.ok(growth < RSS_BOUND, `proxy RSS grew ${(growth / 1048576).toFixed(1)} MiB while stalled`);

    let got = 0;
    let bad = 0;
    c.on('data', (d: Buffer) => {
      got += d.length;
      if (!d.equals(CHUNK.subarray(0, d.length))) bad++; // every byte sent was 0x5a
    });
    const done = closed(c);
    c.resume();
    await done;
    t.equal(got, TOTAL, 'every byte arrived once the client read again');
    t.equal(bad, 0, 'no chunk differed from what was sent');
  });
}
