// TLS to backends (docs/tls.md, "To backends"): a real HTTPS server as the backend, verified against a given
// CA and name; a wrong name refused; verification off; pooled TLS connections reused; TLS on both sides with
// a large body; a backend's tls key checked at its place.
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type net from 'node:net';
import type tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selfSignedCertificate } from '../../dist/sys/x509.js';
import { planFromDocument } from '../../dist/control/config-file.js';
import { portOf, proxyOf } from '../helpers/servers.js';

const dir = mkdtempSync(join(tmpdir(), 'ffip-origin-'));
const pem = selfSignedCertificate({ commonName: 'origin.test', dnsNames: ['origin.test'], ips: ['127.0.0.1'], days: 2 });
const ca = join(dir, 'origin.crt');
writeFileSync(ca, pem.cert);
const big = randomBytes(4 << 20);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

type Origin = { port: number; handshakes: number; names: string[] };

async function origin(t: Test): Promise<Origin> {
  const o: Origin = { port: 0, handshakes: 0, names: [] };
  const server = https.createServer({ cert: pem.cert, key: pem.key }, (req, res) => {
    if (req.method === 'POST') {
      const h = createHash('sha256');
      req.on('data', (d) => h.update(d));
      req.on('end', () => res.end(h.digest('hex')));
      return;
    }
    res.end(`origin ${req.url}`);
  });
  server.on('secureConnection', (s: tls.TLSSocket) => {
    o.handshakes++;
    o.names.push(String((s as tls.TLSSocket & { servername?: string }).servername));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  o.port = (server.address() as net.AddressInfo).port;
  return o;
}

function doc(o: Origin, mode: string, tls: unknown): Record<string, unknown> {
  return {
    frontends: [{ name: 'fe', listen: '127.0.0.1:0', mode, backend: 'be' }],
    backends: [{ name: 'be', servers: [`127.0.0.1:${o.port}`], tls }],
  };
}

t.test('HTTP: verified against the CA and the name given, sent in SNI; pooled connections reused', async (t) => {
  const o = await origin(t);
  const proxy = await proxyOf(t, doc(o, 'http', { ca, 'server-name': 'origin.test' }));
  const port = portOf(proxy, 'fe');
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`http://127.0.0.1:${port}/r${i}`);
    t.equal(await r.text(), `origin /r${i}`);
  }
  t.same(o.names.slice(0, 1), ['origin.test'], 'SNI carried the name');
  t.ok(o.handshakes < 3, `the pool kept the TLS connection (${o.handshakes} handshake(s) for 3 requests)`);
  const up = await fetch(`http://127.0.0.1:${port}/up`, { method: 'POST', body: big });
  t.equal(await up.text(), sha(big), '4 MiB up, whole');
});

t.test('TCP: the server named by its IP address, checked against the IP in its certificate', async (t) => {
  const o = await origin(t);
  const proxy = await proxyOf(t, doc(o, 'tcp', { ca }));
  const r = await fetch(`http://127.0.0.1:${portOf(proxy, 'fe')}/tcp`);
  t.equal(await r.text(), 'origin /tcp');
});

t.test('a certificate that does not carry the name is refused (503), and the proxy says why', async (t) => {
  const o = await origin(t);
  const proxy = await proxyOf(t, doc(o, 'http', { ca, 'server-name': 'wrong.test' }));
  const r = await fetch(`http://127.0.0.1:${portOf(proxy, 'fe')}/x`);
  t.equal(r.status, 503);
  t.equal(proxy.stats().connectErrors, 1, 'counted as a connect error');
  const sys = await proxyOf(t, doc(o, 'http', true));
  t.equal((await fetch(`http://127.0.0.1:${portOf(sys, 'fe')}/x`)).status, 503, 'a self-signed server is not trusted by the system store');
});

