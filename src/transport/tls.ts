// TLS as a transport (docs/tls.md): a client of a TLS frontend is a slot whose `xprt` is TLS, and the
// seam's rx/tx (io.ts) call SSL_read/SSL_write on it instead of recv/send; the protocols above do not
// change. Each worker makes its own SSL_CTX per certificate (a callback belongs to the thread that
// registered it), from the files the main thread checked; session tickets use the keys the main thread
// made, the same in every worker and process, so a client resumes whichever worker it reaches.
//
//   accept ──> SSL_new (accept state), PROTO.TLS, the header deadline ──> handshake steps on each event
//     ──> done: the frontend's protocol starts (READABLE set: OpenSSL may already hold its first bytes)
//     └─> failed (not TLS, no shared version or cipher, the deadline): logged with OpenSSL's reason, closed
//
// Per slot, the SSL* lives in one place, `sslOf` (ssl-slots.ts), from SSL_new to SSL_free in releaseSlot(). TLS bytes are copied: no splice on a TLS slot (kTLS is not in node's OpenSSL).

import { createHmac } from 'node:crypto';
import type { WorkerContext } from '../core/context.js';
import type { ConnTable } from '../core/table.js';
import { LEVEL, type Logger } from '../core/log.js';
import { TERM } from '../core/term.js';
import { FL, KIND, PROTO, ST, XPRT } from '../core/types.js';
import { E, contextFree, errnoName, lastSslCode, onServerName, serverContext, setTicketKeys, sslAccepting, sslAcceptingAfter, sslHandshake, sslPrefixSpent, sslReason } from '../sys/index.js';
import { dropInbox } from './boxes.js';
import { endPair } from './close.js';
import { sizeSslSlots, sslOf } from './ssl-slots.js';

/** What a frontend's TLS is made from (route/config.ts's TlsConfig, as this layer needs it). */
export type TlsFrontend = { certs: { cert: string; key: string; names: string[] }[]; ticketKeys: Uint8Array } | null | undefined;


type Contexts = {
  /** One context per certificate, the first the default. */
  ctxs: number[];
  /** Per certificate, its names; wildcards as their suffix with the dot (`*.a.com` -> `.a.com`). */
  exact: Map<string, number>;
  wild: [string, number][];
};

// Session ticket keys rotate on a schedule (docs/tls.md, "Session resumption"): each period's keys are
// derived from the process's shared secret (the same in every worker and --processes child) and the
// period's number, so every worker and process changes keys at the same moment without a message. A
// ticket resumes until the end of the period it was issued in.
const ROTATE_MS = Number(process.env.FFIP_TLS_TICKET_ROTATE_MS) > 0 ? Number(process.env.FFIP_TLS_TICKET_ROTATE_MS) : 12 * 3600_000;
let secret: Uint8Array | null = null;
let period = -1;
/** When the next period starts (ms since the epoch). */
let nextRotation = Infinity;

/** The keys of period n: 80 bytes of HMAC-SHA256 over the secret (name, HMAC key, AES key). */
function keysFor(n: number): Buffer {
  const block = (i: number) => createHmac('sha256', secret!).update(`ffi-proxy session ticket keys ${n} ${i}`).digest();
  return Buffer.concat([block(0), block(1), block(2)]).subarray(0, 80);
}

/** Gives every context the keys of the period `now` falls in, if it changed (at most once a period). */
function rotate(now: number): void {
  const n = Math.floor(now / ROTATE_MS);
  nextRotation = (n + 1) * ROTATE_MS;
  if (n === period || secret === null) return;
  period = n;
  const keys = keysFor(n);
  for (const c of byFrontend) if (c) for (const ctx of c.ctxs) setTicketKeys(ctx, keys);
}

/** Per frontend index: its contexts, or null (plain, or its certificates would not load here). */
const byFrontend: (Contexts | null)[] = [];
/** Context address -> its frontend's contexts, for the SNI callback. */
const byContext = new Map<number, Contexts>();

/**
 * The frontends' TLS as a reload leaves them: every TLS frontend's contexts made again (a reload is how
 * certificates are replaced), the old ones freed (OpenSSL keeps a context alive while a connection uses it).
 * A frontend whose certificates will not load here is logged and its clients closed at accept.
 */
export function configureTls(frontends: readonly ({ mode: string; tls?: TlsFrontend } | null)[], capacity: number, log: Logger): void {
  for (const c of byFrontend) if (c) for (const ctx of c.ctxs) contextFree(ctx);
  byFrontend.length = 0;
  byContext.clear();
  frontends.forEach((f, i) => {
    if (f === null || !f.tls) return;
    sizeSslSlots(capacity);
    try {
      byFrontend[i] = contexts(f.tls, f.mode === 'http');
    } catch (e) {
      log.error(`frontend ${i}: TLS: ${(e as Error).message}; its connections will be closed`);
      byFrontend[i] = null;
    }
  });
  onServerName(chooseContext);
  const first = frontends.find((f) => f?.tls);
  secret = first?.tls ? first.tls.ticketKeys : null;
  period = -1;
  rotate(Date.now());
}

