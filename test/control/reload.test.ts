// Changes at run time: a reload (SIGHUP, or the library's reload/addFrontend/removeFrontend/setServers)
// starts new frontends, stops removed ones, applies new servers to new connections, keeps every unchanged
// listener and every live connection, and a config with a problem changes nothing.
import t from 'tap';
import { once } from 'node:events';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { start, ConfigError, SysError } from '../../dist/index.js';
import { connect, echoServer, readBytes, runCli, serve, startCli, waitFor } from '../helpers/net.js';

/** A server that sends `name` on every connection, then echoes. */
function named(name: string) {
  return serve((s) => {
    s.write(name);
    s.pipe(s);
  });
}

/** Connects and reads the server's name. */
async function hello(port: number): Promise<{ c: net.Socket; name: string }> {
  const c = await connect(port);
  const name = (await readBytes(c, 1)).toString();
  return { c, name };
}

/** Whether a connect to `port` is refused. */
async function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

t.test('library: addFrontend, removeFrontend and setServers while a connection stays open and keeps working', async (t) => {
  const a = await named('a');
  const b = await named('b');
  const proxy = await start({
    workers: 2,
    logLevel: 'silent',
    config: { frontends: [{ name: 'one', listen: '127.0.0.1:0', backend: 'x' }], backends: [{ name: 'x', servers: [`127.0.0.1:${a.port}`] }] },
  });
  t.teardown(async () => {
    await proxy.close(0);
    await a.close();
    await b.close();
  });
  const held = await hello(proxy.port);
  t.equal(held.name, 'a');

  const two = await proxy.addFrontend({ name: 'two', listen: '127.0.0.1:0', backend: 'x' });
  t.not(two.family, 'unix');
  const port2 = two.family === 'unix' ? 0 : two.port;
  t.same(proxy.listening().map((l) => l.name), ['one', 'two']);
  const viaTwo = await hello(port2);
  t.equal(viaTwo.name, 'a', 'the new frontend serves');
  viaTwo.c.destroy();

  await proxy.setServers('x', [`127.0.0.1:${b.port}`]);
  const after = await hello(proxy.port);
  t.equal(after.name, 'b', 'a new connection goes to the new server');
  after.c.destroy();

  await proxy.removeFrontend('two');
  t.ok(await refused(port2), 'a removed frontend refuses new connections');
  t.same(proxy.listening().map((l) => l.name), ['one']);

  // The connection made before all this is still with server a, both ways.
  held.c.write('still here');
  t.equal((await readBytes(held.c, 10)).toString(), 'still here', 'the old connection still works');
  held.c.destroy();
  t.equal(proxy.stats().terminations.stopped, 0, 'no connection was cut');
});

t.test('library: a config with a problem, or a port in use, throws and changes nothing', async (t) => {
  const echo = await echoServer();
  const taken = net.createServer().listen(0, '127.0.0.1');
  await once(taken, 'listening');
  const takenPort = (taken.address() as net.AddressInfo).port;
  const doc = { frontends: [{ name: 'one', listen: '127.0.0.1:0', backend: 'x' }], backends: [{ name: 'x', servers: [`127.0.0.1:${echo.port}`] }] };
  const proxy = await start({ workers: 1, logLevel: 'silent', config: doc });
  t.teardown(async () => {
    await proxy.close(0);
    await echo.close();
    taken.close();
  });
  const bad = await proxy.reload({ ...doc, backends: [{ name: 'x', servers: ['127.0.0.1:99999'] }] }).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(bad instanceof ConfigError, 'a ConfigError');
  t.match((bad as ConfigError).problems[0], /backends\[0\]\.servers\[0\]: "127\.0\.0\.1:99999"/);
  const busy = await proxy
    .reload({ ...doc, frontends: [...doc.frontends, { name: 'two', listen: `127.0.0.1:${takenPort}`, backend: 'x' }] })
    .then(
      () => null,
      (e: unknown) => e,
    );
  t.ok(busy instanceof SysError && busy.errnoName === 'EADDRINUSE', 'a port in use: EADDRINUSE');
  t.same(proxy.listening().map((l) => l.name), ['one'], 'nothing changed');
  const c = await connect(proxy.port);
  c.write('ok?');
  t.equal((await readBytes(c, 3)).toString(), 'ok?', 'and it still serves');
  c.destroy();
});

