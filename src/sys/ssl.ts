// TLS through the OpenSSL 3 that the node binary exports (docs/tls.md): `koffi.load(null)` reaches libssl's
// and libcrypto's symbols as it reaches libc's. Pointers (SSL_CTX*, SSL*, buffers) are passed and returned
// as `uintptr_t` numbers: heap addresses are below 2^53, and a number costs less than a BigInt and cannot
// be mistaken for a typed array.
//
// Hot-path wrappers (sslRead, sslWrite, sslHandshake) return as libc's do: a count, 0 at the end of the
// stream, -EAGAIN when OpenSSL wants the socket readable or writable again (edge-triggered: the slot's
// flags say which edge to wait for), or -errno; -EPROTO for a TLS error, whose OpenSSL code is kept in
// `lastSslCode` and worded by sslReason() only when a log line is printed.
//
// Error queue (the probe's rule): OpenSSL's thread-local queue is drained after every SSL_ERROR_SSL or
// SSL_ERROR_SYSCALL and after a failed set-up call, so that it is empty before the next call and
// SSL_get_error can be believed, without a clear before every call (which cost 4% of throughput).
//
// Callbacks (SNI, ALPN) belong to the thread that registered them: each worker registers its own, once,
// and makes its own SSL_CTX objects. A callback never throws into C: its body is wrapped.

import koffi from 'koffi';
import { E } from './constants.js';
import { ProxyError, CODES } from './errors.js';

const lib = koffi.load(null);

