// A self-signed certificate made with the OpenSSL inside the node binary (libcrypto 3.0, which node
// exports; reached as libc is, through koffi.load(null)): an EC P-256 key, an X.509 v3 certificate for the
// names given, signed with SHA-256, both returned as PEM. For `--tls` with no certificate (docs/tls.md);
// never on the hot path.
//
//   EVP_PKEY_CTX_new_id(EC) -> keygen_init -> set_ec_paramgen_curve_nid(P-256) -> EVP_PKEY_keygen
//   X509_new -> version 3, random serial, notBefore/notAfter, public key, subject CN = issuer CN
//     -> extensions (subjectAltName, basicConstraints, keyUsage, extendedKeyUsage) -> X509_sign(SHA-256)
//   PEM_write_bio_X509 / PEM_write_bio_PrivateKey into memory BIOs -> read back -> free everything
//
// Thread: whichever calls it (the main thread, in practice). OpenSSL's error queue is per thread and, on
// the main thread, shared with node's own crypto: every failure drains it into the error it throws, so it
// is left empty either way (docs/reference: the probe's pitfall 1).
//
// Pointers come back from koffi 3 as BigInts (0n or null for NULL); they are only handed back to OpenSSL.
// Every type is `void *` rather than a named opaque type, so that this file cannot collide with another
// file's koffi type names in the same thread.

import { randomBytes } from 'node:crypto';
import koffi from 'koffi';
import { CODES, ProxyError } from './errors.js';

// From node's own headers (include/node/openssl/): obj_mac.h, asn1.h, bio.h.
const NID_X9_62_id_ecPublicKey = 408; // EVP_PKEY_EC
const NID_X9_62_prime256v1 = 415; // P-256
const NID_subject_alt_name = 85;
const NID_basic_constraints = 87;
const NID_key_usage = 83;
const NID_ext_key_usage = 126;
const MBSTRING_ASC = 0x1000 | 1; // MBSTRING_FLAG | 1
const BIO_CTRL_PENDING = 10;
// X509_set_version takes the zero-based number: 2 is X.509 v3 (extensions).
const X509_VERSION_3 = 2;

type Ptr = bigint | null;

function bind() {
  const lib = koffi.load(null);
  return {
    EVP_PKEY_CTX_new_id: lib.func('void *EVP_PKEY_CTX_new_id(int id, void *engine)'),
    EVP_PKEY_keygen_init: lib.func('int EVP_PKEY_keygen_init(void *ctx)'),
    EVP_PKEY_CTX_set_ec_paramgen_curve_nid: lib.func('int EVP_PKEY_CTX_set_ec_paramgen_curve_nid(void *ctx, int nid)'),
    // The key comes back through EVP_PKEY **: an 8-byte out-parameter (a pointer on 64-bit Linux).
    EVP_PKEY_keygen: lib.func('int EVP_PKEY_keygen(void *ctx, _Out_ void **pkey)'),
    EVP_PKEY_CTX_free: lib.func('void EVP_PKEY_CTX_free(void *ctx)'),
    EVP_PKEY_free: lib.func('void EVP_PKEY_free(void *pkey)'),
    X509_new: lib.func('void *X509_new()'),
    X509_free: lib.func('void X509_free(void *x)'),
    X509_set_version: lib.func('int X509_set_version(void *x, long version)'),
    X509_get_serialNumber: lib.func('void *X509_get_serialNumber(void *x)'),
    BN_bin2bn: lib.func('void *BN_bin2bn(const uint8_t *s, int len, void *ret)'),
    BN_to_ASN1_INTEGER: lib.func('void *BN_to_ASN1_INTEGER(void *bn, void *ai)'),
    BN_free: lib.func('void BN_free(void *bn)'),
    X509_getm_notBefore: lib.func('void *X509_getm_notBefore(void *x)'),
    X509_getm_notAfter: lib.func('void *X509_getm_notAfter(void *x)'),
    X509_gmtime_adj: lib.func('void *X509_gmtime_adj(void *s, long adj)'),
    X509_set_pubkey: lib.func('int X509_set_pubkey(void *x, void *pkey)'),
    X509_get_subject_name: lib.func('void *X509_get_subject_name(void *x)'),
    X509_NAME_add_entry_by_txt: lib.func(
      'int X509_NAME_add_entry_by_txt(void *name, const char *field, int type, const char *bytes, int len, int loc, int set)',
    ),
    X509_set_issuer_name: lib.func('int X509_set_issuer_name(void *x, void *name)'),
    X509V3_EXT_conf_nid: lib.func('void *X509V3_EXT_conf_nid(void *conf, void *ctx, int nid, const char *value)'),
    X509_add_ext: lib.func('int X509_add_ext(void *x, void *ext, int loc)'),
    X509_EXTENSION_free: lib.func('void X509_EXTENSION_free(void *ext)'),
    X509_sign: lib.func('int X509_sign(void *x, void *pkey, void *md)'),
    EVP_sha256: lib.func('void *EVP_sha256()'),
    BIO_s_mem: lib.func('void *BIO_s_mem()'),
    BIO_new: lib.func('void *BIO_new(void *method)'),
    BIO_free: lib.func('int BIO_free(void *bio)'),
    BIO_ctrl: lib.func('long BIO_ctrl(void *bio, int cmd, long larg, void *parg)'),
    BIO_read: lib.func('int BIO_read(void *bio, _Out_ uint8_t *buf, int len)'),
    PEM_write_bio_X509: lib.func('int PEM_write_bio_X509(void *bio, void *x)'),
    PEM_write_bio_PrivateKey: lib.func(
      'int PEM_write_bio_PrivateKey(void *bio, void *pkey, void *cipher, void *kstr, int klen, void *cb, void *u)',
    ),
    ERR_get_error: lib.func('unsigned long ERR_get_error()'),
    ERR_error_string_n: lib.func('void ERR_error_string_n(unsigned long e, _Out_ uint8_t *buf, uintptr_t len)'),
  };
}