t.test('CLI: SIGHUP adds and removes frontends from the file while a connection on another stays open', async (t) => {
  const a = await named('a');
  const dir = mkdtempSync(join(tmpdir(), 'ffip-reload-'));
  const file = join(dir, 'proxy.yaml');
  const spare = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const yaml = (frontends: string) => `workers: 1\nbackends:\n  - name: x\n    servers: [ "127.0.0.1:${a.port}" ]\nfrontends:\n${frontends}`;
  const one = `  - { name: one, listen: "127.0.0.1:0", backend: x }\n`;
  const two = `  - { name: two, listen: "127.0.0.1:${spare}", backend: x }\n`;
  writeFileSync(file, yaml(one + two));
  const run = await startCli(['--config', file]);
  t.teardown(async () => {
    run.child.kill('SIGKILL');
    await a.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const port1 = Number(/frontend one: listening on 127\.0\.0\.1:(\d+)/.exec(run.stdout())![1]);
  t.match(run.stdout(), new RegExp(`frontend two: listening on 127\\.0\\.0\\.1:${spare}`));
  const held = await hello(port1);
  t.equal((await hello(spare)).name, 'a', 'frontend two serves');

  // Two goes, three comes.
  const three = `  - { name: three, listen: "127.0.0.1:0", backend: x }\n`;
  writeFileSync(file, yaml(one + three));
  run.child.kill('SIGHUP');
  await waitFor(() => /proxy\.yaml reloaded/.test(run.stderr()), 'the reload');
  t.match(run.stderr(), /reloaded: 2 frontend\(s\) \(1 new, 1 taken out\), 1 backend\(s\)/);
  t.ok(await refused(spare), 'frontend two no longer accepts');

  // A broken file changes nothing, and says why.
  writeFileSync(file, yaml(one + `  - { name: four, listen: "127.0.0.1:0", backend: nosuch }\n`));
  run.child.kill('SIGHUP');
  await waitFor(() => /not reloaded, nothing changed/.test(run.stderr()), 'the refusal');
  t.match(run.stderr(), /proxy\.yaml:\d+: frontends\[1\]\.backend: no backend named "nosuch"/);
  t.equal((await hello(port1)).name, 'a', 'frontend one still serves');

  held.c.write('still');
  t.equal((await readBytes(held.c, 5)).toString(), 'still', 'the connection from before both reloads still works');
  held.c.destroy();
  t.equal(run.child.exitCode, null, 'and the proxy runs on');
});

t.test('CLI: check prints what would run, or each problem with its line, exit 2', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ffip-check-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.yaml');
  writeFileSync(good, 'frontends:\n  - { name: web, listen: "127.0.0.1:8080", mode: http, backend: app }\nbackends:\n  - { name: app, servers: [ "127.0.0.1:9001" ] }\n');
  const ok = await runCli(['check', '--config', good]);
  t.equal(ok.code, 0);
  t.match(ok.stdout, /frontend web: listen 127\.0\.0\.1:8080, http, backend app/);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'frontends:\n  - { name: web, listen: "127.0.0.1:8080", backend: app, lisen: x }\nbackends:\n  - name: app\n    servers: [ "127.0.0.1:99999" ]\n');
  const r = await runCli(['check', '--config', bad]);
  t.equal(r.code, 2);
  const lines = r.stderr.trim().split('\n');
  t.equal(lines.length, 2, 'one line per problem');
  t.match(lines[0], /^ffi-proxy: .*bad\.yaml:2: frontends\[0\]\.lisen: /);
  t.match(lines[1], /^ffi-proxy: .*bad\.yaml:5: backends\[0\]\.servers\[0\]: "127\.0\.0\.1:99999" is not a valid address/);
  const startBad = await runCli(['start', '--config', bad]);
  t.equal(startBad.code, 2, 'start refuses it too, in one line');
  t.equal(startBad.stderr.trim().split('\n').length, 1);
  t.match(startBad.stderr, /\(and 1 more: ffi-proxy check --config /);
  const stray = await runCli(['start', '--config', good, '--listen', '127.0.0.1:1']);
  t.equal(stray.code, 2);
  t.match(stray.stderr, /--listen cannot be given with --config/);
});

t.test('CLI: a --processes fleet runs a config file, and SIGHUP reaches every process', async (t) => {
  const a = await named('a');
  const dir = mkdtempSync(join(tmpdir(), 'ffip-fleet-reload-'));
  const file = join(dir, 'fleet.yaml');
  const doc = (frontends: string) => `workers: 1\nprocesses: 2\nbackends:\n  - { name: x, servers: [ "127.0.0.1:${a.port}" ] }\nfrontends:\n${frontends}`;
  writeFileSync(file, doc(`  - { name: one, listen: "127.0.0.1:0", backend: x }\n`));
  const run = await startCli(['--config', file]);
  t.teardown(async () => {
    run.child.kill('SIGKILL');
    await a.close();
    rmSync(dir, { recursive: true, force: true });
  });
  t.match(run.stdout(), /running .*fleet\.yaml \(2 processes × 1 worker\(s\)/);
  const port1 = Number(/frontend one: listening on 127\.0\.0\.1:(\d+)/.exec(run.stdout())![1]);
  const held = await hello(port1);
  writeFileSync(file, doc(`  - { name: one, listen: "127.0.0.1:0", backend: x }\n  - { name: two, listen: "127.0.0.1:0", backend: x }\n`));
  run.child.kill('SIGHUP');
  await waitFor(() => /fleet\.yaml reloaded/.test(run.stderr()), 'the reload');
  t.equal(run.stderr().match(/reloaded: 2 frontend\(s\) \(1 new, 0 taken out\)/g)?.length, 2, 'each process reloaded');
  t.equal((await hello(port1)).name, 'a', 'frontend one still serves');
  held.c.write('x');
  t.equal((await readBytes(held.c, 1)).toString(), 'x', 'and its connection from before');
  held.c.destroy();
});

t.test('library: no connection to an unchanged frontend is refused while reloads come and go', async (t) => {
  const a = await named('a');
  const proxy = await start({
    workers: 2,
    logLevel: 'silent',
    config: { frontends: [{ name: 'one', listen: '127.0.0.1:0', backend: 'x' }], backends: [{ name: 'x', servers: [`127.0.0.1:${a.port}`] }] },
  });
  t.teardown(async () => {
    await proxy.close(0);
    await a.close();
  });
  let stop = false;
  let served = 0;
  let failed = 0;
  const load = (async () => {
    while (!stop) {
      try {
        const { c, name } = await hello(proxy.port);
        c.destroy();
        if (name === 'a') served++;
        else failed++;
      } catch {
        failed++;
      }
    }
  })();
  for (let i = 0; i < 10; i++) {
    await proxy.addFrontend({ name: `extra${i}`, listen: '127.0.0.1:0', backend: 'x' });
    await proxy.setServers('x', [`127.0.0.1:${a.port}`, { address: `127.0.0.1:${a.port}`, name: `copy${i}` }]);
    await proxy.removeFrontend(`extra${i}`);
  }
  stop = true;
  await load;
  t.ok(served > 0, `connections were made throughout (${served})`);
  t.equal(failed, 0, 'none was refused or cut');
});