const c = {
  TLS_server_method: lib.func('uintptr_t TLS_server_method()'),
  TLS_client_method: lib.func('uintptr_t TLS_client_method()'),
  SSL_CTX_set_verify: lib.func('void SSL_CTX_set_verify(uintptr_t ctx, int mode, uintptr_t cb)'),
  SSL_CTX_load_verify_locations: lib.func('int SSL_CTX_load_verify_locations(uintptr_t ctx, const char *file, const char *dir)'),
  SSL_CTX_set_default_verify_paths: lib.func('int SSL_CTX_set_default_verify_paths(uintptr_t ctx)'),
  SSL_set_connect_state: lib.func('void SSL_set_connect_state(uintptr_t ssl)'),
  SSL_ctrl_str: lib.func('long SSL_ctrl(uintptr_t ssl, int cmd, long larg, const char *parg)'),
  SSL_set1_host: lib.func('int SSL_set1_host(uintptr_t ssl, const char *host)'),
  SSL_get0_param: lib.func('uintptr_t SSL_get0_param(uintptr_t ssl)'),
  X509_VERIFY_PARAM_set1_ip_asc: lib.func('int X509_VERIFY_PARAM_set1_ip_asc(uintptr_t param, const char *ip)'),
  SSL_CTX_new: lib.func('uintptr_t SSL_CTX_new(uintptr_t method)'),
  SSL_CTX_free: lib.func('void SSL_CTX_free(uintptr_t ctx)'),
  SSL_CTX_set_options: lib.func('uint64_t SSL_CTX_set_options(uintptr_t ctx, uint64_t op)'),
  SSL_CTX_ctrl: lib.func('long SSL_CTX_ctrl(uintptr_t ctx, int cmd, long larg, uintptr_t parg)'),
  SSL_CTX_ctrl_str: lib.func('long SSL_CTX_ctrl(uintptr_t ctx, int cmd, long larg, const char *parg)'),
  SSL_CTX_ctrl_buf: lib.func('long SSL_CTX_ctrl(uintptr_t ctx, int cmd, long larg, void *parg)'),
  SSL_CTX_callback_ctrl: lib.func('long SSL_CTX_callback_ctrl(uintptr_t ctx, int cmd, void *fp)'),
  SSL_CTX_set_cipher_list: lib.func('int SSL_CTX_set_cipher_list(uintptr_t ctx, const char *str)'),
  SSL_CTX_use_certificate_chain_file: lib.func('int SSL_CTX_use_certificate_chain_file(uintptr_t ctx, const char *file)'),
  SSL_CTX_use_PrivateKey_file: lib.func('int SSL_CTX_use_PrivateKey_file(uintptr_t ctx, const char *file, int type)'),
  SSL_CTX_check_private_key: lib.func('int SSL_CTX_check_private_key(uintptr_t ctx)'),
  SSL_CTX_set_alpn_select_cb: lib.func('void SSL_CTX_set_alpn_select_cb(uintptr_t ctx, void *cb, uintptr_t arg)'),
  SSL_new: lib.func('uintptr_t SSL_new(uintptr_t ctx)'),
  SSL_free: lib.func('void SSL_free(uintptr_t ssl)'),
  SSL_set_fd: lib.func('int SSL_set_fd(uintptr_t ssl, int fd)'),
  SSL_set_accept_state: lib.func('void SSL_set_accept_state(uintptr_t ssl)'),
  SSL_do_handshake: lib.func('int SSL_do_handshake(uintptr_t ssl)'),
  SSL_read: lib.func('int SSL_read(uintptr_t ssl, uintptr_t buf, int num)'),
  SSL_read_buf: lib.func('int SSL_read(uintptr_t ssl, void *buf, int num)'),
  SSL_write: lib.func('int SSL_write(uintptr_t ssl, uintptr_t buf, int num)'),
  SSL_write_buf: lib.func('int SSL_write(uintptr_t ssl, void *buf, int num)'),
  SSL_get_error: lib.func('int SSL_get_error(uintptr_t ssl, int ret)'),
  SSL_shutdown: lib.func('int SSL_shutdown(uintptr_t ssl)'),
  SSL_get_servername: lib.func('const char *SSL_get_servername(uintptr_t ssl, int type)'),
  SSL_get_SSL_CTX: lib.func('uintptr_t SSL_get_SSL_CTX(uintptr_t ssl)'),
  SSL_set_SSL_CTX: lib.func('uintptr_t SSL_set_SSL_CTX(uintptr_t ssl, uintptr_t ctx)'),
  SSL_session_reused: lib.func('int SSL_session_reused(uintptr_t ssl)'),
  SSL_select_next_proto: lib.func('int SSL_select_next_proto(uintptr_t out, uintptr_t outlen, uintptr_t server, uint32_t serverLen, uintptr_t client, uint32_t clientLen)'),
  BIO_s_mem: lib.func('uintptr_t BIO_s_mem()'),
  BIO_new: lib.func('uintptr_t BIO_new(uintptr_t type)'),
  BIO_write: lib.func('int BIO_write(uintptr_t b, uintptr_t data, int len)'),
  BIO_ctrl: lib.func('long BIO_ctrl(uintptr_t b, int cmd, long larg, uintptr_t parg)'),
  BIO_new_socket: lib.func('uintptr_t BIO_new_socket(int fd, int closeFlag)'),
  SSL_set_bio: lib.func('void SSL_set_bio(uintptr_t ssl, uintptr_t rbio, uintptr_t wbio)'),
  SSL_set0_rbio: lib.func('void SSL_set0_rbio(uintptr_t ssl, uintptr_t rbio)'),
  SSL_get_rbio: lib.func('uintptr_t SSL_get_rbio(uintptr_t ssl)'),
  ERR_get_error: lib.func('unsigned long ERR_get_error()'),
  ERR_clear_error: lib.func('void ERR_clear_error()'),
  ERR_error_string_n: lib.func('void ERR_error_string_n(unsigned long e, void *buf, size_t len)'),
};

