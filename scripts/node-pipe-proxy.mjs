// A plain Node TCP pipe proxy, the baseline for scripts/bench.mjs:
//   node scripts/node-pipe-proxy.mjs LISTEN_PORT BACKEND_PORT [HOST]
// For every client it connects to HOST:BACKEND_PORT and runs client.pipe(backend).pipe(client). A reset or
// error on either side destroys both sockets; nothing crashes the process. Prints one line when listening.
// SIGINT/SIGTERM stop it.

import net from 'node:net';

const [listenPort, backendPort, host = '127.0.0.1'] = process.argv.slice(2);
if (!Number(listenPort) || !Number(backendPort)) {
  process.stderr.write('usage: node scripts/node-pipe-proxy.mjs LISTEN_PORT BACKEND_PORT [HOST]\n');
  process.exit(2);
}

const server = net.createServer({ noDelay: true }, (client) => {
  const backend = net.connect({ host, port: Number(backendPort), noDelay: true });
  const destroyBoth = () => {
    client.destroy();
    backend.destroy();
  };
  client.on('error', destroyBoth);
  backend.on('error', destroyBoth);
  client.on('close', () => backend.destroy());
  backend.on('close', () => client.destroy());
  client.pipe(backend).pipe(client);
});
server.on('error', (e) => {
  process.stderr.write(`node-pipe-proxy: ${e.message}\n`);
  process.exit(1);
});
server.listen({ host, port: Number(listenPort), backlog: 4096 }, () => {
  process.stdout.write(`node-pipe-proxy listening on ${host}:${listenPort}, backend ${host}:${backendPort}\n`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
