// TLS to backends (docs/tls.md, "To backends"): each worker makes a client context per TLS backend, and a
// backend slot whose connect() finished starts its handshake here before its protocol takes it:
//
//   connect done (SO_ERROR 0) ──> SSL_new (connect state, SNI, the name to check) ──> a step on each event
//     ──> done: the protocol's connected()      └─> failed (a certificate refused, no TLS): a connect failure
//
// The slot's SSL* lives in sslOf (ssl-slots.ts), freed by releaseSlot() like a client's; a pooled connection
// keeps its session. Its bytes are copied, never spliced (io.ts checks both sides of a splice).

import { existsSync } from 'node:fs';
import type { ConnTable } from '../core/table.js';
import type { Logger } from '../core/log.js';
import { XPRT } from '../core/types.js';
import { E, clientContext, contextFree, sslConnecting, sslHandshake } from '../sys/index.js';
import { handshaking, sizeSslSlots, sslOf } from './ssl-slots.js';

/** What a backend's TLS is (route/config.ts's BackendTls, as this layer needs it). */
export type TlsBackend = { verify: boolean; ca: string | null; serverName: string | null; cert?: { cert: string; key: string } | null } | null | undefined;

/** Per backend index: its client context (0: none, or it would not load here). */
const contexts: number[] = [];

/** The backends' TLS as a reload leaves them: each TLS backend's context made again. */
export function configureBackendTls(backends: readonly ({ name: string; tls?: TlsBackend } | null)[], capacity: number, log: Logger): void {
  for (const ctx of contexts) if (ctx) contextFree(ctx);
  contexts.length = 0;
  backends.forEach((b, i) => {
    if (b === null || !b.tls) return;
    sizeSslSlots(capacity);
    try {
      contexts[i] = clientContext(b.tls.verify, b.tls.ca, existsSync, b.tls.cert ?? null);
    } catch (e) {
      log.error(`backend ${b.name}: TLS: ${(e as Error).message}; its connects will fail`);
      contexts[i] = 0;
    }
  });
}

/**
 * Backend slot b (of backend `be`) connected to a server named `name` (an IP address when `isIp`): its
 * handshake begins. 1 when done at once, 0 to wait for events, < 0 when it failed.
 */
export function tlsConnectStart(t: ConnTable, b: number, be: number, tls: NonNullable<TlsBackend>, name: string, isIp: boolean): number {
  const ctx = contexts[be] ?? 0;
  const ssl = ctx === 0 ? 0 : sslConnecting(ctx, t.fd[b], tls.serverName ?? name, tls.serverName === null && isIp, tls.verify);
  if (ssl === 0) return -E.EPROTO;
  sslOf[b] = ssl;
  t.xprt[b] = XPRT.TLS;
  handshaking[b] = 1;
  return tlsConnectStep(t, b);
}

/** Whether backend slot b's handshake is under way (its events go to tlsConnectStep). */
export function tlsConnecting(b: number): boolean {
  return b < handshaking.length && handshaking[b] === 1;
}

/** A step of backend slot b's handshake: 1 done, 0 wait, < 0 failed (-EPROTO: sys's lastSslCode says why). */
export function tlsConnectStep(t: ConnTable, b: number): number {
  const r = sslHandshake(sslOf[b]);
  if (r === -E.EAGAIN) return 0;
  handshaking[b] = 0;
  return r;
}
