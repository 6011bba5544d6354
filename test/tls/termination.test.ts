// TLS terminated on a frontend (docs/tls.md), with Node's own `tls` as the client (and curl and openssl
// s_client where the machine has them): versions, ALPN, SNI with a wildcard and a default, resumption on
// either worker, failed handshakes of each kind, large bodies both ways, WebSocket over TLS, and a
// certificate replaced by a reload while a connection stays open.
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { WebSocket, WebSocketServer } from 'ws';
import { selfSignedCertificate } from '../../dist/sys/x509.js';
import { type Proxy, portOf, proxyOf } from '../helpers/servers.js';

const dir = mkdtempSync(join(tmpdir(), 'ffip-tls-'));

/** A certificate for `names` written to dir: its files. */
function cert(id: string, names: string[]): { cert: string; key: string } {
  const pem = selfSignedCertificate({ commonName: names[0].replace('*.', 'star.'), dnsNames: names, ips: ['127.0.0.1'], days: 2 });
  const files = { cert: join(dir, `${id}.crt`), key: join(dir, `${id}.key`) };
  writeFileSync(files.cert, pem.cert);
  writeFileSync(files.key, pem.key);
  return files;
}

const A = cert('a', ['a.test', 'localhost']);
const B = cert('b', ['*.b.test']);
const C = cert('c', ['c.test']);
const big = randomBytes(8 << 20);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function backend(t: Test): Promise<number> {
  const server = http.createServer((req, res) => {
    if (req.method === 'POST') {
      const h = createHash('sha256');
      req.on('data', (d) => h.update(d));
      req.on('end', () => res.end(h.digest('hex')));
      return;
    }
    res.end(req.url === '/big' ? big : `hello ${req.url}`);
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`echo ${m}`)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

function doc(port: number, mode: string, certs = [A, B, C]): Record<string, unknown> {
  return {
    workers: 2,
    frontends: [{ name: 'fe', listen: '127.0.0.1:0', mode, backend: 'be', tls: { certificates: certs } }],
    backends: [{ name: 'be', servers: [`127.0.0.1:${port}`] }],
  };
}

async function setup(t: Test, mode = 'http'): Promise<{ proxy: Proxy; port: number; be: number }> {
  const be = await backend(t);
  const proxy = await proxyOf(t, doc(be, mode));
  return { proxy, port: portOf(proxy, 'fe'), be };
}

type Opened = { socket: tls.TLSSocket; error: Error | null };

function open(port: number, o: tls.ConnectionOptions = {}): Promise<Opened> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...o });
    socket.once('secureConnect', () => resolve({ socket, error: null }));
    socket.once('error', (error) => resolve({ socket, error }));
  });
}

/** One HTTP/1.1 request over a TLS socket: the response's whole text (Connection: close). */
async function request(port: number, path: string, o: tls.ConnectionOptions = {}): Promise<string> {
  const { socket, error } = await open(port, o);
  if (error) throw error;
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  const chunks: Buffer[] = [];
  socket.on('data', (d) => chunks.push(d));
  await once(socket, 'end');
  socket.destroy();
  return Buffer.concat(chunks).toString('latin1');
}

t.test('TLS 1.3 and 1.2; ALPN http/1.1 in HTTP mode; nothing older', async (t) => {
  const { port } = await setup(t);
  for (const v of ['TLSv1.3', 'TLSv1.2'] as const) {
    const { socket, error } = await open(port, { minVersion: v, maxVersion: v, ALPNProtocols: ['h2', 'http/1.1'] });
    t.equal(error, null, `${v} handshake`);
    t.equal(socket.getProtocol(), v);
    t.equal(socket.alpnProtocol, 'http/1.1', 'http/1.1 chosen over h2');
    socket.destroy();
  }
  const h2only = await open(port, { ALPNProtocols: ['h2'] });
  t.equal(h2only.socket.alpnProtocol, false, 'h2 alone: no ALPN (not an error)');
  h2only.socket.destroy();
  const old = await open(port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
  t.ok(old.error, `TLS 1.1 refused (${old.error?.message})`);
  t.match(await request(port, '/ok'), /^HTTP\/1\.1 200 [^]*hello \/ok$/);
});

t.test('SNI: exact, wildcard of one label, and the default for an unknown name or none', async (t) => {
  const { port } = await setup(t);
  const cn = async (servername?: string) => {
    const { socket } = await open(port, servername === undefined ? {} : { servername });
    const subject = socket.getPeerCertificate().subject.CN;
    socket.destroy();
    return subject;
  };
  t.equal(await cn('c.test'), 'c.test');
  t.equal(await cn('x.b.test'), 'star.b.test');
  t.equal(await cn('deep.x.b.test'), 'a.test', 'a wildcard covers one label only');
  t.equal(await cn('unknown.test'), 'a.test');
  t.equal(await cn(), 'a.test');
});

t.test('resumption with tickets on either worker, TLS 1.2 and 1.3', async (t) => {
  const { port } = await setup(t);
  for (const v of ['TLSv1.2', 'TLSv1.3'] as const) {
    const first = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: v, maxVersion: v });
    const session = await new Promise<Buffer>((resolve) => first.once('session', resolve));
    first.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    first.resume();
    await once(first, 'end');
    let reused = 0;
    for (let i = 0; i < 12; i++) {
      const { socket } = await open(port, { session, minVersion: v, maxVersion: v });
      if (socket.isSessionReused()) reused++;
      socket.destroy();
    }
    t.equal(reused, 12, `${v}: 12 of 12 resumed (the two workers share their ticket keys)`);
  }
});