function contexts(tls: NonNullable<TlsFrontend>, http: boolean): Contexts {
  const out: Contexts = { ctxs: [], exact: new Map(), wild: [] };
  tls.certs.forEach((cert, k) => {
    out.ctxs.push(serverContext({ cert: cert.cert, key: cert.key, ticketKeys: tls.ticketKeys, http }));
    for (const n of cert.names) {
      const name = n.toLowerCase();
      if (name.startsWith('*.')) out.wild.push([name.slice(1), k]);
      else if (!out.exact.has(name)) out.exact.set(name, k);
    }
  });
  // The longest wildcard first: *.a.b.com before *.b.com.
  out.wild.sort((a, b) => b[0].length - a[0].length);
  for (const ctx of out.ctxs) byContext.set(ctx, out);
  return out;
}

/** The SNI callback's choice (sys/ssl.ts): exact name, then the longest wildcard of one label, else the default. */
function chooseContext(name: string | null, current: number): number {
  const c = byContext.get(current);
  if (c === undefined || name === null) return 0;
  const n = name.toLowerCase();
  let k = c.exact.get(n);
  if (k === undefined) {
    const dot = n.indexOf('.');
    if (dot > 0) {
      const suffix = n.slice(dot);
      for (const [w, i] of c.wild) {
        if (w === suffix) {
          k = i;
          break;
        }
      }
    }
  }
  return k === undefined || k === 0 ? 0 : c.ctxs[k];
}

/** Whether frontend fe terminates TLS here (false also when its certificates would not load). */
export function tlsReady(fe: number): boolean {
  return (byFrontend[fe] ?? null) !== null;
}

/** Per slot: 1 while its SSL reads the bytes read with its PROXY header before the socket (sslAcceptingAfter). */
let prefixed = new Uint8Array(0);

/**
 * Client c of a TLS frontend, accepted (or past its PROXY header, with the `prefixLen` bytes read after it at
 * C address `prefixAddr`, the start of its ClientHello): its SSL made (accept state), its handshake under
 * the header deadline (which, after a PROXY header, goes on from accept).
 */
export function tlsStart(ctx: WorkerContext, c: number, headerTimeoutMs: number, prefixAddr = 0, prefixLen = 0): void {
  const t = ctx.t;
  if (ctx.now >= nextRotation) rotate(ctx.now);
  const ctxs = byFrontend[t.fe[c]];
  if (prefixed.length < t.capacity) prefixed = new Uint8Array(t.capacity);
  prefixed[c] = prefixLen > 0 ? 1 : 0;
  const ssl = !ctxs ? 0 : prefixLen > 0 ? sslAcceptingAfter(ctxs.ctxs[0], t.fd[c], prefixAddr, prefixLen) : sslAccepting(ctxs.ctxs[0], t.fd[c]);
  if (ssl === 0) {
    ctx.log.limited(LEVEL.error, TERM.TLS_HANDSHAKE, `no TLS context for frontend ${t.fe[c]} in this worker (see the error logged at its start); closed a client`);
    endPair(ctx, c, TERM.TLS_HANDSHAKE, false);
    return;
  }
  sslOf[c] = ssl;
  t.xprt[c] = XPRT.TLS;
  t.proto[c] = PROTO.TLS;
  t.state[c] = ST.TLS_WAIT;
  if (headerTimeoutMs > 0) ctx.timers.arm(c, ctx.now + headerTimeoutMs);
}

/**
 * Client c of a TLS frontend sent its PROXY header whole (`got` bytes of its inbox): what it sent after it is
 * the start of its handshake, given to OpenSSL before the socket. Its header deadline goes on from accept.
 */
export function tlsAfterProxy(ctx: WorkerContext, c: number, got: number): void {
  const t = ctx.t;
  const at = t.inb[c] >= 0 ? ctx.bufs.address(t.inb[c]) + got : 0;
  tlsStart(ctx, c, 0, at, t.ilen[c] - got);
  if (t.kind[c] === KIND.CLIENT) dropInbox(ctx, c);
}

/** Client c's handshake failed with `err` (-ETIMEDOUT: its deadline passed): logged with the reason, closed. */
export function tlsFailed(ctx: WorkerContext, c: number, err: number, headerTimeoutMs: number): void {
  if (ctx.log.admits(LEVEL.info, TERM.TLS_HANDSHAKE)) {
    const why =
      err === -E.EPROTO
        ? sslReason(lastSslCode)
        : err === -E.ETIMEDOUT
          ? `not finished within ${headerTimeoutMs} ms`
          : err === -E.ECONNRESET
            ? 'the client closed'
            : errnoName(err);
    ctx.log.limited(LEVEL.info, TERM.TLS_HANDSHAKE, `closed ${ctx.t.describe(c)}: TLS handshake: ${why}`);
  }
  endPair(ctx, c, TERM.TLS_HANDSHAKE, false);
}

/**
 * One step of client c's handshake: 1 when it is done (READABLE set: the first request may already be
 * decrypted and waiting), 0 to wait for the next edge, or < 0 when it failed (-EPROTO: sys's lastSslCode
 * says why; -ECONNRESET: the client closed).
 */
export function tlsAccept(t: ConnTable, c: number): number {
  let r = sslHandshake(sslOf[c]);
  // The bytes read with the PROXY header are spent: on to the socket, which may hold the rest.
  if (r === -E.EAGAIN && prefixed[c] === 1 && sslPrefixSpent(sslOf[c], t.fd[c])) {
    prefixed[c] = 0;
    r = sslHandshake(sslOf[c]);
  }
  if (r === 1) {
    t.flags[c] |= FL.READABLE;
    return 1;
  }
  if (r === -E.EAGAIN) {
    t.flags[c] &= ~FL.READABLE;
    return 0;
  }
  return r;
}
