// Termination codes: why a connection ended, as a small integer. A connection's code is recorded once, by
// the first cause that decides its end (its client slot's `term` column), and counted when it closes, in
// the worker's block of termination counters; every client connection accepted is counted under exactly
// one code (`accepted == active + the sum of the terminations`). Logs, counters and tests match on the
// code; a log line's prose is built from it only when the line is really printed.
//
// The model is HAProxy's termination state, whose first character says who or what ended the stream (`C`
// client, `S` server, `P` proxy decision, `R` resource, `I` internal, `K` killed, `c`/`s` a client/server
// timeout, `-` a normal end), and Envoy's response flags. `who` below is that first character; the phase
// (HAProxy's second) is the slot's state when it ended.

/** Codes, stable: new ones are added at the end. */
export const TERM = {
  NONE: 0, // not ended (yet)
  DONE: 1, // a normal end: both ways finished (tunnel), or the client closed between requests (HTTP)
  CLIENT_ABORT: 2, // the client closed before its request (or PROXY header) was complete
  CLIENT_RESET: 3, // an error reading from or writing to the client (a reset, EPIPE)
  CLIENT_TIMEOUT: 4, // the client too slow: a request head or body (408), or not reading the response
  CLIENT_IDLE: 5, // closed quietly: a kept-alive client idle too long, or a new one that sent nothing
  TUNNEL_TIMEOUT: 6, // nothing moved either way for --tunnel-timeout
  MALFORMED: 7, // a request refused as malformed or ambiguous (400)
  HEAD_TOO_LARGE: 8, // a request head over a limit (431)
  BODY_TOO_LARGE: 9, // a request body over --max-body-size (413)
  NOT_IMPLEMENTED: 10, // a request the proxy does not do: CONNECT, a transfer coding (501)
  PROXY_HEADER: 11, // a PROXY protocol header missing, malformed or late (--accept-proxy)
  BACKEND_REFUSED: 12, // the backend refused the connection (ECONNREFUSED)
  BACKEND_UNREACHABLE: 13, // no connection to the backend could be made (no route, no fd...)
  CONNECT_TIMEOUT: 14, // the backend's connect did not finish within --backend-timeout
  BACKEND_TIMEOUT: 15, // the backend too slow: no response in time, or one that stalled
  BACKEND_RESET: 16, // the backend closed or reset the connection before the exchange ended
  BACKEND_INVALID: 17, // the backend's response was refused (malformed, too large, unasked 101)
  TABLE_FULL: 18, // no slot: the connection table was full (at accept, or for a backend connection)
  STOPPED: 19, // closed by the proxy stopping (drain of an idle client, or the drain timeout)
  INTERNAL: 20, // the proxy could not go on with it (epoll_ctl failed, too many early tunnel bytes)
  NO_SERVER: 21, // its backend had no server up (or none with a weight) to take it
  KILLED: 22, // closed from the admin endpoint (POST /connections/ID/close)
  TOXIC: 23, // ended by a toxic (docs/toxiproxy.md): timeout, reset_peer, limit_data, a timeout taken away
  TLS_HANDSHAKE: 24, // the TLS handshake failed: not TLS, no version or cipher in common, too slow, closed
  COUNT: 25,
} as const;

type Info = {
  /** Stable name, for stats() and logs. */
  name: string;
  /** HAProxy's first termination character: who or what ended it. */
  who: string;
  /** The status of the response the proxy writes for it in HTTP mode, when it can still write one; 0: none. */
  status: number;
};

const info = (name: string, who: string, status = 0): Info => ({ name, who, status });

/** Indexed by TERM. */
export const TERM_INFO: readonly Info[] = [
  info('none', '-'),
  info('done', '-'),
  info('client_abort', 'C'),
  info('client_reset', 'C'),
  info('client_timeout', 'c', 408),
  info('client_idle', 'c'),
  info('tunnel_timeout', 'c'),
  info('malformed', 'P', 400),
  info('head_too_large', 'P', 431),
  info('body_too_large', 'P', 413),
  info('not_implemented', 'P', 501),
  info('proxy_header', 'P'),
  info('backend_refused', 'S', 502),
  info('backend_unreachable', 'S', 503),
  info('connect_timeout', 's', 504),
  info('backend_timeout', 's', 504),
  info('backend_reset', 'S', 502),
  info('backend_invalid', 'P', 502),
  info('table_full', 'R', 503),
  info('stopped', 'K'),
  info('internal', 'I', 503),
  info('no_server', 'S', 503),
  info('killed', 'K'),
  info('toxic', 'F'),
  info('tls_handshake', 'C'),
];

export function termName(code: number): string {
  return TERM_INFO[code]?.name ?? `term${code}`;
}

/** The HTTP status the proxy answers a request with when it ends for `code` (0 when it answers none). */
export function termStatus(code: number): number {
  return TERM_INFO[code]?.status ?? 0;
}
