// A Node HTTP reverse proxy built on the `http-proxy` package, the Node baseline for
// `scripts/bench.mjs --mode http`:
//   node scripts/node-http-proxy.mjs LISTEN_PORT BACKEND_PORT [HOST] [xfwd]
// Every request goes to http://HOST:BACKEND_PORT through one keep-alive agent (maxSockets 64, the bench's
// connection count); with `xfwd`, http-proxy adds X-Forwarded-For, -Port, -Proto and -Host. A backend
// error answers 502 if no response head was sent yet, else drops that client
// connection; nothing crashes the process. Prints one line when listening. SIGINT/SIGTERM stop it.

import http from 'node:http';
import httpProxy from 'http-proxy';

const [listenPort, backendPort, host = '127.0.0.1', xfwd = ''] = process.argv.slice(2);
if (!Number(listenPort) || !Number(backendPort)) {
  process.stderr.write('usage: node scripts/node-http-proxy.mjs LISTEN_PORT BACKEND_PORT [HOST] [xfwd]\n');
  process.exit(2);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const proxy = httpProxy.createProxyServer({ target: `http://${host}:${backendPort}`, agent, xfwd: xfwd === 'xfwd' });

let errors = 0;
proxy.on('error', (err, req, res) => {
  if (++errors <= 5 || errors % 1000 === 0) {
    process.stderr.write(`node-http-proxy: ${req?.method} ${req?.url}: ${err.code ?? ''} ${err.message} (${errors} so far)\n`);
  }
  // `res` is a ServerResponse for web requests (a socket for upgrades, which this proxy does not route).
  if (res && typeof res.writeHead === 'function') {
    if (!res.headersSent) {
      res.writeHead(502, { 'content-type': 'text/plain', connection: 'close' });
      res.end('bad gateway\n');
    } else {
      res.destroy();
    }
  } else {
    res?.destroy?.();
  }
});

// A client that goes away before its response has been relayed (wrk closes its connections at the end of
// each run, mid-response on /big) must take the backend request with it: http-proxy leaves it running, and
// a 1 MiB response then stalls on the dead client's backpressure and holds its agent socket for good.
// After a few such runs all 64 are held and the proxy answers nothing (seen in the bench: 0 req/s on /big
// after the warm-up). Destroying the upstream request frees the socket, as a deployment would need to.
proxy.on('proxyReq', (proxyReq, req, res) => {
  res.on('close', () => {
    if (!res.writableFinished) proxyReq.destroy();
  });
});

const server = http.createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 300_000; // wrk's connections stay open for the whole run
server.on('clientError', (err, socket) => {
  if (socket.writable && !socket.destroyed) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
  else socket.destroy();
});
server.on('error', (e) => {
  process.stderr.write(`node-http-proxy: ${e.message}\n`);
  process.exit(1);
});
server.listen({ host, port: Number(listenPort), backlog: 4096 }, () => {
  process.stdout.write(`node-http-proxy listening on ${host}:${listenPort}, backend ${host}:${backendPort}\n`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
