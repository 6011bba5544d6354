// Session ticket keys rotate on a schedule (docs/tls.md, "Session resumption"): a ticket resumes within its
// period on either worker, and not after the keys changed; a ticket of the new period resumes again. The
// period is shortened for the test through FFIP_TLS_TICKET_ROTATE_MS (the workers read it at start).
import t from 'tap';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { selfSignedCertificate } from '../../dist/sys/x509.js';
import { portOf, proxyOf } from '../helpers/servers.js';

const PERIOD = 2000;
process.env.FFIP_TLS_TICKET_ROTATE_MS = String(PERIOD);

const dir = mkdtempSync(join(tmpdir(), 'ffip-rotate-'));
const pem = selfSignedCertificate({ commonName: 'r.test', dnsNames: ['r.test'], ips: ['127.0.0.1'], days: 2 });
writeFileSync(join(dir, 'r.crt'), pem.cert);
writeFileSync(join(dir, 'r.key'), pem.key);

/** One TLS 1.2 connection (its ticket arrives with the handshake): whether it resumed, and its session. */
async function visit(port: number, session?: Buffer): Promise<{ reused: boolean; session: Buffer }> {
  const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, maxVersion: 'TLSv1.2', session });
  await once(s, 'secureConnect');
  const reused = s.isSessionReused();
  const got = s.getSession()!; // TLS 1.2: the session (with its ticket) is known once the handshake is done
  s.destroy();
  return { reused, session: got };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a ticket resumes within its period, not after the keys rotated; a new one does', async (t) => {
  const backend = http.createServer((_req, res) => res.end('ok'));
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  t.teardown(() => backend.close());
  const proxy = await proxyOf(t, {
    workers: 2,
    frontends: [{ name: 'fe', listen: '127.0.0.1:0', mode: 'http', backend: 'be', tls: { cert: join(dir, 'r.crt'), key: join(dir, 'r.key') } }],
    backends: [{ name: 'be', servers: [`127.0.0.1:${(backend.address() as net.AddressInfo).port}`] }],
  });
  const port = portOf(proxy, 'fe');
  // Start just after a period begins, so that the first visits fall in one period.
  await sleep(PERIOD - (Date.now() % PERIOD) + 100);
  const first = await visit(port);
  let again = 0;
  for (let i = 0; i < 6; i++) if ((await visit(port, first.session)).reused) again++;
  t.equal(again, 6, 'resumed within its period, on either worker');
  await sleep(PERIOD + 200);
  const late = await visit(port, first.session);
  t.equal(late.reused, false, 'the keys rotated: the old ticket makes a full handshake');
  const fresh = await visit(port);
  t.equal((await visit(port, fresh.session)).reused, true, "a ticket of the new period resumes");
});
