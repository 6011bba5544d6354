// Servers and clients for the routing tests (test/route/): HTTP and TCP servers that say who they are, the
// proxy started on a config document, a keep-alive client that reconnects after the proxy closes it, and a
// wait on an async probe.
import type { Test } from 'tap';
import http from 'node:http';
import { once } from 'node:events';
import net from 'node:net';
import { start } from '../../dist/index.js';
import { readBytes, readResponse, serve, type TestServer } from './net.js';

export type Proxy = Awaited<ReturnType<typeof start>>;

/**
 * An HTTP server that answers its name to every request but GET /health, which it answers `health` (200 at
 * first). `hits` counts the other requests; `checks` the /health ones.
 */
export type Named = {
  name: string;
  port: number;
  addr: string;
  hits: number;
  checks: number;
  health: number;
  /** Stops listening and closes every connection it has, idle or not. */
  kill(): Promise<void>;
  /** Listens again on its port. */
  restart(): Promise<void>;
};

export async function httpNamed(t: Test, name: string): Promise<Named> {
  const server = http.createServer((req, res) => {
    if (req.url === '/health') {
      n.checks++;
      res.statusCode = n.health;
      if (n.health >= 300 && n.health < 400) res.setHeader('Location', '/');
      res.end();
      return;
    }
    n.hits++;
    res.end(name);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  let up = true;
  const n: Named = {
    name,
    port,
    addr: `127.0.0.1:${port}`,
    hits: 0,
    checks: 0,
    health: 200,
    async kill() {
      if (!up) return;
      up = false;
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await closed;
    },
    async restart() {
      server.listen(port, '127.0.0.1');
      await once(server, 'listening');
      up = true;
    },
  };
  t.teardown(() => n.kill());
  return n;
}

/** A TCP server that writes its one-letter name when a connection opens, and ends when its peer does. */
export async function tcpNamed(t: Test, name: string): Promise<TestServer & { addr: string }> {
  const s = await serve((sock) => {
    sock.write(name);
    sock.on('end', () => sock.end());
  });
  t.teardown(() => s.close());
  return Object.assign(s, { addr: `127.0.0.1:${s.port}` });
}

export async function proxyOf(t: Test, config: Record<string, unknown>): Promise<Proxy> {
  const proxy = await start({ config, workers: 1, logLevel: 'silent' });
  t.teardown(() => proxy.close(0));
  return proxy;
}

export function portOf(proxy: Proxy, frontend: string): number {
  const l = proxy.listening().find((x) => x.name === frontend);
  if (!l || l.address.family === 'unix') throw new Error(`no frontend ${frontend}`);
  return l.address.port;
}

/**
 * A keep-alive HTTP client: one connection, opened again after it is closed (the proxy closes it after a
 * 502/503). A request that gets no whole response is status 0.
 */
export class Client {
  private s: net.Socket | null = null;
  constructor(
    t: Test,
    private readonly port: number,
  ) {
    t.teardown(() => this.s?.destroy());
  }

  async get(path = '/'): Promise<{ status: number; body: string }> {
    try {
      if (this.s === null || this.s.destroyed) {
        const s = net.connect({ port: this.port, host: '127.0.0.1' });
        s.on('error', () => {});
        this.s = s;
        await once(s, 'connect');
      }
      const s = this.s;
      const reply = readResponse(s);
      s.write(`GET ${path} HTTP/1.1\r\nHost: test.local\r\n\r\n`);
      const { raw, body } = await reply;
      if (/\r\nconnection: close\r\n/i.test(raw.slice(0, raw.indexOf('\r\n\r\n') + 2))) this.drop();
      return { status: Number(raw.slice(9, 12)), body };
    } catch {
      this.drop();
      return { status: 0, body: '' };
    }
  }

  private drop(): void {
    this.s?.destroy();
    this.s = null;
  }

  /** `n` requests one after another: the names that answered, '!STATUS' for a failure. */
  async names(n: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = await this.get();
      out.push(r.status === 200 ? r.body : `!${r.status}`);
    }
    return out;
  }
}

/** Runs the async probe until it says true; throws after `ms`, saying what it waited for. */
export async function until(probe: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const count = (xs: string[]) => xs.reduce<Record<string, number>>((m, x) => ((m[x] = (m[x] ?? 0) + 1), m), {});

/**
 * A TCP connection to the proxy (from `localAddress` if given: loopback takes any 127/8 source): the
 * one-letter name its server sends, or '!' when it closes first.
 */
export async function tcpName(port: number, localAddress?: string): Promise<string> {
  const s = net.connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
  s.on('error', () => {});
  try {
    await once(s, 'connect');
    return (await readBytes(s, 1)).toString();
  } catch {
    return '!';
  } finally {
    s.destroy();
  }
}