// Bound on first use: a worker imports src/sys/ and never makes a certificate.
let fns: ReturnType<typeof bind> | null = null;

/** An OpenSSL call failed: `call` is its name; the message carries OpenSSL's own reason when it gave one. */
export class OpenSslError extends ProxyError {
  readonly call: string;
  readonly reason: string;
  constructor(call: string, reason: string) {
    super(CODES.SYSCALL, `${call}: ${reason}`);
    this.name = 'OpenSslError';
    this.call = call;
    this.reason = reason;
  }
}

/** Empties this thread's OpenSSL error queue; returns its first entry as text (`error:...:reason`), or ''. */
function drainErrors(f: ReturnType<typeof bind>): string {
  let first = '';
  for (let e = f.ERR_get_error(); e !== 0 && e !== 0n; e = f.ERR_get_error()) {
    if (first !== '') continue;
    const buf = Buffer.alloc(256);
    f.ERR_error_string_n(e, buf, buf.length);
    first = buf.subarray(0, buf.indexOf(0) < 0 ? buf.length : buf.indexOf(0)).toString('latin1');
  }
  return first;
}

const isNull = (p: Ptr): boolean => p === null || p === 0n;

/** What to put in the certificate. */
export type SelfSignedSpec = {
  /** The subject's (and issuer's) CN. */
  commonName: string;
  /** subjectAltName DNS entries. */
  dnsNames: string[];
  /** subjectAltName IP entries, IPv4 or IPv6 text. */
  ips: string[];
  /** Valid from a minute ago (clocks differ a little) to this many days from now. */
  days: number;
};

/** A certificate and its private key (PKCS#8, unencrypted), PEM. */
export type PemPair = { cert: string; key: string };

/**
 * Makes an EC P-256 key and a self-signed X.509 v3 certificate for `spec`, signed with ECDSA-SHA256. Throws
 * OpenSslError naming the call that failed (and OpenSSL's reason); frees what it made either way.
 */