t.test('verify: false takes any certificate', async (t) => {
  const o = await origin(t);
  const proxy = await proxyOf(t, doc(o, 'http', { verify: false }));
  t.equal(await (await fetch(`http://127.0.0.1:${portOf(proxy, 'fe')}/any`)).text(), 'origin /any');
});

t.test("a backend's tls: problems at their place", async (t) => {
  const bad = async (tls: unknown) => {
    try {
      await planFromDocument(doc({ port: 9, handshakes: 0, names: [] }, 'http', tls));
      return 'accepted';
    } catch (e) {
      return (e as Error).message;
    }
  };
  t.match(await bad('yes'), /backends\[0\]\.tls: must be true, false, or a map of verify, ca and server-name/);
  t.match(await bad({ ca: join(dir, 'missing.pem') }), /backends\[0\]\.tls\.ca: .*missing\.pem is not a readable file/);
  t.match(await bad({ verify: 'no' }), /backends\[0\]\.tls\.verify/);
  t.match(await bad({ colour: 1 }), /backends\[0\]\.tls\.colour: unknown key/);
  t.equal(await bad({ ca, 'server-name': 'origin.test' }), 'accepted');
});

t.test('TLS on both sides, in both modes: 4 MiB up, whole', async (t) => {
  const o = await origin(t);
  const front = join(dir, 'front');
  const fp = selfSignedCertificate({ commonName: 'front.test', dnsNames: ['front.test'], ips: ['127.0.0.1'], days: 2 });
  writeFileSync(`${front}.crt`, fp.cert);
  writeFileSync(`${front}.key`, fp.key);
  for (const mode of ['http', 'tcp']) {
    const config = doc(o, mode, { ca, 'server-name': 'origin.test' });
    (config.frontends as Record<string, unknown>[])[0].tls = { cert: `${front}.crt`, key: `${front}.key` };
    const proxy = await proxyOf(t, config);
    const port = portOf(proxy, 'fe');
    const body = await new Promise<string>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, method: 'POST', path: '/up', rejectUnauthorized: false, headers: { host: 'origin.test' } }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end(big);
    });
    t.equal(body, sha(big), `${mode}: the body went through two TLS hops whole`);
  }
});

t.test('a client certificate for a server that asks for one', async (t) => {
  const client = selfSignedCertificate({ commonName: 'proxy.client', dnsNames: ['proxy.client'], ips: [], days: 2 });
  const cc = { cert: join(dir, 'client.crt'), key: join(dir, 'client.key') };
  writeFileSync(cc.cert, client.cert);
  writeFileSync(cc.key, client.key);
  const seen: string[] = [];
  // The test certificates are made for serverAuth only, which Node's own check refuses for a client: the
  // server asks for a certificate and looks at what it got itself.
  const server = https.createServer({ cert: pem.cert, key: pem.key, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const cn = (req.socket as tls.TLSSocket).getPeerCertificate().subject?.CN;
    seen.push(String(cn));
    res.statusCode = cn === 'proxy.client' ? 200 : 403;
    res.end(cn === 'proxy.client' ? 'mutual' : 'who are you');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const o: Origin = { port: (server.address() as net.AddressInfo).port, handshakes: 0, names: [] };
  const withCert = await proxyOf(t, doc(o, 'http', { ca, 'server-name': 'origin.test', ...cc }));
  t.equal(await (await fetch(`http://127.0.0.1:${portOf(withCert, 'fe')}/m`)).text(), 'mutual');
  t.same(seen, ['proxy.client'], 'the server saw the proxy\'s certificate');
  const without = await proxyOf(t, doc(o, 'http', { ca, 'server-name': 'origin.test' }));
  t.equal((await fetch(`http://127.0.0.1:${portOf(without, 'fe')}/m`)).status, 403, 'without one the server sees none');
  const half = await planFromDocument(doc(o, 'http', { cert: cc.cert })).then(() => 'accepted', (e: Error) => e.message);
  t.match(half, /a client certificate needs both cert and key/);
});
