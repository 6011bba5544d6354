// 64 MiB of random bytes each way at the same time, with splice on, off and auto: what arrives has the
// sha256 of what was sent, in both directions, and nothing is left held by the proxy afterwards.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { start } from '../../dist/index.js';
import { connect, hashUntilEnd, serve, sha256, waitFor, writeAll } from '../helpers/net.js';

const SIZE = 64 * 1024 * 1024;
const up = randomBytes(SIZE);
const down = randomBytes(SIZE);
const upSha = sha256(up);
const downSha = sha256(down);

for (const splice of ['off', 'on', 'auto'] as const) {
  t.test(`64 MiB each way, splice ${splice}`, async (t) => {
    let received: Promise<{ sha: string; bytes: number }> | null = null;
    const backend = await serve((s) => {
      received = hashUntilEnd(s);
      void writeAll(s, down);
    });
    const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${backend.port}`, workers: 1, splice });
    t.teardown(async () => {
      await proxy.close(0);
      await backend.close();
    });
    const c = await connect(proxy.port);
    const back = hashUntilEnd(c);
    await writeAll(c, up);
    const got = await back;
    await waitFor(() => received !== null, 'the backend connection');
    const sent = await received!;
    t.equal(sent.bytes, SIZE, 'backend received every byte');
    t.equal(sent.sha, upSha, 'client -> backend sha256 matches');
    t.equal(got.bytes, SIZE, 'client received every byte');
    t.equal(got.sha, downSha, 'backend -> client sha256 matches');
    await waitFor(() => proxy.stats().active === 0, 'the pair to close after both FINs');
    const s = proxy.stats();
    t.equal(s.bytesIn, SIZE);
    t.equal(s.bytesOut, SIZE);
    t.equal(s.buffers + s.pipes, 0, 'every buffer and pipe went back to its pool');
    if (splice === 'off') t.equal(s.pipesOpen, 0, 'splice off never opens a pipe');
    else t.ok(s.pipesOpen > 0, 'splice moved bytes through pooled pipes');
  });
}
