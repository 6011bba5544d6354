// The embedded demo backend: what `npx ffi-proxy start` proxies to when no --backend is given, so a
// newcomer's first request gets a real answer. A plain Node HTTP server on a loopback port of its own.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type DemoBackend = { host: string; port: number; close(): Promise<void> };

export async function startDemoBackend(proxyAddress: () => string): Promise<DemoBackend> {
  const server: Server = createServer((req, res) => {
    const body =
      `Hello from the ffi-proxy demo backend.\n` +
      `You asked for ${req.method} ${req.url} and reached it through ffi-proxy on ${proxyAddress()}.\n` +
      `To proxy your own service instead: npx ffi-proxy start --backend HOST:PORT\n`;
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    host: '127.0.0.1',
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
