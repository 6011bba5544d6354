// Constants shared by the loop's files and the main thread: connection kinds and states, flag bits, the
// counter and control-word indices of the shared table header. Code lives elsewhere (HAProxy's *-t.h idea).

/** What a table slot holds; the event loop dispatches on it with a switch. */
export const KIND = {
  NONE: 0,
  LISTENER: 1, // a listening socket; readable means accept
  WAKER: 2, // the worker's eventfd; readable means "look at the control word"
  CLIENT: 3, // a connection accepted from a client
  BACKEND: 4, // our connection to the backend, paired with a CLIENT
} as const;

/**
 * Connection states (TCP mode). Half-close is not a state: it is the EOF_IN / FIN_SENT flags per side.
 *
 *   client:  FREE --accept--> WAITING --backend connected--> PROXYING --both sides FIN'd or error--> FREE
 *   backend: FREE --connect()--> CONNECTING --EPOLLOUT, SO_ERROR == 0--> PROXYING ----------------> FREE
 *                                    \--SO_ERROR != 0 or EPOLLERR: the pair is released ----------> FREE
 */
export const ST = {
  FREE: 0,
  OPEN: 1, // listeners and the waker: not a connection
  WAITING: 2, // client accepted, its backend still connecting: the client is not read yet
  CONNECTING: 3, // backend: non-blocking connect() in progress
  PROXYING: 4, // bytes flow both ways (TCP mode, an HTTP tunnel, or an HTTP backend serving a request)
  // HTTP mode (src/loop/http.ts has the diagram):
  H_HEAD: 5, // client: reading a request head (or idle between requests)
  H_BODY: 6, // client: its request head went to a backend; forwarding the body
  H_WAIT: 7, // client: request forwarded whole; the response is being relayed
  H_LINGER: 8, // client: a final response was written and FIN sent; discarding input until the client closes
  IDLE: 9, // backend: in the worker's keep-alive pool
  PP_WAIT: 10, // TCP-mode client with --accept-proxy: reading its PROXY header; no backend yet
} as const;

/** Per-slot flag bits (Uint16). Bits 8..15 are unused. */
export const FL = {
  READABLE: 1 << 0, // an EPOLLIN edge came and we have not yet seen EAGAIN (or a short read) since
  W_BLOCKED: 1 << 1, // a write to this fd returned EAGAIN; EPOLLOUT will say when it can take more
  EOF_IN: 1 << 2, // read() from this fd returned 0: the peer sent FIN
  FIN_SENT: 1 << 3, // we did shutdown(SHUT_WR) on this fd, after its peer's EOF_IN and a flushed outbox
  SPLICE: 1 << 4, // bytes read from this fd move through a pipe (zero copy) rather than a buffer
  QUEUED: 1 << 5, // on the worker's ready queue: stopped reading early to be fair to other connections
  PEER_DONE: 1 << 6, // an RDHUP, HUP or ERR event came: read until 0 or an error, no short-read shortcut
  TUNNEL: 1 << 7, // HTTP mode: an upgraded pair, now moved as TCP by tcp.ts
} as const;

/** Shared header: per-worker counters (Float64, written only by the worker, read by anyone). */
export const CTR = {
  ACCEPTED: 0, // client connections accepted
  ACTIVE: 1, // client connections open now
  BYTES_IN: 2, // bytes moved client -> backend
  BYTES_OUT: 3, // bytes moved backend -> client
  CONNECT_ERRORS: 4, // backend connections that failed (refused, unreachable, no fd)
  IO_ERRORS: 5, // pairs closed by a read/write error (reset, EPIPE) on either side
  REFUSED_FULL: 6, // connections closed at accept because the table was full
  BUFFERS: 7, // pool buffers holding bytes now
  PIPES: 8, // pipes holding bytes now
  PIPES_OPEN: 9, // pipes open (held plus idle in the pool)
  REQUESTS: 10, // HTTP requests whose head was complete and valid
  GENERATED: 11, // HTTP responses the proxy wrote itself (4xx/5xx)
  REUSED: 12, // HTTP requests sent on a pooled backend connection
  PP_REFUSED: 13, // clients closed for a missing, malformed or late PROXY header (--accept-proxy)
  COUNT: 16, // slots reserved; 14..15 free for later counters
} as const;

/** Shared header: control words (Int32, used with Atomics). */
export const CTL = {
  CMD: 0, // written by the main thread: one of CMD
  STATE: 1, // written by the worker: one of WSTATE
  COUNT: 4,
} as const;

export const CMD = { RUN: 0, DRAIN: 1, STOP: 2 } as const;
export const WSTATE = { STARTING: 0, RUNNING: 1, DRAINING: 2, STOPPED: 3 } as const;

const kindNames = ['none', 'listener', 'waker', 'client', 'backend'];
const stateNames = ['FREE', 'OPEN', 'WAITING', 'CONNECTING', 'PROXYING', 'H_HEAD', 'H_BODY', 'H_WAIT', 'H_LINGER', 'IDLE', 'PP_WAIT'];
const flagNamesList = ['READABLE', 'W_BLOCKED', 'EOF_IN', 'FIN_SENT', 'SPLICE', 'QUEUED', 'PEER_DONE', 'TUNNEL'];

export function kindName(k: number): string {
  return kindNames[k] ?? `kind${k}`;
}

export function stateName(s: number): string {
  return stateNames[s] ?? `state${s}`;
}

export function flagNames(f: number): string {
  const out: string[] = [];
  for (let i = 0; i < flagNamesList.length; i++) if (f & (1 << i)) out.push(flagNamesList[i]);
  return out.length ? out.join('|') : '-';
}
