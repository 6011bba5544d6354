// The PROXY protocol at the proxy's two edges, for both modes: `--accept-proxy` reads the header a load
// balancer puts in front of each client connection, and `--send-proxy v1|v2` writes one in front of each
// backend connection. The codec is proxy-protocol.ts; this file keeps who each client is, per slot.
//
//   accept: client accepted ──> (TCP: PP_WAIT; HTTP: H_HEAD with H.PP_WAIT) ──> header complete and valid
//             ──> its addresses kept for the slot; bytes after it are the stream (TCP) or the request (HTTP)
//           malformed, not a PROXY header, EOF, or no header within --header-timeout ──> closed, logged,
//             counted (CTR.PP_REFUSED); not one byte reaches the backend
//   send:   backend connected ──> the header for its client, one send() before any other byte
//
// Which address goes out: the one the accepted header named, else the client socket's own (getpeername /
// getsockname). A v1 UNKNOWN or v2 LOCAL header (a balancer's health check) names none, so the socket's are
// used. A unix-socket client, or one whose addresses cannot be read, goes out as UNKNOWN / LOCAL.

import { LEVEL } from '../log.js';
import { E, MSG, type IpAddress, formatAddress, localAddress, peerAddress, send } from '../sys/index.js';
import type { WorkerLoop } from './loop.js';
import { PP, PROXY_V2_MAX, ProxyHeader, encodeV1, encodeV2, parseProxyHeader } from './proxy-protocol.js';
import { CTR } from './types.js';

export type ProxyProtocolOptions = {
  /** Every client connection starts with a PROXY header (v1 or v2); one without is closed. */
  accept: boolean;
  /** 0: send none; 1 or 2: the version written to each new backend connection. */
  send: 0 | 1 | 2;
  /** How long a client may take to send its whole PROXY header. */
  headerTimeoutMs: number;
};

/** A client as the PROXY header named it. */
type Endpoint = { family: 'ipv4' | 'ipv6'; srcAddr: string; srcPort: number; dstAddr: string; dstPort: number };

export class ProxyProtocolState {
  readonly o: ProxyProtocolOptions;
  /** Per slot: the client the accepted header named; null when none was (or none is read). */
  readonly client: (Endpoint | null)[];
  readonly header = new ProxyHeader();
  /** The header being sent: v1 is at most 107 bytes, v2 for TCP 52. */
  readonly out = Buffer.alloc(128);

  constructor(capacity: number, o: ProxyProtocolOptions) {
    this.o = o;
    this.client = new Array(capacity).fill(null);
  }

  release(s: number): void {
    this.client[s] = null;
  }
}

/** Bytes a client may send before its PROXY header must be complete: any more is not a header. */
export const MAX_PROXY_HEADER = PROXY_V2_MAX;

/**
 * Looks for client c's PROXY header in buf[0..len). Returns the header's length once it is complete and
 * valid (its addresses are kept for c), 0 when more bytes are needed, or -1 when it is refused: the reason
 * is logged and counted, and the caller closes c.
 */
export function takeHeader(w: WorkerLoop, c: number, buf: Uint8Array, len: number): number {
  const pp = w.pp!;
  const h = pp.header;
  const st = parseProxyHeader(buf, 0, len, h);
  if (st === PP.NEED_MORE) return 0;
  if (st === PP.ERROR) {
    refuse(w, c, h.error);
    return -1;
  }
  pp.client[c] =
    h.local || h.family === null
      ? null
      : { family: h.family, srcAddr: h.srcAddr, srcPort: h.srcPort, dstAddr: h.dstAddr, dstPort: h.dstPort };
  return h.consumed;
}

/** Counts and logs a client refused for its PROXY header; the caller closes it. */
export function refuse(w: WorkerLoop, c: number, why: string): void {
  w.t.ctr[CTR.PP_REFUSED]++;
  const from = peerAddress(w.t.fd[c]);
  w.log.limited(
    LEVEL.warn,
    'proxy-header',
    `client ${from ? formatAddress(from) : '(gone)'}: PROXY header refused: ${why}; closed`,
  );
}

/**
 * Writes client c's PROXY header to its new backend connection b, before anything else goes to it. Returns 0,
 * or -errno (-ENOBUFS for a short write) when the backend cannot take it: the caller treats that as a failed
 * connect. A just-connected socket's send buffer is empty, so one send() takes the whole header.
 */
export function sendHeader(w: WorkerLoop, c: number, b: number): number {
  const pp = w.pp!;
  const t = w.t;
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
  const n = pp.o.send === 1 ? encodeV1(pp.out, 0, family, src, srcPort, dst, dstPort) : encodeV2(pp.out, 0, family, src, srcPort, dst, dstPort);
  const m = send(t.fd[b], pp.out, n, MSG.NOSIGNAL);
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
