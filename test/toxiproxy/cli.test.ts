// `ffi-proxy toxiproxy` as a script would start toxiproxy-server: its single-dash flags, port 0 printed as
// the port bound, a -config file populated before the API answers, a bad one refused, a clean exit on
// SIGTERM, -version.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, echoServer, runCli, waitFor } from '../helpers/net.js';

const dir = await mkdtemp(join(tmpdir(), 'ffip-toxiproxy-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

/** Starts `ffi-proxy toxiproxy ARGS`; resolves once it prints where its API listens. */
async function startToxiproxy(t: Test, args: string[]): Promise<{ url: string; stop(): Promise<number | null>; stdout(): string }> {
  const child = spawn(process.execPath, [CLI, 'toxiproxy', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  process.once('exit', () => child.kill('SIGKILL'));
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  await waitFor(() => /API on (http:\/\/\S+)/.test(out) || child.exitCode !== null, 'the banner');
  const m = /API on (http:\/\/\S+)/.exec(out);
  if (!m) throw new Error(`ffi-proxy toxiproxy did not start: ${err}`);
  return {
    url: m[1],
    stdout: () => out,
    async stop() {
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      return code as number | null;
    },
  };
}

t.test('-port 0 -host 127.0.0.1: the port bound is printed; the API answers; SIGTERM exits 0', async (t) => {
  const s = await startToxiproxy(t, ['-port', '0', '-host', '127.0.0.1', '-seed', '42', '-log-level', 'warn']);
  t.match(s.url, /^http:\/\/127\.0\.0\.1:[1-9]\d*$/, 'a real port');
  const v = await fetch(`${s.url}/version`);
  t.equal(await v.text(), '{"version": "2.12.0"}\n');
  t.equal(await s.stop(), 0, 'a clean exit');
});

t.test('-config FILE: its proxies (and their toxics) exist before the API answers', async (t) => {
  const echo = await echoServer();
  t.teardown(() => echo.close());
  const file = join(dir, 'toxiproxy.json');
  await writeFile(
    file,
    JSON.stringify([
      { name: 'redis', listen: '127.0.0.1:0', upstream: `localhost:${echo.port}`, toxics: [{ type: 'latency', attributes: { latency: 50 } }] },
      { name: 'off', listen: 'localhost:0', upstream: 'db:5432', enabled: false },
    ]),
  );
  const s = await startToxiproxy(t, [`-config=${file}`, '-port=0', '-host', '127.0.0.1']);
  const all = (await (await fetch(`${s.url}/proxies`)).json()) as any;
  t.same(Object.keys(all), ['off', 'redis']);
  t.match(all.redis.listen, /^127\.0\.0\.1:[1-9]\d*$/);
  t.equal(all.redis.toxics[0].name, 'latency_downstream', "the file's toxics");
  t.equal(all.off.enabled, false);
  t.equal(all.off.listen, 'localhost:0', 'a disabled proxy keeps its listen as written');
  t.equal(await s.stop(), 0);
});

t.test('a bad config is an error (toxiproxy-server would only log it); flags of start are refused', async (t) => {
  const notJson = join(dir, 'bad.json');
  await writeFile(notJson, '[{"name": "x",');
  const a = await runCli(['toxiproxy', '-port', '0', '-config', notJson]);
  t.equal(a.code, 2);
  t.match(a.stderr, `ffi-proxy: ${notJson}: not JSON: `);
  const obj = join(dir, 'object.json');
  await writeFile(obj, '{"name": "x", "upstream": "localhost:1"}');
  const b = await runCli(['toxiproxy', '-port', '0', '-config', obj]);
  t.equal(b.code, 2);
  t.match(b.stderr, 'must be a JSON list of proxies as POST /populate takes them');
  const missing = join(dir, 'missing.json');
  await writeFile(missing, '[{"name": "x", "upstream": "localhost:1"}, {"upstream": "localhost:2"}]');
  const c = await runCli(['toxiproxy', '-port', '0', '-config', missing]);
  t.equal(c.code, 2);
  t.match(c.stderr, `ffi-proxy: ${missing}: missing required field: name at proxy 2`);
  const d = await runCli(['toxiproxy', '-port', '0', '-config', join(dir, 'nope.json')]);
  t.equal(d.code, 2);
  t.match(d.stderr, 'cannot read: ENOENT');
  const e = await runCli(['toxiproxy', '-port', '0', '--listen', '127.0.0.1:1']);
  t.equal(e.code, 2);
  t.match(e.stderr, '--listen is not a toxiproxy flag');
  const f = await runCli(['start', '--port', '1']);
  t.equal(f.code, 2);
  t.match(f.stderr, '--port is for ffi-proxy toxiproxy');
});

t.test('-version prints as toxiproxy-server does', async (t) => {
  const r = await runCli(['toxiproxy', '-version']);
  t.equal(r.code, 0);
  t.match(r.stdout, /^toxiproxy-server version 2\.12\.0 \(ffi-proxy \d+\.\d+\.\d+\)\n$/);
});