const SSL_ERROR = { SSL: 1, WANT_READ: 2, WANT_WRITE: 3, SYSCALL: 5, ZERO_RETURN: 6 } as const;
const CTRL = { MODE: 33, SESS_CACHE_MODE: 44, SERVERNAME_CB: 53, TICKET_KEYS: 59, GROUPS_LIST: 92, MIN_PROTO: 123 } as const;
const OP = {
  IGNORE_UNEXPECTED_EOF: 1n << 7n, // a close without close_notify is an end, not an error (curl, wrk do it)
  NO_COMPRESSION: 1n << 17n,
  CIPHER_SERVER_PREFERENCE: 1n << 22n,
  NO_RENEGOTIATION: 1n << 30n,
} as const;
const MODE = { ACCEPT_MOVING_WRITE_BUFFER: 2, RELEASE_BUFFERS: 0x10 } as const;
const TLS1_2_VERSION = 0x0303;
const FILETYPE_PEM = 1;
const TLSEXT_ERR = { OK: 0, ALERT_FATAL: 2, NOACK: 3 } as const;

// Mozilla's "intermediate" profile: TLS 1.2 and 1.3, these TLS 1.2 suites (TLS 1.3's are OpenSSL's
// defaults, all three of which the profile lists), these groups.
const CIPHERS_TLS12 = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'DHE-RSA-AES128-GCM-SHA256',
  'DHE-RSA-AES256-GCM-SHA384',
  'DHE-RSA-CHACHA20-POLY1305',
].join(':');
const GROUPS = 'X25519:prime256v1:secp384r1';

/** The OpenSSL error code of the last -EPROTO (0: none, e.g. an unexpected EOF with no code). */
export let lastSslCode = 0;

/** Takes every code off this thread's error queue; keeps the first (the cause). */
function drainErrors(): number {
  let first = 0;
  for (let e = Number(c.ERR_get_error()); e !== 0; e = Number(c.ERR_get_error())) if (first === 0) first = e;
  return first;
}

/** OpenSSL's words for an error code: "error:0A00009C:SSL routines::http request". For logs only. */
export function sslReason(code: number): string {
  if (code === 0) return 'the peer closed or sent nothing usable';
  const buf = Buffer.alloc(256);
  c.ERR_error_string_n(code, buf, buf.length);
  const s = buf.toString('latin1', 0, buf.indexOf(0));
  // "error:0A00009C:SSL routines::http request" -> "http request (0A00009C)"
  const parts = s.split(':');
  return parts.length >= 5 ? `${parts.slice(4).join(':')} (${parts[1]})` : s;
}

/** After a call returned `r` <= 0: -EAGAIN, 0 (the end), -errno or -EPROTO. `errno` read right after the call. */
function failed(ssl: number, r: number, errno: number): number {
  switch (c.SSL_get_error(ssl, r) as number) {
    case SSL_ERROR.WANT_READ:
    case SSL_ERROR.WANT_WRITE:
      return -E.EAGAIN;
    case SSL_ERROR.ZERO_RETURN:
      return 0;
    case SSL_ERROR.SYSCALL:
      lastSslCode = drainErrors();
      if (lastSslCode !== 0) return -E.EPROTO;
      return errno === 0 ? 0 : -errno;
    default:
      lastSslCode = drainErrors();
      return -E.EPROTO;
  }
}

export function sslRead(ssl: number, addr: number, len: number): number {
  const r = c.SSL_read(ssl, addr, len) as number;
  return r > 0 ? r : failed(ssl, r, koffi.errno());
}

export function sslReadBuffer(ssl: number, buf: Uint8Array, len: number): number {
  const r = c.SSL_read_buf(ssl, buf, len) as number;
  return r > 0 ? r : failed(ssl, r, koffi.errno());
}

export function sslWrite(ssl: number, addr: number, len: number): number {
  const r = c.SSL_write(ssl, addr, len) as number;
  return r > 0 ? r : failed(ssl, r, koffi.errno());
}

export function sslWriteBuffer(ssl: number, buf: Uint8Array, len: number): number {
  const r = c.SSL_write_buf(ssl, buf, len) as number;
  return r > 0 ? r : failed(ssl, r, koffi.errno());
}

/** One step of a server handshake: 1 when it is done, -EAGAIN, or 0 / -errno / -EPROTO when it failed. */
export function sslHandshake(ssl: number): number {
  const r = c.SSL_do_handshake(ssl) as number;
  if (r === 1) return 1;
  const e = failed(ssl, r, koffi.errno());
  return e === 0 ? -E.ECONNRESET : e;
}

