// The CLI as a user runs it: one clear line and exit 2 for a bad flag or address, a named port in use, the
// demo backend when no --backend is given, and a drain on SIGTERM.
import t from 'tap';
import { once } from 'node:events';
import http, { get } from 'node:http';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { closed, connect, deadPort, echoServer, peerDone, readBytes, readResponse, runCli, startCli, waitFor } from './helpers/net.js';
import { AF, MSG, SOCK } from '../dist/sys/constants.js';
import { close, connect as connectFd, errnoName, read, send, socket } from '../dist/sys/libc.js';
import { encodeSockaddr } from '../dist/sys/sockaddr.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

t.test('--help lists every flag; --version prints the version', async (t) => {
  const help = await runCli(['start', '--help']);
  t.equal(help.code, 0);
  for (const flag of [
    '--listen',
    '--backend',
    '--mode',
    '--workers',
    '--processes',
    '--splice',
    '--drain-timeout',
    '--header-timeout',
    '--idle-timeout',
    '--backend-timeout',
    '--tunnel-timeout',
    '--max-header-size',
    '--max-body-size',
    '--forwarded-headers',
    '--accept-proxy',
    '--send-proxy',
    '--log-level',
  ]) {
    t.match(help.stdout, flag);
  }
  const v = await runCli(['--version']);
  t.equal(v.code, 0);
  t.equal(v.stdout.trim(), pkg.version);
});

