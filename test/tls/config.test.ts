// TLS termination, the main thread's side: certificates made with the node binary's OpenSSL (sys/x509.ts)
// and checked with node's crypto; a frontend's `tls` key and the --tls-cert/--tls-key/--tls options made into
// the TlsConfig the workers use, every problem at its place; names for SNI from subjectAltName, else CN; the
// ticket keys, one set per process and the fleet's children given the parent's; tls through the document
// round trip and in `check`'s description. No handshake here: connections are the transport's tests.
import t from 'tap';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { selfSignedCertificate, type PemPair, CODES, ProxyError } from '../../dist/sys/index.js';
import { ConfigError, describePlan, loadConfigFile, parseConfig, planFromDocument } from '../../dist/control/config-file.js';
import { resolveOptions } from '../../dist/control/config.js';
import { documentFromPlan } from '../../dist/control/document.js';
import { TICKET_KEYS_ENV, TICKET_KEYS_LENGTH, adoptTicketKeys, makeSelfSigned, processTicketKeys } from '../../dist/control/tls.js';
import { runCli, startCli, waitFor } from '../helpers/net.js';

const dir = await mkdtemp(join(tmpdir(), 'ffi-proxy-tls-test-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

/** Writes a certificate and its key as NAME.pem and NAME.key in the test folder; returns their paths. */
async function files(name: string, pair: PemPair): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  await writeFile(cert, pair.cert);
  await writeFile(key, pair.key);
  return { cert, key };
}

const make = (commonName: string, dnsNames: string[], days = 30, ips: string[] = []) => selfSignedCertificate({ commonName, dnsNames, ips, days });
const web = await files('web', make('web', ['example.com', 'www.example.com']));
const api = await files('api', make('api', ['api.example.com', '*.api.example.com']));
const cnOnly = await files('cn', make('legacy.example.org', []));
const other = await files('other', make('other', ['other.example']));

/** A config with one frontend whose `tls` is `tls` (YAML text, indented for the frontend's map). */
const config = (tls: string) => `frontends:
  - name: web
    listen: 127.0.0.1:0
    backend: app
${tls}
backends:
  - name: app
    servers: [127.0.0.1:9000]
`;

async function problems(text: string): Promise<string[]> {
  const e = await parseConfig(text, join(dir, 'ffi-proxy.yaml')).then(() => null, (err: unknown) => err);
  if (!(e instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String(e)}`);
  return e.problems.map((p) => p.replaceAll(dir, 'DIR'));
}

t.test('the node binary makes a self-signed certificate that node checks', async (t) => {
  const pair = make('localhost', ['localhost'], 30, ['127.0.0.1', '::1']);
  t.match(pair.cert, /^-----BEGIN CERTIFICATE-----\n/);
  t.match(pair.key, /^-----BEGIN PRIVATE KEY-----\n/);
  const x = new X509Certificate(pair.cert);
  t.equal(x.subject, 'CN=localhost');
  t.equal(x.issuer, 'CN=localhost', 'self-signed: its own issuer');
  t.equal(x.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
  t.ok(x.verify(x.publicKey), 'signed with its own key');
  t.ok(x.checkPrivateKey(createPrivateKey(pair.key)), 'the key is its key');
  t.equal(x.publicKey.asymmetricKeyType, 'ec');
  t.equal(x.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const days = (Date.parse(x.validTo) - Date.now()) / 86_400_000;
  t.ok(days > 29.9 && days <= 30, `valid 30 days (${days.toFixed(3)})`);
  t.ok(Date.parse(x.validFrom) <= Date.now(), 'valid now');
  t.notOk(x.ca, 'not a CA');
  t.strictSame(x.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'for servers (extendedKeyUsage serverAuth)');
  t.not(new X509Certificate(make('localhost', ['localhost']).cert).serialNumber, x.serialNumber, 'a random serial each time');
});

t.test('--tls alone: the certificate written into a private folder', async (t) => {
  const s = makeSelfSigned();
  t.equal(statSync(s.dir).mode & 0o777, 0o700, 'the folder is 0700');
  t.equal(statSync(s.cert).mode & 0o777, 0o600, 'the certificate is 0600');
  t.equal(statSync(s.key).mode & 0o777, 0o600, 'the key is 0600');
  const { readFileSync } = await import('node:fs');
  const x = new X509Certificate(readFileSync(s.cert));
  t.match(x.subjectAltName, /DNS:localhost/);
  t.ok(x.checkPrivateKey(createPrivateKey(readFileSync(s.key))));
  t.equal(s.fingerprint256, x.fingerprint256);

  const { plan } = await resolveOptions({ tls: true });
  const tls = plan.frontends[0].tls!;
  t.equal(tls.certs.length, 1);
  t.strictSame(tls.certs[0].names, ['localhost'], 'names: the DNS ones (no IP: SNI carries none)');
  t.ok(existsSync(tls.certs[0].cert) && existsSync(tls.certs[0].key));
});

t.test('the flags: --tls-cert and --tls-key', async (t) => {
  const { plan } = await resolveOptions({ tlsCert: web.cert, tlsKey: web.key });
  const tls = plan.frontends[0].tls!;
  t.strictSame(tls.certs, [{ cert: web.cert, key: web.key, names: ['example.com', 'www.example.com'] }]);
  t.equal(tls.ticketKeys.length, TICKET_KEYS_LENGTH);
  t.notOk((await resolveOptions({})).plan.frontends[0].tls, 'no TLS unless asked');

  const bad = async (o: Parameters<typeof resolveOptions>[0], re: RegExp) => {
    const e = await resolveOptions(o).then(() => null, (err: unknown) => err);
    t.ok(e instanceof ProxyError && e.code === CODES.BAD_OPTION, 'FFIP_ERR_BAD_OPTION');
    t.match((e as Error).message, re);
  };
  await bad({ tlsCert: web.cert }, /needs its tls key: give both/);
  await bad({ tlsKey: web.key }, /needs its tls cert: give both/);
  await bad({ tlsCert: join(dir, 'nope.pem'), tlsKey: web.key }, /^tls cert: cannot read .*nope\.pem: ENOENT \(no such file\)$/);
  await bad({ tlsCert: web.cert, tlsKey: api.key }, /^tls key: .*api\.key is not the key of the certificate in .*web\.pem$/);
  await bad({ tlsCert: web.key, tlsKey: web.cert }, /holds no PEM certificate .*are cert and key swapped\?/);
  await bad({ tls: false, tlsCert: web.cert, tlsKey: web.key }, /tls is false/);
});

t.test('a config file: { cert, key } and certificates, relative to its folder', async (t) => {
  const file = join(dir, 'sni.yaml');
  await writeFile(
    file,
    `frontends:
  - name: one
    listen: 127.0.0.1:0
    backend: app
    tls: { cert: web.pem, key: web.key }
  - name: many
    listen: 127.0.0.1:0
    mode: http
    backend: app
    tls:
      certificates:
        - { cert: web.pem, key: web.key }
        - { cert: ./api.pem, key: ${api.key} }
        - { cert: cn.pem, key: cn.key }
  - name: plain
    listen: 127.0.0.1:0
    backend: app
backends:
  - name: app
    servers: [127.0.0.1:9000]
`,
  );
  const plan = await loadConfigFile(file);
  t.strictSame(plan.frontends[0].tls!.certs, [{ cert: web.cert, key: web.key, names: ['example.com', 'www.example.com'] }]);
  t.strictSame(
    plan.frontends[1].tls!.certs.map((c) => [c.cert, c.names]),
    [
      [web.cert, ['example.com', 'www.example.com']],
      [api.cert, ['api.example.com', '*.api.example.com']],
      [cnOnly.cert, ['legacy.example.org']],
    ],
    'names from subjectAltName, else the CN; the first certificate is the default',
  );
  t.notOk(plan.frontends[2].tls);
  const keys = processTicketKeys();
  t.equal(plan.frontends[0].tls!.ticketKeys, keys, 'ticket keys: the process\'s own');
  t.equal(plan.frontends[1].tls!.ticketKeys, keys, 'the same for every frontend');
  t.equal((await loadConfigFile(file)).frontends[0].tls!.ticketKeys, keys, 'and for every reload');

  const described = describePlan(plan).split('\n');
  t.ok(described.includes('frontend many: listen 127.0.0.1:0, http over tls, backend app'));
  t.ok(described.includes(`  certificate ${web.cert} (default): example.com www.example.com; key ${web.key}`));
  t.ok(described.includes(`  certificate ${api.cert}: api.example.com *.api.example.com; key ${api.key}`));
});

t.test('tls survives the document round trip', async (t) => {
  const plan = await planFromDocument({
    frontends: [
      { name: 'one', listen: '127.0.0.1:0', backend: 'app', tls: { cert: web.cert, key: web.key } },
      { name: 'two', listen: '127.0.0.1:0', backend: 'app', tls: { certificates: [api, other] } },
      { name: 'plain', listen: '127.0.0.1:0', backend: 'app' },
    ],
    backends: [{ name: 'app', servers: ['127.0.0.1:9000'] }],
  });
  const doc = documentFromPlan(plan);
  const fronts = doc.frontends as Record<string, unknown>[];
  t.strictSame(fronts[0].tls, { cert: web.cert, key: web.key });
  t.strictSame(fronts[1].tls, { certificates: [api, other] });
  t.notOk('tls' in fronts[2]);
  t.notOk(JSON.stringify(doc).includes('ticket'), 'the ticket keys are never written out');
  const again = await planFromDocument(JSON.parse(JSON.stringify(doc)));
  t.strictSame(again.frontends.map((f) => f.tls), plan.frontends.map((f) => f.tls), 'the same tls, ticket keys included');
});

t.test('the shape of tls: problems at their place', async (t) => {
  t.strictSame(await problems(config('    tls: web.pem')), [
    'DIR/ffi-proxy.yaml:5: frontends[0].tls: must be a map with cert and key, or with certificates: a list of maps with cert and key, not "web.pem"',
  ]);
  t.strictSame(await problems(config('    tls: { cert: web.pem }')), ['DIR/ffi-proxy.yaml:5: frontends[0].tls: "key" is required']);
  t.strictSame(await problems(config('    tls: { cert: web.pem, key: web.key, certificates: [] }')), [
    'DIR/ffi-proxy.yaml:5: frontends[0].tls: takes cert and key, or certificates, not both',
  ]);
  t.strictSame(await problems(config('    tls: { certificates: [] }')), [
    'DIR/ffi-proxy.yaml:5: frontends[0].tls.certificates: must be a non-empty list of maps with cert and key, not an empty list',
  ]);
  t.strictSame(await problems(config('    tls: { certs: web.pem, key: web.key }')), [
    'DIR/ffi-proxy.yaml:5: frontends[0].tls.certs: unknown key (did you mean "cert"?)',
  ]);
  t.strictSame(await problems(config('    tls: { certificates: [web.pem, { cert: 7, key: web.key }] }')), [
    'DIR/ffi-proxy.yaml:5: frontends[0].tls.certificates[0]: must be a map with cert and key, not "web.pem"',
    "DIR/ffi-proxy.yaml:5: frontends[0].tls.certificates[1].cert: must be a file's path (PEM certificate, its chain after it), not 7",
  ]);
  t.strictSame(await problems(config('    cert: web.pem')), [
    `DIR/ffi-proxy.yaml:5: frontends[0].cert: unknown key here: "cert" belongs in tls or in one of tls.certificates or in a backend's tls`,
  ]);
});