/** A new server-side SSL over socket fd, from context ctx; 0 when OpenSSL could not make one. */
export function sslAccepting(ctx: number, fd: number): number {
  const ssl = c.SSL_new(ctx) as number;
  if (ssl === 0) {
    drainErrors();
    return 0;
  }
  c.SSL_set_fd(ssl, fd);
  c.SSL_set_accept_state(ssl);
  return ssl;
}

const BIO_CTRL_PENDING = 10;
const BIO_C_SET_BUF_MEM_EOF_RETURN = 130;
const BIO_NOCLOSE = 0;

/**
 * As sslAccepting, for a client whose first `len` bytes (at C address `addr`) were already read from the
 * socket (with its PROXY header): OpenSSL reads them first, from a memory BIO, and then the socket, once
 * sslPrefixSpent() has swapped them. 0 when OpenSSL could not make one.
 */
export function sslAcceptingAfter(ctx: number, fd: number, addr: number, len: number): number {
  const ssl = c.SSL_new(ctx) as number;
  const rbio = ssl === 0 ? 0 : (c.BIO_new(c.BIO_s_mem()) as number);
  const wbio = rbio === 0 ? 0 : (c.BIO_new_socket(fd, BIO_NOCLOSE) as number);
  if (wbio === 0) {
    drainErrors();
    if (ssl !== 0) c.SSL_free(ssl);
    return 0;
  }
  c.BIO_write(rbio, addr, len);
  // Empty is "try again" (WANT_READ), not the end of the stream.
  c.BIO_ctrl(rbio, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, 0);
  c.SSL_set_bio(ssl, rbio, wbio); // ssl owns both from now on
  c.SSL_set_accept_state(ssl);
  return ssl;
}

/** When ssl has read all the bytes sslAcceptingAfter() gave it, it reads the socket from now on: true. */
export function sslPrefixSpent(ssl: number, fd: number): boolean {
  if ((c.BIO_ctrl(c.SSL_get_rbio(ssl), BIO_CTRL_PENDING, 0, 0) as number) > 0) return false;
  c.SSL_set0_rbio(ssl, c.BIO_new_socket(fd, BIO_NOCLOSE)); // frees the memory BIO
  return true;
}

/** Sends close_notify once (its result does not matter on a non-blocking socket): before a FIN. */
export function sslShutdown(ssl: number): void {
  if ((c.SSL_shutdown(ssl) as number) < 0) drainErrors();
}

/** Frees ssl (and the socket BIO SSL_set_fd made; the fd stays the caller's to close). */
export function sslFree(ssl: number): void {
  c.SSL_free(ssl);
}

export function sslResumed(ssl: number): boolean {
  return (c.SSL_session_reused(ssl) as number) === 1;
}

/** What a worker's server context is made from. */
export type ContextSpec = { cert: string; key: string; ticketKeys: Uint8Array; http: boolean };

/**
 * A server context: Mozilla's intermediate profile, tickets with the shared keys (resumption on any worker
 * and process), no stateful session cache, buffers released while idle, whole writes. Throws ProxyError with OpenSSL's words when the certificate or key will not do.
 */