t.test('bad flags and addresses: one line on stderr, exit code 2', async (t) => {
  const cases: [string[], RegExp][] = [
    [[], /say what to do/],
    [['start', '--nope'], /Unknown argument: nope/],
    [['start', '--backend', 'nope'], /bad address 'nope': expected HOST:PORT/],
    [['start', '--backend', '127.0.0.1:99999'], /port must be a number from 0 to 65535/],
    [['start', '--listen', 'unix:/tmp/x'], /listen must be HOST:PORT/],
    [['start', '--workers', '0'], /workers must be a whole number from 1/],
    [['start', '--workers', 'many'], /workers must be a number/],
    [['start', '--splice', 'maybe'], /Invalid values: Argument: splice, Given: "maybe"/],
    [['start', '--mode', 'http', '--max-header-size', '100'], /max header size must be a whole number of bytes from 1024 to 32768/],
    [['start', '--mode', 'http', '--header-timeout', '0'], /--header-timeout must be a number of seconds above 0, not 0/],
    [['start', '--tunnel-timeout', '-1'], /--tunnel-timeout must be a number of seconds of 0 or more, not -1/],
    [['start', '--backend-timeout', 'soon'], /--backend-timeout must be a number of seconds above 0, not NaN/],
    [['start', '--mode', 'smtp'], /Invalid values: Argument: mode, Given: "smtp"/],
    [['start', '--drain-timeout', '-1'], /--drain-timeout must be a number of seconds of 0 or more, not -1/],
    [['start', '--send-proxy', 'v3'], /Invalid values: Argument: send-proxy, Given: "v3"/],
    [['start', '--backend', 'no-such-host.invalid:80'], /cannot resolve 'no-such-host.invalid'/],
  ];
  for (const [args, why] of cases) {
    const r = await runCli(args);
    t.equal(r.code, 2, `exit 2 for ${args.join(' ')}`);
    t.match(r.stderr, why, args.join(' '));
    t.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}`);
    t.match(r.stderr, /^ffi-proxy: /);
  }
});

t.test('a port in use: one line naming it, non-zero exit', async (t) => {
  const holder = net.createServer();
  holder.listen(0, '127.0.0.1');
  await once(holder, 'listening');
  t.teardown(() => holder.close());
  const { port } = holder.address() as net.AddressInfo;
  const r = await runCli(['start', '--listen', `127.0.0.1:${port}`, '--backend', '127.0.0.1:1']);
  t.equal(r.code, 1);
  t.equal(r.stderr.trim(), `ffi-proxy: listen 127.0.0.1:${port}: EADDRINUSE (address already in use)`);
});

t.test('no --backend: the built-in demo backend answers through the proxy', async (t) => {
  const run = await startCli(['--workers', '1']);
  t.teardown(() => run.child.kill('SIGKILL'));
  t.match(run.stdout(), /demo backend/);
  t.match(run.stdout(), /--backend HOST:PORT/, 'says how to point it at a real backend');
  const body = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    get({ host: '127.0.0.1', port: run.port, path: '/hi' }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    }).on('error', reject);
  });
  t.equal(body.status, 200);
  t.match(body.text, /Hello from the ffi-proxy demo backend/);
  t.match(body.text, /GET \/hi/);
});

t.test('SIGTERM: stops accepting, lets the open connection finish, exits 0', async (t) => {
  const backend = await echoServer();
  t.teardown(() => backend.close());
  const run = await startCli(['--backend', `127.0.0.1:${backend.port}`, '--workers', '2', '--drain-timeout', '30']);
  t.teardown(() => run.child.kill('SIGKILL'));
  const c = await connect(run.port);
  c.write('before');
  t.equal((await readBytes(c, 6)).toString(), 'before');

  const exited = once(run.child, 'exit');
  run.child.kill('SIGTERM');
  await waitFor(() => /draining/.test(run.stderr()), 'the drain message');
  // New connections are refused once the listeners are closed.
  const refused = await new Promise<string>((resolve) => {
    const probe = net.connect(run.port, '127.0.0.1');
    probe.on('connect', () => {
      probe.destroy();
      resolve('connected');
    });
    probe.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  t.equal(refused, 'ECONNREFUSED', 'no new connections while draining');
  // The open one still works.
  c.write('during drain');
  t.equal((await readBytes(c, 12)).toString(), 'during drain');
  t.equal(run.child.exitCode, null, 'still running while a connection is open');
  c.end();
  const [code] = await exited;
  t.equal(code, 0);
});

t.test('SIGTERM with a connection that will not finish: closed at --drain-timeout, exit 0', async (t) => {
  const backend = await echoServer();
  t.teardown(() => backend.close());
  const run = await startCli(['--backend', `127.0.0.1:${backend.port}`, '--workers', '1', '--drain-timeout', '0.5']);
  t.teardown(() => run.child.kill('SIGKILL'));
  const c = await connect(run.port);
  c.write('x');
  await readBytes(c, 1);
  const gone = peerDone(c);
  const exited = once(run.child, 'exit');
  run.child.kill('SIGTERM');
  const [code] = await exited;
  t.equal(code, 0);
  t.ok(await gone, 'the lingering connection was closed');
  t.match(run.stderr(), /drain timeout: closing 1 connection/);
  c.destroy();
  await closed(c);
});

t.test('--tunnel-timeout: a quiet TCP connection is closed and the log says why', async (t) => {
  const backend = await echoServer();
  t.teardown(() => backend.close());
  const run = await startCli(['--backend', `127.0.0.1:${backend.port}`, '--workers', '1', '--tunnel-timeout', '0.3']);
  t.teardown(() => run.child.kill('SIGKILL'));
  const c = await connect(run.port);
  c.write('x');
  await readBytes(c, 1);
  t.equal(await peerDone(c), 'end', 'closed with FIN once quiet');
  c.destroy();
  await waitFor(() => /nothing moved either way for 300 ms/.test(run.stderr()), 'the log line');
  t.match(run.stderr(), /closed client 127\.0\.0\.1:\d+.*nothing moved either way for 300 ms/);
});

t.test('a low soft open-file limit is raised to the hard limit at start', async (t) => {
  const { spawn } = await import('node:child_process');
  const { CLI, waitFor: wait } = await import('./helpers/net.js');
  const child = spawn('bash', ['-c', `ulimit -Sn 1024 && exec "${process.execPath}" "${CLI}" start --listen 127.0.0.1:0 --backend 127.0.0.1:1 --workers 2`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await wait(() => /up to \d+ connections each/.test(out), 'the banner');
  const limits = readFileSync(`/proc/${child.pid}/limits`, 'utf8');
  const m = /^Max open files\s+(\d+)\s+(\d+)/m.exec(limits);
  t.ok(m, 'the child has an open-file limit');
  t.equal(m![1], m![2], `soft limit raised to the hard limit (${m![1]})`);
  const perWorker = Number(/up to (\d+) connections each/.exec(out)![1]);
  t.ok(perWorker > 1024, `capacity planned from the raised limit: ${perWorker} connections per worker`);
});

t.test('a flood of one kind of error is rate-limited in the log, and every line of it is still counted', async (t) => {
  const dead = await deadPort();
  const run = await startCli(['--backend', `127.0.0.1:${dead}`, '--workers', '1']);
  t.teardown(() => run.child.kill('SIGKILL'));
  const N = 30;
  await Promise.all(
    Array.from({ length: N }, async () => {
      const c = await connect(run.port);
      await peerDone(c);
      c.destroy();
    }),
  );
  // One line at once; later ones in that second are held back and reported with their count: by the next
  // line of the kind ("... (and K more like it ...)"), or once the second is over ("... (K like it ...)").
  const counted = () => {
    const lines = run.stderr().split('\n').filter((l) => /connect: ECONNREFUSED/.test(l));
    let n = 0;
    for (const l of lines) {
      const more = /\(and (\d+) more like it in the last second\)/.exec(l);
      const held = /\((\d+) like it in the last second\)/.exec(l);
      n += more ? 1 + Number(more[1]) : held ? Number(held[1]) : 1;
    }
    return { lines: lines.length, n };
  };
  await waitFor(() => counted().n === N, `${N} refusals accounted for in the log`, 5000);
  t.ok(counted().lines < N / 3, `a few lines for ${N} failures (${counted().lines})`);
  const refusals = run.stderr().split('\n').filter((l) => /connect: ECONNREFUSED/.test(l));
  t.ok(refusals.every((l) => /\[backend_refused\]/.test(l)), 'each line names its termination code');
});

t.test('log levels: a client error is info, a backend failure is warn', async (t) => {
  // At --log-level warn an operator sees what the backend does wrong, not every client that sends what the
  // proxy does not support (501) or a malformed request (400): those are the client's to fix.
  const backend = http.createServer((_req, res) => res.end('ok'));
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  const { port: bport } = backend.address() as net.AddressInfo;
  const run = await startCli(['--mode', 'http', '--backend', `127.0.0.1:${bport}`, '--workers', '1', '--log-level', 'warn']);
  t.teardown(() => run.child.kill('SIGKILL'));
  const ask = async (head: string): Promise<string> => {
    const c = await connect(run.port);
    c.write(head);
    const { raw } = await readResponse(c);
    c.destroy();
    return raw.split('\r\n')[0];
  };
  t.equal(await ask('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'), 'HTTP/1.1 501 Not Implemented');
  t.equal(await ask('GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'), 'HTTP/1.1 400 Bad Request');
  backend.close();
  backend.closeAllConnections();
  await once(backend, 'close');
  t.equal(await ask('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'), 'HTTP/1.1 502 Bad Gateway');
  await waitFor(() => /warn: 502: /.test(run.stderr()), 'the 502 logged at warn', 5000);
  t.notMatch(run.stderr(), /: (501|400): /, 'neither client error is logged at warn');
});

/**
 * What a client socket sees of the end of a connection, read through the kernel directly (non-blocking
 * read(2) until it returns 0 or an error): Node's net.Socket sometimes reports a reset that follows data as
 * a plain end, and this test is about which of the two the proxy sends.
 */
async function rawEnding(port: number, request: string): Promise<{ got: string; end: string }> {
  const fd = socket(AF.INET, SOCK.STREAM | SOCK.NONBLOCK | SOCK.CLOEXEC, 0);
  try {
    const sa = encodeSockaddr({ family: 'ipv4', host: '127.0.0.1', port });
    const r = connectFd(fd, sa, sa.length);
    if (r !== 0 && errnoName(r) !== 'EINPROGRESS') throw new Error(`connect: ${errnoName(r)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const req = Buffer.from(request, 'latin1');
    if (send(fd, req, req.length, MSG.NOSIGNAL) !== req.length) throw new Error('send');
    const buf = Buffer.alloc(65536);
    let got = '';
    for (const deadline = Date.now() + 5000; Date.now() < deadline; ) {
      const n = read(fd, buf, buf.length);
      if (n > 0) got += buf.toString('latin1', 0, n);
      else if (n === 0) return { got, end: 'FIN' };
      else if (errnoName(n) === 'EAGAIN') await new Promise((resolve) => setTimeout(resolve, 10));
      else return { got, end: errnoName(n) };
    }
    return { got, end: 'none within 5 s' };
  } finally {
    close(fd);
  }
}

t.test('a backend that fails after part of a response: the client is reset, and the log says cut off, not 502', async (t) => {
  const backend = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789'));
  });
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  t.teardown(() => backend.close());
  const { port: bport } = backend.address() as net.AddressInfo;
  const run = await startCli(['--mode', 'http', '--backend', `127.0.0.1:${bport}`, '--workers', '1', '--log-level', 'warn']);
  t.teardown(() => run.child.kill('SIGKILL'));
  for (let i = 0; i < 5; i++) {
    const { got, end } = await rawEnding(run.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    t.ok(got.endsWith('\r\n\r\n0123456789'), 'the part the backend sent');
    t.equal(end, 'ECONNRESET', 'then a reset, so the client cannot take the part for the whole');
  }
  await waitFor(() => /warn: closed .*: response cut off after part of it: .*backend closed before the response ended/.test(run.stderr()), 'the warn line', 5000);
  t.notMatch(run.stderr(), /: 502: /, 'no 502 is claimed');
});
