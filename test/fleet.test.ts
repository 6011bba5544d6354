// --processes: several proxy processes on one port, supervised by the parent. Real processes, a real
// backend, real signals: connections spread over the children, a killed child is logged and replaced while
// the others keep serving, SIGTERM drains every child, and a fleet never outlives its parent.
import t from 'tap';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import net from 'node:net';
import { readdirSync, readlinkSync, readFileSync } from 'node:fs';
import { connect, readResponse, runCli, startCli, waitFor, type CliRun } from './helpers/net.js';

/** A backend answering `/slow` after 600 ms and anything else at once. */
async function backend(): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const answer = () => res.end(`ok ${req.url}`);
    if (req.url === '/slow') setTimeout(answer, 600);
    else answer();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** The pids of a process's children, from /proc. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // The ppid is the second field after the parenthesised command name.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Socket fds a process holds. */
function sockets(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/** One keep-alive request on an open socket; resolves with the response's raw bytes once its body is in. */
async function request(s: net.Socket, path: string): Promise<string> {
  const answer = readResponse(s);
  s.write(`GET ${path} HTTP/1.1\r\nHost: t\r\n\r\n`);
  return (await answer).raw;
}

async function fleet(t: { teardown(fn: () => void): void }, args: string[]): Promise<CliRun & { children: number[] }> {
  const run = await startCli(args);
  t.teardown(() => {
    run.child.kill('SIGKILL');
  });
  const children = childrenOf(run.child.pid!);
  return { ...run, children };
}

t.test('connections spread over the processes; a killed process is replaced; SIGTERM drains them all', async (t) => {
  const be = await backend();
  t.teardown(() => be.server.close());
  const f = await fleet(t, ['--processes', '3', '--workers', '1', '--mode', 'http', '--backend', `127.0.0.1:${be.port}`]);
  t.match(f.stdout(), /3 processes × 1 worker\(s\)/, 'the banner says the shape');
  t.equal(f.children.length, 3, 'three children');

  // 60 connections held open at once, each answered.
  const before = f.children.map(sockets);
  const held: net.Socket[] = [];
  for (let i = 0; i < 60; i++) held.push(await connect(f.port));
  const answers = await Promise.all(held.map((s, i) => request(s, `/held${i}`)));
  answers.forEach((a, i) => t.match(a, new RegExp(`^HTTP/1.1 200 [\\s\\S]*ok /held${i}$`), `held connection ${i} answered`));
  const gained = f.children.map((pid, i) => sockets(pid) - before[i]);
  t.ok(gained.filter((n) => n > 0).length >= 2, `connections in more than one process (sockets gained: ${gained})`);
  for (const s of held) s.destroy();

  // Kill one: the parent says so and starts another; the others never stop serving.
  const victim = f.children[1];
  process.kill(victim, 'SIGKILL');
  await waitFor(() => /process 1 \(pid \d+\) died \(SIGKILL\)/.test(f.stderr()), 'the death in the log');
  await waitFor(() => /process 1 restarted \(pid (\d+)\)/.test(f.stderr()), 'the restart in the log');
  const now = childrenOf(f.child.pid!);
  t.equal(now.length, 3, 'three children again');
  t.notOk(now.includes(victim), 'the killed one is gone');
  for (let i = 0; i < 30; i++) {
    const s = await connect(f.port);
    t.match(await request(s, `/after${i}`), / 200 /, `request ${i} after the restart`);
    s.destroy();
  }

  // SIGTERM with a request in flight: it is answered, then every process exits and the parent exits 0.
  const slow = await connect(f.port);
  const answer = request(slow, '/slow');
  await new Promise((r) => setTimeout(r, 150));
  f.child.kill('SIGTERM');
  t.match(await answer, /^HTTP\/1.1 200 [\s\S]*ok \/slow$/, 'the request in flight is answered during the drain');
  const [code] = await once(f.child, 'exit');
  t.equal(code, 0, 'the parent exits 0');
  t.ok(now.every((pid) => !alive(pid)), 'every child has exited');
});

t.test('a fleet does not outlive its parent', async (t) => {
  const f = await fleet(t, ['--processes', '2', '--workers', '1']);
  t.equal(f.children.length, 2);
  f.child.kill('SIGKILL');
  await waitFor(() => f.children.every((pid) => !alive(pid)), 'the children to exit after their parent died');
  t.pass('both children exited by themselves');
});

t.test('TCP mode works the same way', async (t) => {
  const f = await fleet(t, ['--processes', '2', '--workers', '1', '--mode', 'tcp']);
  const s = await connect(f.port);
  t.match(await request(s, '/tcp'), /^HTTP\/1.1 200 [\s\S]*demo backend/, 'the demo backend answers through TCP mode');
  s.destroy();
});

t.test('bad --processes values and a port in use: one line each', async (t) => {
  for (const [v, why] of [
    ['0', /processes must be a whole number from 1 to 64, not 0/],
    ['65', /processes must be a whole number from 1 to 64/],
    ['two', /processes must be a number/],
  ] as const) {
    const r = await runCli(['start', '--processes', v]);
    t.equal(r.code, 2, `exit 2 for --processes ${v}`);
    t.match(r.stderr, why);
    t.equal(r.stderr.trim().split('\n').length, 1);
  }
  const taken = net.createServer().listen(0, '127.0.0.1');
  await once(taken, 'listening');
  t.teardown(() => taken.close());
  const port = (taken.address() as net.AddressInfo).port;
  const r = await runCli(['start', '--processes', '2', '--listen', `127.0.0.1:${port}`]);
  t.equal(r.code, 1, 'exit 1 when the port is taken');
  t.match(r.stderr, new RegExp(`listen 127.0.0.1:${port}: EADDRINUSE`));
  t.equal(r.stderr.trim().split('\n').length, 1);
});