export function serverContext(spec: ContextSpec): number {
  const ctx = c.SSL_CTX_new(c.TLS_server_method()) as number;
  if (ctx === 0) throw new ProxyError(CODES.BAD_CONFIG, `SSL_CTX_new: ${sslReason(drainErrors())}`);
  const fail = (what: string): never => {
    const why = sslReason(drainErrors());
    c.SSL_CTX_free(ctx);
    throw new ProxyError(CODES.BAD_CONFIG, `${what}: ${why}`);
  };
  c.SSL_CTX_set_options(ctx, OP.IGNORE_UNEXPECTED_EOF | OP.NO_COMPRESSION | OP.CIPHER_SERVER_PREFERENCE | OP.NO_RENEGOTIATION);
  c.SSL_CTX_ctrl(ctx, CTRL.MIN_PROTO, TLS1_2_VERSION, 0);
  // Not ENABLE_PARTIAL_WRITE: a write then returns all it was given or WANT_WRITE, never a short count the
  // seam would take for a full socket (edge-triggered, its EPOLLOUT would never come). A write that wanted
  // the socket is retried with the same bytes (the outbox from the same offset; it may have grown).
  c.SSL_CTX_ctrl(ctx, CTRL.MODE, MODE.ACCEPT_MOVING_WRITE_BUFFER | MODE.RELEASE_BUFFERS, 0);
  c.SSL_CTX_ctrl(ctx, CTRL.SESS_CACHE_MODE, 0, 0);
  if ((c.SSL_CTX_set_cipher_list(ctx, CIPHERS_TLS12) as number) !== 1) fail('cipher list');
  if ((c.SSL_CTX_ctrl_str(ctx, CTRL.GROUPS_LIST, 0, GROUPS) as number) !== 1) fail('groups');
  if ((c.SSL_CTX_ctrl_buf(ctx, CTRL.TICKET_KEYS, spec.ticketKeys.length, spec.ticketKeys) as number) !== 1) fail('ticket keys');
  if ((c.SSL_CTX_use_certificate_chain_file(ctx, spec.cert) as number) !== 1) fail(spec.cert);
  if ((c.SSL_CTX_use_PrivateKey_file(ctx, spec.key, FILETYPE_PEM) as number) !== 1) fail(spec.key);
  if ((c.SSL_CTX_check_private_key(ctx) as number) !== 1) fail(`${spec.key} does not match ${spec.cert}`);
  c.SSL_CTX_callback_ctrl(ctx, CTRL.SERVERNAME_CB, callbacks().servername);
  if (spec.http) c.SSL_CTX_set_alpn_select_cb(ctx, callbacks().alpn, 0);
  return ctx;
}

/** Where Debian and its kin keep the system's trusted certificates (node's OpenSSL looks in its own build's dir). */
const SYSTEM_CA = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt'];

/**
 * A client context for TLS to a backend: TLS 1.2 and up, and with `verify` the server's chain checked against
 * `ca` (a PEM file) or the system's store. Throws ProxyError with OpenSSL's words when `ca` will not load.
 */
export function clientContext(verify: boolean, ca: string | null, exists: (f: string) => boolean, cert: { cert: string; key: string } | null = null): number {
  const ctx = c.SSL_CTX_new(c.TLS_client_method()) as number;
  if (ctx === 0) throw new ProxyError(CODES.BAD_CONFIG, `SSL_CTX_new: ${sslReason(drainErrors())}`);
  c.SSL_CTX_set_options(ctx, OP.IGNORE_UNEXPECTED_EOF | OP.NO_COMPRESSION | OP.NO_RENEGOTIATION);
  c.SSL_CTX_ctrl(ctx, CTRL.MIN_PROTO, TLS1_2_VERSION, 0);
  c.SSL_CTX_ctrl(ctx, CTRL.MODE, MODE.ACCEPT_MOVING_WRITE_BUFFER | MODE.RELEASE_BUFFERS, 0);
  if (verify) {
    c.SSL_CTX_set_verify(ctx, 1 /* SSL_VERIFY_PEER */, 0);
    const file = ca ?? SYSTEM_CA.find(exists) ?? null;
    const ok = file !== null ? c.SSL_CTX_load_verify_locations(ctx, file, null) : c.SSL_CTX_set_default_verify_paths(ctx);
    if ((ok as number) !== 1) {
      const why = sslReason(drainErrors());
      c.SSL_CTX_free(ctx);
      throw new ProxyError(CODES.BAD_CONFIG, `${file ?? 'the default verify paths'}: ${why}`);
    }
  }
  if (cert !== null) {
    const ok =
      (c.SSL_CTX_use_certificate_chain_file(ctx, cert.cert) as number) === 1 &&
      (c.SSL_CTX_use_PrivateKey_file(ctx, cert.key, FILETYPE_PEM) as number) === 1 &&
      (c.SSL_CTX_check_private_key(ctx) as number) === 1;
    if (!ok) {
      const why = sslReason(drainErrors());
      c.SSL_CTX_free(ctx);
      throw new ProxyError(CODES.BAD_CONFIG, `client certificate ${cert.cert}: ${why}`);
    }
  }
  return ctx;
}

