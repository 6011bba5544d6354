// TLS termination as the main thread sees it (docs/tls.md): certificate and key files checked, the
// --tls-cert/--tls-key flags made into the TlsConfig the workers build their SSL_CTX from (a config file's
// `tls` key is read in config-tls.ts, with this). The workers read the files themselves (one SSL_CTX per
// worker: docs/reference/tls-probe.md, pitfall 6); the main thread checks them first, at start and at each
// reload, so that a bad file is one clear problem rather than a worker that cannot start:
//
//   file (path resolved against the config file's folder) -> read (a regular file, at most 1 MiB)
//     -> PEM? -> X509Certificate (names from subjectAltName DNS, else CN; validity: a warning)
//     -> createPrivateKey -> x509.checkPrivateKey (the key belongs to the certificate)
//
// Also here: the session ticket keys, made once per process (a --processes fleet's children take their
// parent's, from the environment: fleet.ts), and the self-signed certificate for `--tls` with no files.

import { X509Certificate, createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { CertConfig, TlsConfig } from '../route/index.js';
import { CODES, ProxyError, selfSignedCertificate } from '../sys/index.js';

/** OpenSSL's SSL_CTX_set_tlsext_ticket_keys takes 80 bytes: a 16-byte key name, a 32-byte HMAC key, a 32-byte AES key. */
export const TICKET_KEYS_LENGTH = 80;
/** Where a fleet's child finds its parent's ticket keys (base64): the environment, readable by this user only, not argv. */
export const TICKET_KEYS_ENV = 'FFIP_TLS_TICKET_KEYS';

let ticketKeys: Uint8Array | null = null;

/**
 * This process's session ticket keys: made on first use, then the same for every frontend, every worker and
 * every reload, so that a ticket issued by one worker resumes on any other (the probe: 20/20 against about
 * half with each context's own keys).
 */
export function processTicketKeys(): Uint8Array {
  return (ticketKeys ??= new Uint8Array(randomBytes(TICKET_KEYS_LENGTH)));
}

/** A fleet's child: take the parent's keys (base64) before any plan is made. Throws on a wrong length. */
export function adoptTicketKeys(base64: string): void {
  const keys = Buffer.from(base64, 'base64');
  if (keys.length !== TICKET_KEYS_LENGTH) {
    throw new ProxyError(CODES.BAD_OPTION, `${TICKET_KEYS_ENV} must hold ${TICKET_KEYS_LENGTH} bytes (base64), not ${keys.length}`);
  }
  ticketKeys = new Uint8Array(keys);
}

// A CN taken as a name: a DNS name, or `*.` and one (config-check.ts's HOST_RE; importing it would close a circle through config.ts).
const CN_RE = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;
// A certificate chain or a key is a few KB; a file much larger is not one (or is the wrong file).
const MAX_PEM_BYTES = 1 << 20;
const READ_HINTS: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'a directory, not a file' };
const CERT_BEGIN = '-----BEGIN CERTIFICATE-----';
const KEY_BEGIN = /-----BEGIN ((?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY)-----/;

/** What is wrong with one of a pair's two files: which one, and the words. */
export type PairProblem = { file: 'cert' | 'key'; what: string };
/** A pair checked: its CertConfig (absolute paths), what to warn about, or its problems. */
export type PairResult = { config: CertConfig; warnings: string[]; problems: PairProblem[] };

async function readPem(file: string): Promise<{ text: string } | { what: string }> {
  try {
    const s = await stat(file);
    if (s.isDirectory()) return { what: `cannot read ${file}: EISDIR (${READ_HINTS.EISDIR})` };
    if (!s.isFile()) return { what: `${file} is not a regular file` };
    if (s.size > MAX_PEM_BYTES) return { what: `${file} is ${s.size} bytes: over 1 MiB, not a PEM certificate or key` };
    return { text: await readFile(file, 'latin1') };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    return { what: `cannot read ${file}: ${code}${READ_HINTS[code] ? ` (${READ_HINTS[code]})` : ''}` };
  }
}

/**
 * The DNS names a certificate serves: its subjectAltName's DNS entries, lower case (node writes a name with
 * a comma or a quote as a JSON string); without any, its subject's CN when that is a host name. IP entries
 * are left out: SNI carries no address.
 */
export function certificateNames(x: X509Certificate): string[] {
  const names: string[] = [];
  for (const m of (x.subjectAltName ?? '').matchAll(/(?:^|, )DNS:("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const name = (m[1].startsWith('"') ? (JSON.parse(m[1]) as string) : m[1]).toLowerCase();
    if (!names.includes(name)) names.push(name);
  }
  if (names.length > 0) return names;
  const cn = /^CN=(.*)$/m.exec(x.subject)?.[1]?.toLowerCase();
  return cn !== undefined && CN_RE.test(cn) ? [cn] : [];
}

/** What about `x` deserves a warning at `now`: expired, or not valid yet. */
function validityWarnings(x: X509Certificate, file: string, now: number): string[] {
  if (Date.parse(x.validTo) < now) return [`the certificate in ${file} expired on ${new Date(x.validTo).toISOString()}; clients will refuse it`];
  if (Date.parse(x.validFrom) > now) return [`the certificate in ${file} is not valid before ${new Date(x.validFrom).toISOString()}; clients will refuse it until then`];
  return [];
}

/**
 * Reads and checks a certificate file and its key file (absolute paths). Every problem names the file it is
 * about; the key is matched against the certificate only when both could be read.
 */
export async function checkPair(certFile: string, keyFile: string, now = Date.now()): Promise<PairResult> {
  const result: PairResult = { config: { cert: certFile, key: keyFile, names: [] }, warnings: [], problems: [] };
  const [certPem, keyPem] = await Promise.all([readPem(certFile), readPem(keyFile)]);
  let x509: X509Certificate | null = null;
  let key: KeyObject | null = null;
  if ('what' in certPem) result.problems.push({ file: 'cert', what: certPem.what });
  else if (!certPem.text.includes(CERT_BEGIN)) {
    const swapped = KEY_BEGIN.test(certPem.text) ? ' (it holds a private key: are cert and key swapped?)' : '';
    result.problems.push({ file: 'cert', what: `${certFile} holds no PEM certificate (${CERT_BEGIN})${swapped}` });
  } else {
    try {
      x509 = new X509Certificate(certPem.text);
      result.config.names = certificateNames(x509);
      result.warnings.push(...validityWarnings(x509, certFile, now));
    } catch (e) {
      result.problems.push({ file: 'cert', what: `${certFile}: not a valid certificate: ${(e as Error).message}` });
    }
  }
  if ('what' in keyPem) result.problems.push({ file: 'key', what: keyPem.what });
  else {
    const kind = KEY_BEGIN.exec(keyPem.text)?.[1];
    if (kind === undefined) {
      const swapped = keyPem.text.includes(CERT_BEGIN) ? ' (it holds a certificate: are cert and key swapped?)' : '';
      result.problems.push({ file: 'key', what: `${keyFile} holds no PEM private key (-----BEGIN PRIVATE KEY-----)${swapped}` });
    } else if (kind === 'ENCRYPTED PRIVATE KEY' || keyPem.text.includes('Proc-Type: 4,ENCRYPTED')) {
      result.problems.push({ file: 'key', what: `${keyFile}: the key is encrypted (it needs a passphrase); give it unencrypted, readable by this user only` });
    } else {
      try {
        key = createPrivateKey(keyPem.text);
      } catch (e) {
        result.problems.push({ file: 'key', what: `${keyFile}: not a valid private key: ${(e as Error).message}` });
      }
    }
  }
  if (x509 !== null && key !== null && !x509.checkPrivateKey(key)) {
    result.problems.push({ file: 'key', what: `${keyFile} is not the key of the certificate in ${certFile}` });
  }
  return result;
}

/**
 * The flags' TLS (--tls-cert FILE --tls-key FILE, paths relative to the working directory): the TlsConfig,
 * or a ProxyError(FFIP_ERR_BAD_OPTION) naming the first problem. Warnings go to `warn`.
 */
export async function tlsFromFiles(cert: string, key: string, warn: (msg: string) => void): Promise<TlsConfig> {
  const r = await checkPair(resolve(cert), resolve(key));
  const first = r.problems[0];
  if (first !== undefined) throw new ProxyError(CODES.BAD_OPTION, `tls ${first.file}: ${first.what}`);
  for (const w of r.warnings) warn(w);
  return { certs: [r.config], ticketKeys: processTicketKeys() };
}

/** A self-signed certificate written out for `--tls` with no files. */
export type SelfSigned = {
  /** The private folder (0700) that holds both files; removed when the process exits. */
  dir: string;
  cert: string;
  key: string;
  /** SHA-256 of the certificate's DER, as `AB:CD:...`: what a client pins, or compares by eye. */
  fingerprint256: string;
};

// The folders made by this process, removed when it exits (a SIGKILL leaves one in the temp folder).
const madeDirs: string[] = [];

/** How long the demo certificate is valid: long enough for a demo, short enough not to be kept. */
export const SELF_SIGNED_DAYS = 30;

/**
 * Makes a certificate for localhost (SAN: DNS localhost, IP 127.0.0.1, IP ::1; EC P-256; 30 days) with the
 * node binary's OpenSSL (src/sys/x509.ts), checks it with node's X509Certificate (its signature, its names,
 * its key), and writes it and its key into a new private folder under the temp folder. Throws ProxyError.
 */
export function makeSelfSigned(): SelfSigned {
  const pem = selfSignedCertificate({ commonName: 'localhost', dnsNames: ['localhost'], ips: ['127.0.0.1', '::1'], days: SELF_SIGNED_DAYS });
  const x = new X509Certificate(pem.cert);
  const san = x.subjectAltName ?? '';
  if (!x.verify(x.publicKey) || !x.checkPrivateKey(createPrivateKey(pem.key)) || !san.includes('DNS:localhost') || !san.includes('IP Address:127.0.0.1')) {
    throw new ProxyError(CODES.SYSCALL, `the self-signed certificate made for --tls does not check out (subjectAltName: ${san})`);
  }
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), 'ffi-proxy-tls-')); // mode 0700
    if (madeDirs.length === 0) process.once('exit', () => madeDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
    madeDirs.push(dir);
    writeFileSync(join(dir, 'cert.pem'), pem.cert, { mode: 0o600 });
    writeFileSync(join(dir, 'key.pem'), pem.key, { mode: 0o600 });
  } catch (e) {
    throw new ProxyError(CODES.SYSCALL, `writing the self-signed certificate under ${tmpdir()}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  return { dir, cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), fingerprint256: x.fingerprint256 };
}

/** The flags' TLS options (StartOptions' tls, tlsCert and tlsKey). */
export type TlsOptions = { tls?: boolean; tlsCert?: string; tlsKey?: string };

/**
 * The flags' TLS: none; the files given (both or neither); or, for `tls: true` alone, a self-signed
 * certificate made now (makeSelfSigned). Throws ProxyError(FFIP_ERR_BAD_OPTION) naming the first problem.
 */
export async function tlsFromOptions(o: TlsOptions, warn: (msg: string) => void): Promise<TlsConfig | null> {
  if (o.tls !== undefined && typeof o.tls !== 'boolean') throw new ProxyError(CODES.BAD_OPTION, `tls must be true or false, not ${String(o.tls)}`);
  if (o.tlsCert === undefined && o.tlsKey === undefined) {
    if (o.tls !== true) return null;
    const made = makeSelfSigned();
    return tlsFromFiles(made.cert, made.key, warn);
  }
  if (o.tls === false) throw new ProxyError(CODES.BAD_OPTION, 'tls is false, but a tls certificate or key is given');
  for (const [name, v] of [['cert', o.tlsCert], ['key', o.tlsKey]] as const) {
    if (v === undefined) throw new ProxyError(CODES.BAD_OPTION, `a tls ${name === 'cert' ? 'key' : 'cert'} needs its tls ${name}: give both (--tls-cert FILE --tls-key FILE)`);
    if (typeof v !== 'string' || v === '' || v.includes('\0')) throw new ProxyError(CODES.BAD_OPTION, `tls ${name} must be a file's path, not ${JSON.stringify(v)}`);
  }
  return tlsFromFiles(o.tlsCert as string, o.tlsKey as string, warn);
}
