// A port already in use is an error, whoever holds it: another ffi-proxy's SO_REUSEPORT listeners too,
// which a second ffi-proxy used to join without a word (the kernel then split new connections between the
// two). Joining on purpose is the one exception, and it is asked for: `join` / `--join`.
import t from 'tap';
import { start, ProxyError, SysError } from '../../dist/index.js';
import { connect, echoServer, readBytes, runCli, startCli, waitFor } from '../helpers/net.js';

t.test('library: a second start() on a port another proxy holds fails with EADDRINUSE, in both modes', async (t) => {
  const echo = await echoServer();
  const first = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${echo.port}`, workers: 2 });
  t.teardown(async () => {
    await first.close(0);
    await echo.close();
  });
  for (const mode of ['tcp', 'http'] as const) {
    const e = await start({ listen: `127.0.0.1:${first.port}`, backend: `127.0.0.1:${echo.port}`, mode, workers: 1 }).then(
      () => null,
      (err: unknown) => err,
    );
    t.ok(e instanceof ProxyError, `${mode}: a ProxyError`);
    t.ok(e instanceof SysError && e.errnoName === 'EADDRINUSE', `${mode}: EADDRINUSE`);
    t.equal((e as Error).message, `listen 127.0.0.1:${first.port}: EADDRINUSE (address already in use)`);
  }
  // The first proxy is untouched and still gets every connection.
  for (let i = 0; i < 6; i++) {
    const c = await connect(first.port);
    c.write('x');
    t.equal((await readBytes(c, 1)).toString(), 'x');
    c.destroy();
  }
  await waitFor(() => first.stats().active === 0, 'the connections to end');
  t.equal(first.stats().accepted, 6, 'all six reached the first proxy');
});

t.test('library: join: true listens beside the proxy that holds the port, and the kernel spreads connections', async (t) => {
  const echo = await echoServer();
  const first = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${echo.port}`, workers: 1 });
  const second = await start({ listen: `127.0.0.1:${first.port}`, backend: `127.0.0.1:${echo.port}`, workers: 1, join: true });
  t.teardown(async () => {
    await first.close(0);
    await second.close(0);
    await echo.close();
  });
  t.equal(second.port, first.port);
  for (let i = 0; i < 40; i++) {
    const c = await connect(first.port);
    c.write('y');
    await readBytes(c, 1);
    c.destroy();
  }
  await waitFor(() => first.stats().accepted + second.stats().accepted === 40, 'all forty accepted');
  t.ok(first.stats().accepted > 0 && second.stats().accepted > 0, `both got some (${first.stats().accepted} and ${second.stats().accepted})`);
});

t.test('CLI: a second ffi-proxy on a busy port says EADDRINUSE in one line and exits 1, in every mode', async (t) => {
  const run = await startCli(['--workers', '1']);
  t.teardown(() => run.child.kill('SIGKILL'));
  const line = `ffi-proxy: listen 127.0.0.1:${run.port}: EADDRINUSE (address already in use)`;
  for (const extra of [[], ['--mode', 'http'], ['--processes', '2']]) {
    const r = await runCli(['start', '--listen', `127.0.0.1:${run.port}`, '--workers', '1', ...extra]);
    t.equal(r.code, 1, `exit 1 (${extra.join(' ') || 'tcp'})`);
    t.equal(r.stderr.trim(), line, `the one line (${extra.join(' ') || 'tcp'})`);
  }
});

t.test('CLI: a port held by a --processes fleet is busy too; --join is the way to share it', async (t) => {
  const fleet = await startCli(['--workers', '1', '--processes', '2']);
  t.teardown(() => fleet.child.kill('SIGTERM'));
  const r = await runCli(['start', '--listen', `127.0.0.1:${fleet.port}`, '--workers', '1']);
  t.equal(r.code, 1);
  t.equal(r.stderr.trim(), `ffi-proxy: listen 127.0.0.1:${fleet.port}: EADDRINUSE (address already in use)`);
  const joined = await startCli(['--listen', `127.0.0.1:${fleet.port}`, '--workers', '1', '--join']);
  t.teardown(() => joined.child.kill('SIGKILL'));
  t.equal(joined.port, fleet.port, 'with --join it listens on the same port');
});
