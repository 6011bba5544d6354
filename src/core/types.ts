// The table's small-integer columns and flag bits, the control words of its shared header, and a printer for
// each: constants that every layer above and the main thread read. Code lives elsewhere (HAProxy's *-t.h
// idea). Counters are declared in counters.ts, termination codes in term.ts.

/** What a table slot holds: the loop's first switch. */
export const KIND = {
  NONE: 0,
  LISTENER: 1, // a frontend's listening socket; readable means accept
  WAKER: 2, // the worker's eventfd; readable means "read the mailbox"
  CLIENT: 3, // a connection accepted from a client
  BACKEND: 4, // our connection to a backend server, paired with a CLIENT (or idle in its backend's pool)
} as const;

/**
 * Which protocol handles a CLIENT or BACKEND slot's events: the loop's second switch. A client starts in
 * HANDSHAKE when its frontend expects a PROXY header, then takes its frontend's protocol; an HTTP pair
 * becomes a TUNNEL after a 101.
 */
export const PROTO = {
  NONE: 0, // listeners, the waker, free slots
  HANDSHAKE: 1, // client: reading its PROXY protocol header (src/transport/proxied.ts)
  TUNNEL: 2, // either side of a byte tunnel: TCP mode, or an upgraded HTTP pair (src/tunnel.ts)
  H1_CLIENT: 3, // client of an HTTP/1 frontend (src/http/client.ts)
  H1_SERVER: 4, // backend connection carrying HTTP/1 requests (src/http/server.ts)
  TLS: 5, // client: its TLS handshake, before its frontend's protocol (src/transport/tls.ts)
} as const;

/** How a slot's bytes reach its fd: the transport seam (src/transport/io.ts). */
export const XPRT = {
  PLAIN: 0, // the socket itself: recv, send, splice
  TLS: 1, // OpenSSL over the socket: SSL_read, SSL_write (src/transport/tls.ts); never spliced
} as const;

/**
 * A slot's state within its protocol. Half-close is not a state: it is the EOF_IN / FIN_SENT flags per side.
 * The diagrams are in each protocol's file and in docs/architecture.md.
 */
export const ST = {
  FREE: 0,
  OPEN: 1, // listeners and the waker: not a connection
  WAITING: 2, // tunnel client: its backend is connecting; the client is not read yet
  CONNECTING: 3, // backend: non-blocking connect() in progress
  PROXYING: 4, // tunnel: bytes flow both ways; HTTP backend: serving a request
  H_HEAD: 5, // HTTP client: reading a request head (or idle between requests)
  H_BODY: 6, // HTTP client: its request head went to a backend; forwarding the body
  H_WAIT: 7, // HTTP client: request forwarded whole; the response is being relayed
  H_LINGER: 8, // HTTP client: a final response was written and FIN sent; discarding input until it closes
  IDLE: 9, // HTTP backend: in its backend's keep-alive pool
  PP_WAIT: 10, // HANDSHAKE client: reading its PROXY header; no backend yet
  TLS_WAIT: 11, // TLS client: its handshake under way; no backend yet
} as const;

/** Per-slot flag bits (Uint16). Bits 9..15 are unused. */
export const FL = {
  READABLE: 1 << 0, // an EPOLLIN edge came and we have not yet seen EAGAIN (or a short read) since
  W_BLOCKED: 1 << 1, // a write to this fd returned EAGAIN; EPOLLOUT will say when it can take more
  EOF_IN: 1 << 2, // a read from this fd returned 0: the peer sent FIN
  FIN_SENT: 1 << 3, // we did shutdown(SHUT_WR) on this fd, after its peer's EOF_IN and a flushed outbox
  SPLICE: 1 << 4, // bytes read from this fd move through a pipe (zero copy) rather than a buffer
  QUEUED: 1 << 5, // on the worker's ready queue: stopped reading early to be fair to other connections
  PEER_DONE: 1 << 6, // an RDHUP, HUP or ERR event came: read until 0 or an error, no short-read shortcut
  BUSY: 1 << 7, // backend: counted in its server's active connections (least-conn, random-two) until released
  TOXIC: 1 << 8, // tunnel: its reads go through a fault lane (src/toxic/), copied, never spliced
} as const;

/** Shared header: control words (Int32, used with Atomics). Commands travel through the mailbox. */
export const CTL = {
  STATE: 0, // written by the worker: one of WSTATE
  ROUTES: 1, // written by the worker: the last route tables it applied (the 'routes' message's generation)
  COUNT: 4, // 2..3 free
} as const;

export const WSTATE = { STARTING: 0, RUNNING: 1, DRAINING: 2, STOPPED: 3 } as const;

const kindNames = ['none', 'listener', 'waker', 'client', 'backend'];
const protoNames = ['-', 'handshake', 'tunnel', 'h1-client', 'h1-server', 'tls'];
const stateNames = ['FREE', 'OPEN', 'WAITING', 'CONNECTING', 'PROXYING', 'H_HEAD', 'H_BODY', 'H_WAIT', 'H_LINGER', 'IDLE', 'PP_WAIT', 'TLS_WAIT'];
const flagNamesList = ['READABLE', 'W_BLOCKED', 'EOF_IN', 'FIN_SENT', 'SPLICE', 'QUEUED', 'PEER_DONE', 'BUSY', 'TOXIC'];

export function kindName(k: number): string {
  return kindNames[k] ?? `kind${k}`;
}

export function protoName(p: number): string {
  return protoNames[p] ?? `proto${p}`;
}

export function stateName(s: number): string {
  return stateNames[s] ?? `state${s}`;
}

export function flagNames(f: number): string {
  const out: string[] = [];
  for (let i = 0; i < flagNamesList.length; i++) if (f & (1 << i)) out.push(flagNamesList[i]);
  return out.length ? out.join('|') : '-';
}