t.test('the files of tls: problems at their place', async (t) => {
  await writeFile(join(dir, 'junk.pem'), 'this is not PEM\n');
  await writeFile(join(dir, 'broken.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  await writeFile(join(dir, 'enc.key'), '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n');
  t.strictSame(await problems(config('    tls: { cert: missing.pem, key: web.key }')), [
    'DIR/ffi-proxy.yaml:5: frontends[0].tls.cert: cannot read DIR/missing.pem: ENOENT (no such file)',
  ]);
  t.strictSame(await problems(config('    tls:\n      cert: junk.pem\n      key: junk.pem')), [
    'DIR/ffi-proxy.yaml:6: frontends[0].tls.cert: DIR/junk.pem holds no PEM certificate (-----BEGIN CERTIFICATE-----)',
    'DIR/ffi-proxy.yaml:7: frontends[0].tls.key: DIR/junk.pem holds no PEM private key (-----BEGIN PRIVATE KEY-----)',
  ]);
  const [broken] = await problems(config('    tls: { cert: broken.pem, key: web.key }'));
  t.match(broken, /^DIR\/ffi-proxy\.yaml:5: frontends\[0\]\.tls\.cert: DIR\/broken\.pem: not a valid certificate: /);
  t.strictSame(await problems(config('    tls: { cert: web.pem, key: enc.key }')), [
    'DIR/ffi-proxy.yaml:5: frontends[0].tls.key: DIR/enc.key: the key is encrypted (it needs a passphrase); give it unencrypted, readable by this user only',
  ]);
  t.strictSame(await problems(config('    tls: { cert: web.pem, key: api.key }')), [
    'DIR/ffi-proxy.yaml:5: frontends[0].tls.key: DIR/api.key is not the key of the certificate in DIR/web.pem',
  ]);
  t.strictSame(await problems(config(`    tls: { cert: ${dir}, key: web.key }`)), [
    'DIR/ffi-proxy.yaml:5: frontends[0].tls.cert: cannot read DIR: EISDIR (a directory, not a file)',
  ]);
  // Past the default, a certificate without a DNS name could never be chosen.
  const ipOnly = await files('ip', make('not a host', [], 30, ['127.0.0.1']));
  t.strictSame(
    await problems(config(`    tls:\n      certificates:\n        - { cert: web.pem, key: web.key }\n        - { cert: ip.pem, key: ip.key }`)),
    [`DIR/ffi-proxy.yaml:8: frontends[0].tls.certificates[1].cert: ${ipOnly.cert.replace(dir, 'DIR')} has no DNS name (subjectAltName or CN): SNI could never choose it`],
  );
  // A document's problems have no lines; its relative paths are the working directory's.
  const e = await planFromDocument({ frontends: [{ name: 'w', listen: '127.0.0.1:0', backend: 'a', tls: { cert: 'nope.pem', key: 'nope.key' } }], backends: [{ name: 'a', servers: ['127.0.0.1:1'] }] }).catch((x: ConfigError) => x);
  t.strictSame((e as ConfigError).problems, [
    `config: frontends[0].tls.cert: cannot read ${join(process.cwd(), 'nope.pem')}: ENOENT (no such file)`,
    `config: frontends[0].tls.key: cannot read ${join(process.cwd(), 'nope.key')}: ENOENT (no such file)`,
  ]);
});

t.test('an expired certificate is a warning, not an error', async (t) => {
  const old = await files('old', make('old.example', ['old.example'], -1));
  const warnings: string[] = [];
  const plan = await parseConfig(config('    tls: { cert: old.pem, key: old.key }'), join(dir, 'ffi-proxy.yaml'), { warn: (w) => warnings.push(w) });
  t.strictSame(plan.frontends[0].tls!.certs[0].names, ['old.example']);
  t.equal(warnings.length, 1);
  t.match(warnings[0], /^.*ffi-proxy\.yaml:5: frontends\[0\]\.tls\.cert: the certificate in .*old\.pem expired on \d{4}-.*; clients will refuse it$/);
  t.equal(old.cert, plan.frontends[0].tls!.certs[0].cert);
});

t.test('the CLI: --tls says where its certificate is; flag problems are one line', async (t) => {
  const run = await startCli(['--tls', '--workers', '1', '--admin', 'off']);
  const out = run.stdout();
  t.match(out, /listening on 127\.0\.0\.1:\d+ \(tcp mode over TLS, /);
  const m = /made for this run: (\S+\/cert\.pem)\n  SHA-256 fingerprint ([0-9A-F:]{95})\n/.exec(out);
  t.ok(m, 'the banner names the certificate and its fingerprint');
  const { readFileSync } = await import('node:fs');
  t.equal(new X509Certificate(readFileSync(m![1])).fingerprint256, m![2]);
  t.ok(out.includes(`try: curl --cacert ${m![1]} https://127.0.0.1:${run.port}/`), 'and how to trust it');
  run.child.kill('SIGTERM');
  await once(run.child, 'exit');
  await waitFor(() => !existsSync(m![1]), 'the folder removed at exit');

  const missing = await runCli(['start', '--tls-cert', web.cert, '--workers', '1', '--admin', 'off']);
  t.equal(missing.code, 2);
  t.equal(missing.stderr, 'ffi-proxy: a tls cert needs its tls key: give both (--tls-cert FILE --tls-key FILE)\n');
  const wrong = await runCli(['start', '--tls-cert', web.cert, '--tls-key', api.key, '--workers', '1', '--admin', 'off']);
  t.equal(wrong.code, 2);
  t.equal(wrong.stderr, `ffi-proxy: tls key: ${api.key} is not the key of the certificate in ${web.cert}\n`);
  const withConfig = await runCli(['start', '--config', join(dir, 'sni.yaml'), '--tls']);
  t.equal(withConfig.code, 2);
  t.match(withConfig.stderr, /^ffi-proxy: --tls cannot be given with --config: say it in /);
});

t.test("a fleet's children take the parent's ticket keys", async (t) => {
  const keys = Buffer.from(processTicketKeys()).toString('base64');
  // A child as fleet.ts starts it: the keys in its environment, adopted before any plan is made.
  const script = `import { adoptTicketKeys, processTicketKeys, TICKET_KEYS_ENV } from ${JSON.stringify(new URL('../../dist/control/tls.js', import.meta.url).href)};
adoptTicketKeys(process.env[TICKET_KEYS_ENV]); process.stdout.write(Buffer.from(processTicketKeys()).toString('base64'));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, [TICKET_KEYS_ENV]: keys }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await once(child, 'exit');
  t.equal(out, keys);
  t.throws(() => adoptTicketKeys(Buffer.alloc(16).toString('base64')), /must hold 80 bytes/);
  t.equal(Buffer.from(processTicketKeys()).toString('base64'), keys, 'a refused value changes nothing');
});