export function selfSignedCertificate(spec: SelfSignedSpec): PemPair {
  const f = (fns ??= bind());
  // Whatever an earlier caller on this thread left would be read as ours.
  drainErrors(f);
  const owned: (() => void)[] = [];
  const must = (call: string, ok: boolean): void => {
    if (!ok) throw new OpenSslError(call, drainErrors(f) || 'failed');
  };
  const made = (call: string, p: Ptr, free: ((p: Ptr) => void) | null): Ptr => {
    must(call, !isNull(p));
    if (free) owned.push(() => free(p));
    return p;
  };
  try {
    const pkey = ecKey(f, must, made);
    const x = made('X509_new', f.X509_new(), f.X509_free);
    must('X509_set_version', f.X509_set_version(x, X509_VERSION_3) === 1);
    // A random positive 127-bit serial (RFC 5280 allows up to 20 octets; browsers reject repeated serials).
    const serial = randomBytes(16);
    serial[0] &= 0x7f;
    const bn = made('BN_bin2bn', f.BN_bin2bn(serial, serial.length, null), f.BN_free);
    made('BN_to_ASN1_INTEGER', f.BN_to_ASN1_INTEGER(bn, f.X509_get_serialNumber(x)), null);
    made('X509_gmtime_adj', f.X509_gmtime_adj(f.X509_getm_notBefore(x), -60), null);
    made('X509_gmtime_adj', f.X509_gmtime_adj(f.X509_getm_notAfter(x), Math.round(spec.days * 86_400)), null);
    must('X509_set_pubkey', f.X509_set_pubkey(x, pkey) === 1);
    const name = made('X509_get_subject_name', f.X509_get_subject_name(x), null);
    must('X509_NAME_add_entry_by_txt', f.X509_NAME_add_entry_by_txt(name, 'CN', MBSTRING_ASC, spec.commonName, -1, -1, 0) === 1);
    must('X509_set_issuer_name', f.X509_set_issuer_name(x, name) === 1);
    const san = [...spec.dnsNames.map((n) => `DNS:${n}`), ...spec.ips.map((ip) => `IP:${ip}`)].join(',');
    const extensions: [number, string][] = [
      [NID_basic_constraints, 'critical,CA:FALSE'],
      [NID_key_usage, 'critical,digitalSignature'],
      [NID_ext_key_usage, 'serverAuth'],
    ];
    if (san !== '') extensions.unshift([NID_subject_alt_name, san]);
    for (const [nid, value] of extensions) {
      // No X509V3_CTX (NULL): none of these extensions refers to the issuer or the subject's key.
      const ext = f.X509V3_EXT_conf_nid(null, null, nid, value);
      must(`X509V3_EXT_conf_nid ${value}`, !isNull(ext));
      const added = f.X509_add_ext(x, ext, -1);
      f.X509_EXTENSION_free(ext); // X509_add_ext copies it
      must('X509_add_ext', added === 1);
    }
    must('X509_sign', f.X509_sign(x, pkey, f.EVP_sha256()) > 0);
    const cert = pem(f, must, made, 'PEM_write_bio_X509', (bio) => f.PEM_write_bio_X509(bio, x));
    const key = pem(f, must, made, 'PEM_write_bio_PrivateKey', (bio) => f.PEM_write_bio_PrivateKey(bio, pkey, null, null, 0, null, null));
    return { cert, key };
  } finally {
    for (const free of owned.reverse()) free();
    drainErrors(f);
  }
}

type Must = (call: string, ok: boolean) => void;
type Made = (call: string, p: Ptr, free: ((p: Ptr) => void) | null) => Ptr;

/** A new EC key on P-256 (owned: freed with the rest). */
function ecKey(f: ReturnType<typeof bind>, must: Must, made: Made): Ptr {
  const ctx = made('EVP_PKEY_CTX_new_id', f.EVP_PKEY_CTX_new_id(NID_X9_62_id_ecPublicKey, null), f.EVP_PKEY_CTX_free);
  must('EVP_PKEY_keygen_init', f.EVP_PKEY_keygen_init(ctx) === 1);
  must('EVP_PKEY_CTX_set_ec_paramgen_curve_nid', f.EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) === 1);
  const out: Ptr[] = [null];
  must('EVP_PKEY_keygen', f.EVP_PKEY_keygen(ctx, out) === 1);
  return made('EVP_PKEY_keygen', out[0], f.EVP_PKEY_free);
}

/** What `write` puts into a new memory BIO, as text. */
function pem(f: ReturnType<typeof bind>, must: Must, made: Made, call: string, write: (bio: Ptr) => number): string {
  const bio = made('BIO_new', f.BIO_new(f.BIO_s_mem()), f.BIO_free);
  must(call, write(bio) === 1);
  const n = Number(f.BIO_ctrl(bio, BIO_CTRL_PENDING, 0, null));
  const buf = Buffer.alloc(n);
  must('BIO_read', n > 0 && f.BIO_read(bio, buf, n) === n);
  return buf.toString('latin1');
}
