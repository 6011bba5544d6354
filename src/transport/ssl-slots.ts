// Each TLS slot's SSL*, kept in one place (docs/tls.md): from SSL_new at accept (tls.ts) to SSL_free when
// the slot is released (close.ts), read by the seam's calls (io.ts). This thread's module state: a worker's.

import { sslFree } from '../sys/index.js';

/** Per slot: its SSL* (0: none). Made for the table's capacity with the first TLS frontend. */
export let sslOf = new Float64Array(0);

/** Per slot: 1 while its handshake to a backend is under way (tls-client.ts). */
export let handshaking = new Uint8Array(0);

export function sizeSslSlots(capacity: number): void {
  if (sslOf.length === 0) sslOf = new Float64Array(capacity);
  if (handshaking.length === 0) handshaking = new Uint8Array(capacity);
}

/** Slot s is being released: its SSL goes (releaseSlot, before the fd is closed). */
export function tlsRelease(s: number): void {
  if (sslOf[s] !== 0) {
    sslFree(sslOf[s]);
    sslOf[s] = 0;
  }
  handshaking[s] = 0;
}