/**
 * A client SSL over socket fd, from context ctx: SNI `name` (none for an IP address), and with `verify` the
 * certificate's name (or IP address) checked against it. 0 when OpenSSL could not make one.
 */
export function sslConnecting(ctx: number, fd: number, name: string, isIp: boolean, verify: boolean): number {
  const ssl = c.SSL_new(ctx) as number;
  if (ssl === 0) {
    drainErrors();
    return 0;
  }
  c.SSL_set_fd(ssl, fd);
  c.SSL_set_connect_state(ssl);
  if (!isIp && name !== '') c.SSL_ctrl_str(ssl, 55 /* SSL_CTRL_SET_TLSEXT_HOSTNAME */, 0, name);
  if (verify) {
    const ok = isIp ? c.X509_VERIFY_PARAM_set1_ip_asc(c.SSL_get0_param(ssl), name) : c.SSL_set1_host(ssl, name);
    if ((ok as number) !== 1) drainErrors();
  }
  return ssl;
}

/** Replaces ctx's session ticket keys (80 bytes): tickets issued before no longer resume (a full handshake). */
export function setTicketKeys(ctx: number, keys: Uint8Array): void {
  if ((c.SSL_CTX_ctrl_buf(ctx, CTRL.TICKET_KEYS, keys.length, keys) as number) !== 1) drainErrors();
}

export function contextFree(ctx: number): void {
  c.SSL_CTX_free(ctx);
}

// ---- callbacks (one set per thread) -------------------------------------------------------------------

/**
 * Chooses the context for a client's SNI name: given the name (or null when it sent none) and the context
 * the handshake started on, the context to switch to (0: keep it). Set by the transport layer.
 */
let chooseContext: (name: string | null, current: number) => number = () => 0;

export function onServerName(choose: (name: string | null, current: number) => number): void {
  chooseContext = choose;
}

const ServernameCb = koffi.proto('int ffip_servername_cb(uintptr_t ssl, int *al, uintptr_t arg)');
const AlpnCb = koffi.proto('int ffip_alpn_cb(uintptr_t ssl, uintptr_t out, uintptr_t outlen, uintptr_t inp, uint32_t inlen, uintptr_t arg)');

// ALPN: what an HTTP/1 frontend offers, in wire format; kept alive for the thread (OpenSSL points into it).
const ALPN_HTTP1 = Buffer.from('\x08http/1.1', 'latin1');
let alpnAddr = 0;

let registered: { servername: unknown; alpn: unknown } | null = null;

function callbacks(): { servername: unknown; alpn: unknown } {
  if (registered !== null) return registered;
  alpnAddr = Number(koffi.address(ALPN_HTTP1));
  const servername = koffi.register((ssl: number): number => {
    try {
      const name = c.SSL_get_servername(ssl, 0) as string | null;
      const to = chooseContext(name, c.SSL_get_SSL_CTX(ssl) as number);
      if (to !== 0) c.SSL_set_SSL_CTX(ssl, to);
      return TLSEXT_ERR.OK;
    } catch {
      return TLSEXT_ERR.ALERT_FATAL;
    }
  }, koffi.pointer(ServernameCb));
  const alpn = koffi.register((_ssl: number, out: number, outlen: number, inp: number, inlen: number): number => {
    try {
      const r = c.SSL_select_next_proto(out, outlen, alpnAddr, ALPN_HTTP1.length, inp, inlen) as number;
      return r === 1 ? TLSEXT_ERR.OK : TLSEXT_ERR.NOACK;
    } catch {
      return TLSEXT_ERR.NOACK;
    }
  }, koffi.pointer(AlpnCb));
  registered = { servername, alpn };
  return registered;
}