t.test('failed handshakes are logged, counted and closed; the proxy serves on', async (t) => {
  const { proxy, port } = await setup(t);
  const raw = async (bytes: string) => {
    const s = (await import('node:net')).connect(port, '127.0.0.1');
    s.on('error', () => {}); // a reset is one way for it to end
    s.resume(); // read the alert the proxy sends: a paused socket would never see the close behind it
    const closed = new Promise((r) => s.on('close', r));
    s.write(bytes);
    await closed;
  };
  await raw('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await raw('\x16\x03\x01garbage that is not a ClientHello at all');
  const old = await open(port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
  old.socket.destroy();
  t.match(await request(port, '/still'), /hello \/still$/);
  const ended = () => proxy.stats().terminations.tls_handshake;
  t.ok(ended() >= 3, `counted under tls_handshake (${ended()})`);
});

for (const mode of ['tcp', 'http']) {
  t.test(`${mode}: 8 MiB down and up, whole`, async (t) => {
    const { port } = await setup(t, mode);
    const down = await open(port);
    down.socket.write('GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const chunks: Buffer[] = [];
    down.socket.on('data', (d) => chunks.push(d));
    await once(down.socket, 'end');
    const text = Buffer.concat(chunks);
    const body = text.subarray(text.indexOf('\r\n\r\n') + 4);
    t.equal(sha(body), sha(big), 'the download');
    const up = await open(port);
    up.socket.write(`POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: ${big.length}\r\nConnection: close\r\n\r\n`);
    up.socket.write(big);
    const back: Buffer[] = [];
    up.socket.on('data', (d) => back.push(d));
    await once(up.socket, 'end');
    t.match(Buffer.concat(back).toString(), new RegExp(`${sha(big)}$`), 'the upload');
  });
}

t.test('WebSocket over TLS', async (t) => {
  const { port } = await setup(t);
  const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, { rejectUnauthorized: false });
  await once(ws, 'open');
  ws.send('ping');
  const [m] = await once(ws, 'message');
  t.equal(String(m), 'echo ping');
  ws.close();
});

t.test('a reload replaces the certificate; an open connection keeps working', async (t) => {
  const { proxy, port, be } = await setup(t);
  const { socket } = await open(port);
  const D = cert('d', ['a.test', 'localhost']);
  await proxy.reload(doc(be, 'http', [D]));
  const fresh = await open(port);
  t.equal(fresh.socket.getPeerCertificate().fingerprint256 !== socket.getPeerCertificate().fingerprint256, true, 'new connections get the new certificate');
  fresh.socket.destroy();
  socket.write('GET /kept HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const chunks: Buffer[] = [];
  socket.on('data', (d) => chunks.push(d));
  await once(socket, 'end');
  t.match(Buffer.concat(chunks).toString(), /hello \/kept$/, 'the connection opened before the reload still works');
});

t.test('--accept-proxy: the PROXY header, then the handshake, in one write or two', async (t) => {
  const be = await backend(t);
  const config = doc(be, 'http');
  (config.frontends as Record<string, unknown>[])[0]['accept-proxy'] = true;
  const proxy = await proxyOf(t, config);
  const port = portOf(proxy, 'fe');
  for (const together of [false, true]) {
    const raw = (await import('node:net')).connect(port, '127.0.0.1');
    await once(raw, 'connect');
    if (together) raw.cork(); // the header and the ClientHello leave in one write
    raw.write('PROXY TCP4 10.1.2.3 127.0.0.1 5555 443\r\n');
    if (!together) await new Promise((r) => setTimeout(r, 50));
    const s = tls.connect({ socket: raw, rejectUnauthorized: false, servername: 'c.test' });
    if (together) process.nextTick(() => raw.uncork());
    await once(s, 'secureConnect');
    t.equal(s.getPeerCertificate().subject.CN, 'c.test', `${together ? 'one write' : 'two writes'}: SNI chose the certificate`);
    s.write('GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const chunks: Buffer[] = [];
    s.on('data', (d) => chunks.push(d));
    await once(s, 'end');
    t.match(Buffer.concat(chunks).toString(), /hello \/who$/, 'and the request went through');
  }
});

const has = (cmd: string) => {
  try {
    execFileSync(cmd, [cmd === 'openssl' ? 'version' : '--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

// The clients run as child processes the test waits for without blocking: the backend lives in this process.
const run = promisify(execFile);

t.test('curl and openssl s_client as clients', { skip: !has('curl') ? 'curl is not installed here' : false }, async (t) => {
  const { port } = await setup(t);
  const curl = await run('curl', ['-sk', '--http1.1', '-w', ' %{http_version}', `https://127.0.0.1:${port}/curl`]);
  t.equal(curl.stdout, 'hello /curl 1.1');
  if (!has('openssl')) return;
  const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'c.test', '-alpn', 'http/1.1', '-tls1_3']);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stdin!.end();
  await once(child, 'close');
  t.match(out, /subject=CN ?= ?c\.test/);
  t.match(out, /ALPN protocol: http\/1\.1/);
});
