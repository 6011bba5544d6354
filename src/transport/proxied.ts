// The PROXY protocol at the proxy's two edges, a handshake that runs before a connection's protocol, in
// either mode: a frontend with accept-proxy reads the header a load balancer puts in front of each client
// connection, and a backend with send-proxy gets one in front of each connection to it. The codec is
// proxy-protocol.ts; this file keeps who each client is, per slot.
//
//   intake: accept ──> HANDSHAKE, PP_WAIT (header deadline) ──> read into the inbox, at most MAX_PROXY_HEADER
//             ──> complete and valid: its addresses kept for the slot; the loop hands the client, with the
//                 bytes after the header still in its inbox, to its frontend's protocol
//             malformed, not a PROXY header, or the deadline ──> refused: logged, counted, closed
//             EOF or an error before it is whole ──> closed; not one byte reached a backend
//   send:   backend connected ──> the header for its client, one send() before any other byte
//
// Which address goes out: the one the accepted header named, else the client socket's own (getpeername /
// getsockname). A v1 UNKNOWN or v2 LOCAL header (a balancer's health check) names none, so the socket's are
// used. A unix-socket client, or one whose addresses cannot be read, goes out as UNKNOWN / LOCAL.

import type { WorkerContext } from '../core/context.js';
import { LEVEL } from '../core/log.js';
import { CTR } from '../core/counters.js';
import { TERM } from '../core/term.js';
import { FL } from '../core/types.js';
import { E, errnoName, formatAddress, type IpAddress, localAddress, peerAddress } from '../sys/index.js';
import { inbox } from './boxes.js';
import { endPair } from './close.js';
import { readInbox, sendNow } from './io.js';
import { PP, PROXY_V2_MAX, ProxyHeader, encodeV1, encodeV2, parseProxyHeader } from './proxy-protocol.js';

/** A client as the PROXY header named it. */
export type Endpoint = { family: 'ipv4' | 'ipv6'; srcAddr: string; srcPort: number; dstAddr: string; dstPort: number };

/** The worker's PROXY protocol state: who each client is, per slot, and the codec's scratch. */
export class ProxyState {
  /** Per slot: the client the accepted header named; null when none was (or none is read). */
  readonly client: (Endpoint | null)[];
  readonly header = new ProxyHeader();
  /** The header being sent: v1 is at most 107 bytes, v2 for TCP 52. */
  readonly out = Buffer.alloc(128);

  /** `capacity` 0 when no frontend accepts and no backend sends the header. */
  constructor(capacity: number) {
    this.client = new Array(capacity).fill(null);
  }

  release(s: number): void {
    if (s < this.client.length) this.client[s] = null;
  }
}

/** The context the handshakes need. */
export interface HandshakeContext extends WorkerContext {
  readonly pp: ProxyState;
}

/** Bytes a client may send before its PROXY header must be complete: any more is not a header. */
export const MAX_PROXY_HEADER = PROXY_V2_MAX;

/**
 * HANDSHAKE client c: reads its PROXY header into the inbox. Returns the header's length once it is complete
 * and valid (its addresses are kept for c; the bytes after it are the stream's), 0 while more is needed, or
 * -1 when c was refused or is gone, and closed.
 */
export function intake(ctx: HandshakeContext, c: number): number {
  const t = ctx.t;
  while (t.flags[c] & FL.READABLE) {
    // Never more than a header can take, so every byte read past it is certain to be the stream's.
    const n = readInbox(ctx, c, MAX_PROXY_HEADER);
    if (n === -E.EAGAIN) return 0;
    if (n <= 0) {
      // Gone before its header was whole: nothing was forwarded, nothing to tell but an error.
      if (n < 0 && ctx.log.admits(LEVEL.info, TERM.CLIENT_RESET)) {
        ctx.log.limited(LEVEL.info, TERM.CLIENT_RESET, `closed ${t.describe(c)}: read from client: ${errnoName(n)}`);
      }
      endPair(ctx, c, n === 0 ? TERM.CLIENT_ABORT : TERM.CLIENT_RESET, n < 0);
      return -1;
    }
    const got = takeHeader(ctx, c, inbox(ctx, c), t.ilen[c]);
    if (got !== 0) return got;
  }
  return 0;
}

/** HANDSHAKE client c's deadline passed: its header did not come whole within `ms`. */
export function intakeTimeout(ctx: HandshakeContext, c: number, ms: number): void {
  refuse(ctx, c, '', ms);
}

/**
 * Looks for client c's PROXY header in buf[0..len). Returns the header's length once it is complete and
 * valid (its addresses are kept for c), 0 when more bytes are needed, or -1 when it is refused (c closed).
 */
function takeHeader(ctx: HandshakeContext, c: number, buf: Uint8Array, len: number): number {
  const pp = ctx.pp;
  const h = pp.header;
  const st = parseProxyHeader(buf, 0, len, h);
  if (st === PP.NEED_MORE) return 0;
  if (st === PP.ERROR) {
    refuse(ctx, c, h.error, 0);
    return -1;
  }
  pp.client[c] =
    h.local || h.family === null
      ? null
      : { family: h.family, srcAddr: h.srcAddr, srcPort: h.srcPort, dstAddr: h.dstAddr, dstPort: h.dstPort };
  return h.consumed;
}

/** Counts, logs and closes a client refused for its PROXY header: `why` (a PP_ERR reason), or late by `ms`. */
function refuse(ctx: HandshakeContext, c: number, why: string, ms: number): void {
  ctx.t.ctr[CTR.PP_REFUSED]++;
  if (ctx.log.admits(LEVEL.warn, TERM.PROXY_HEADER)) {
    const from = peerAddress(ctx.t.fd[c]);
    ctx.log.limited(
      LEVEL.warn,
      TERM.PROXY_HEADER,
      `client ${from ? formatAddress(from) : '(gone)'}: PROXY header refused: ${why || `not complete within ${ms} ms`}; closed`,
    );
  }
  endPair(ctx, c, TERM.PROXY_HEADER, false);
}

/**
 * Writes client c's PROXY header, in `version` 1 or 2, to its new backend connection b, before anything else
 * goes to it. Returns 0, or -errno (-ENOBUFS for a short write) when the backend cannot take it: the caller
 * treats that as a failed connect. A just-connected socket's send buffer is empty, so one send() takes the
 * whole header.
 */
export function sendHeader(ctx: HandshakeContext, c: number, b: number, version: number): number {
  const pp = ctx.pp;
  const t = ctx.t;
  const known = pp.client[c];
  let family: string | null = null;
  let src = '';
  let srcPort = 0;
  let dst = '';
  let dstPort = 0;
  if (known !== null) {
    ({ family, srcAddr: src, srcPort, dstAddr: dst, dstPort } = known);
  } else {
    const peer = peerAddress(t.fd[c]);
    const local = socketName(t.fd[c]);
    if (peer !== null && local !== null && peer.family !== 'unix' && peer.family === local.family) {
      family = peer.family;
      src = peer.host;
      srcPort = peer.port;
      dst = local.host;
      dstPort = local.port;
    }
  }
  const n = version === 1 ? encodeV1(pp.out, 0, family, src, srcPort, dst, dstPort) : encodeV2(pp.out, 0, family, src, srcPort, dst, dstPort);
  const m = sendNow(ctx, b, pp.out, n);
  if (m < 0) return m;
  return m === n ? 0 : -E.ENOBUFS;
}

function socketName(fd: number): IpAddress | null {
  try {
    const a = localAddress(fd);
    return a.family === 'unix' ? null : a;
  } catch {
    return null; // the client is gone: its connection fails on its own
  }
}
