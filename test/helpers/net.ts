// Shared helpers for the tests: real servers and clients on loopback, nothing mocked.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export type TestServer = { port: number; server: net.Server; sockets: Set<net.Socket>; close(): Promise<void> };

/** A TCP server on 127.0.0.1 (or `host`) that runs `onConn` for each connection, with half-open allowed. */
export async function serve(onConn: (s: net.Socket) => void, host = '127.0.0.1'): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConn(s);
  });
  server.listen(0, host);
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    server,
    sockets,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export function echoServer(host = '127.0.0.1'): Promise<TestServer> {
  return serve((s) => s.pipe(s), host);
}

/** Connects a client with half-open allowed; rejects on error. */
export async function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  const s = net.connect({ port, host, allowHalfOpen: true });
  await once(s, 'connect');
  return s;
}

/** Reads from `s` until `n` bytes arrived (resolves with them) or the socket ends first (rejects). */
export function readBytes(s: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= n) {
        cleanup();
        resolve(Buffer.concat(chunks));
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new Error(`stream ended after ${got} of ${n} bytes`));
    };
    const cleanup = () => {
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('close', onEnd);
    };
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('close', onEnd);
  });
}

/** Everything `s` sends until it ends: its sha256 and byte count. */
export function hashUntilEnd(s: net.Socket): Promise<{ sha: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let bytes = 0;
    s.on('data', (d: Buffer) => {
      h.update(d);
      bytes += d.length;
    });
    s.once('end', () => resolve({ sha: h.digest('hex'), bytes }));
    s.once('error', reject);
  });
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Writes `data` in chunks, honouring backpressure, then ends the write side. */
export async function writeAll(s: net.Socket, data: Buffer, chunk = 1 << 20): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) {
    if (!s.write(data.subarray(off, Math.min(off + chunk, data.length)))) await once(s, 'drain');
  }
  s.end();
}

/** Resolves when `cond()` holds, polling; rejects after `ms` with `what` so a failure says what it waited for. */
export async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A loopback port that nothing listens on (bound, then closed). */
export async function deadPort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export type CliRun = { child: ChildProcess; port: number; stdout: () => string; stderr: () => string };

/**
 * Starts `ffi-proxy start ARGS` as a child process, on a free port unless ARGS say --listen (or --config); resolves once its
 * banner says where.
 */
export async function startCli(args: string[]): Promise<CliRun> {
  const listen = args.includes('--listen') || args.includes('--config') ? [] : ['--listen', '127.0.0.1:0'];
  const child = spawn(process.execPath, [CLI, 'start', ...listen, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  // However this test process ends (a timeout included), the proxy it started ends with it.
  process.once('exit', () => child.kill('SIGKILL'));
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  await waitFor(() => /listening on 127\.0\.0\.1:(\d+)/.test(out) || child.exitCode !== null, 'the CLI banner');
  const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
  if (!m) throw new Error(`ffi-proxy did not start: ${err}`);
  return { child, port: Number(m[1]), stdout: () => out, stderr: () => err };
}

/** Runs the CLI to completion (for argument errors): exit code and output. */
export async function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const [code] = await once(child, 'exit');
  return { code, stdout, stderr };
}

/** Resident set size of a process, in bytes, from /proc. */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * Resolves when `s` has closed, by error or not, with the error code if there was one. (events.once(s,
 * 'close') would reject on the 'error' that a reset emits first.)
 */
export function closed(s: net.Socket): Promise<string | null> {
  return new Promise((resolve) => {
    let code: string | null = null;
    s.on('error', (e: NodeJS.ErrnoException) => (code = e.code ?? String(e)));
    if (s.destroyed && s.closed) resolve(code);
    else s.once('close', () => resolve(code));
  });
}

/** Resolves when the peer is done with `s`: its FIN ('end') or a reset/close, whichever comes first. */
export function peerDone(s: net.Socket): Promise<'end' | 'close'> {
  return new Promise((resolve) => {
    s.on('error', () => {});
    s.once('end', () => resolve('end'));
    s.once('close', () => resolve('close'));
  });
}

/**
 * Reads one HTTP response with a Content-Length body from `s` (keep-alive: the socket stays open).
 * Resolves with its bytes as latin1 text and its body; rejects if `s` closes before the body is whole.
 */
export function readResponse(s: net.Socket): Promise<{ raw: string; body: string }> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString('latin1');
      const end = got.indexOf('\r\n\r\n');
      const m = /content-length: (\d+)\r\n/i.exec(got);
      if (end < 0 || !m || got.length < end + 4 + Number(m[1])) return;
      s.off('data', onData);
      s.off('close', onClose);
      resolve({ raw: got, body: got.slice(end + 4, end + 4 + Number(m[1])) });
    };
    const onClose = () => reject(new Error(`closed before a whole response: ${JSON.stringify(got)}`));
    s.on('data', onData);
    s.once('close', onClose);
  });
}
