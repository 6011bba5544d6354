// What the main thread tells each worker about its frontends and backends: plain data (it crosses the
// thread boundary in workerData and in mailbox messages), checked and resolved by src/control/ from the
// flags or from a config file. Declared once: the worker builds its Frontend and Backend objects from them.

import type { Address } from '../sys/index.js';

export const MODES = ['tcp', 'http'] as const;
export type Mode = (typeof MODES)[number];
export const ACCESS_LOG_FORMATS = ['json', 'haproxy', 'combined'] as const;
export type AccessLogFormat = (typeof ACCESS_LOG_FORMATS)[number];
export const SPLICE_MODES = ['on', 'off', 'auto'] as const;
export type SpliceMode = (typeof SPLICE_MODES)[number];
/**
 * How a backend picks a server for a new connection: weighted round-robin (nginx's smooth variant), the
 * fewest active connections, the fewer of two picked at random (power of two choices), or a consistent
 * hash of the client's address (rendezvous hashing: a server going down moves only its own clients).
 */
export const BALANCES = ['round-robin', 'least-conn', 'random-two', 'hash'] as const;
export type Balance = (typeof BALANCES)[number];

/** An HTTP route: requests whose Host and path match go to `backend` instead of the frontend's. */
export type RouteConfig = {
  /** An exact host ('api.example.com'), '*.example.com' (any name below it), or null (any host). Lower case, no port. */
  host: string | null;
  /** A path prefix ('/v2/'), or null (any path). The longest matching prefix wins. */
  path: string | null;
  /** Index into the backends. */
  backend: number;
  /** Remove the matched prefix from the request target before it goes to the backend ('/v2/x' -> '/x'). */
  stripPrefix: boolean;
};

/**
 * Fault injection (docs/toxiproxy.md): the toxics a frontend's connections go through, Toxiproxy's model
 * and units. Each type's attributes, all integers: latency and jitter in ms; rate in KB/s (1 KB = 1000
 * bytes, 0: no limit); delays and timeouts in ms, but the slicer's delay in microseconds; sizes in bytes.
 */
export const TOXIC_ATTRIBUTES = {
  latency: ['latency', 'jitter'],
  bandwidth: ['rate'],
  slow_close: ['delay'],
  timeout: ['timeout'],
  reset_peer: ['timeout'],
  slicer: ['average_size', 'size_variation', 'delay'],
  limit_data: ['bytes'],
  noop: [],
  // HTTP faults, for frontends in HTTP mode only; toxicity is drawn per request. A matching request (its
  // path starts with `path`; '' matches all) is answered `status` with `body` without reaching a server; has
  // its response head held `delay` ms; has its response cut after `bytes` bytes of body, then the connection
  // closed; is held `delay` ms before it goes on; is dropped (the client's connection closed, no answer).
  http_error: ['status', 'body', 'path'],
  http_head_delay: ['delay', 'path'],
  http_body_limit: ['bytes', 'path'],
  http_request_delay: ['delay', 'path'],
  http_request_drop: ['path'],
} as const satisfies Record<string, readonly string[]>;
export type ToxicType = keyof typeof TOXIC_ATTRIBUTES;
export const TOXIC_TYPES = Object.keys(TOXIC_ATTRIBUTES) as ToxicType[];
/** The types that act on HTTP requests and responses (HTTP frontends only); the others act on bytes. */
export const HTTP_TOXIC_TYPES = TOXIC_TYPES.filter((t) => t.startsWith('http_'));
/** Attributes that are strings (every other attribute is a whole number); '' when not given. */
export const STRING_ATTRIBUTES: readonly string[] = ['body', 'path'];

/** One toxic on a frontend. */
export type ToxicConfig = {
  /** Given by the main thread, never reused in a process: a live connection keeps each toxic's state by it. */
  id: number;
  /** Unique among the frontend's toxics, both directions (default `TYPE_STREAM`). */
  name: string;
  type: ToxicType;
  /** Client to server; else server to client (downstream, the default). */
  upstream: boolean;
  /** The chance (0..1) that it applies to a connection, drawn once per connection. */
  toxicity: number;
  /** Every attribute of its type: 0 (or '' for a string) where none was given. */
  attributes: Record<string, number | string>;
};

/** A certificate and its private key, PEM files (the certificate's file may carry its chain after it). */
export type CertConfig = {
  cert: string;
  key: string;
  /** The DNS names it serves (its subjectAltName's, else its CN), read by the main thread: exact, or `*.` wildcards. */
  names: string[];
};

/** TLS terminated on a frontend (docs/tls.md). */
export type TlsConfig = {
  /** The first is the default: served when the client's SNI name matches no other's names, or it sent none. */
  certs: CertConfig[];
  /** 80 bytes of session ticket keys (name, HMAC and AES keys), the same in every worker and process. */
  ticketKeys: Uint8Array;
};

/** A listener with its protocol and options. Options of the other mode are carried and not used. */
export type FrontendConfig = {
  name: string;
  listen: Address;
  mode: Mode;
  /** Index into the backends: where connections go that no route claims. */
  backend: number;
  /** HTTP: routes by Host and path, tried in the order the worker sorts them (routes.ts). */
  routes: RouteConfig[];
  splice: SpliceMode;
  /** Every client connection starts with a PROXY protocol header (v1 or v2); one without is closed. */
  acceptProxy: boolean;
  /** HTTP: a request head, and with acceptProxy a PROXY header, not complete this long gets 408 (closed). */
  headerTimeoutMs: number;
  /** HTTP: a kept-alive client silent this long is closed, and a request body pausing this long gets 408. */
  idleTimeoutMs: number;
  /**
   * A backend connect not finished this long fails. HTTP: also the wait for a response to start, then for
   * more of it.
   */
  backendTimeoutMs: number;
  /** A tunnel in which nothing moves either way this long is closed; 0: never. */
  tunnelTimeoutMs: number;
  /** HTTP: request heads over this many bytes get 431. */
  maxHeaderSize: number;
  /** Where its access log goes: a file's path, '-' for stdout; null: not logged (control/accesslog.ts). */
  accessLog: string | null;
  /** The access log's format. */
  accessLogFormat: AccessLogFormat;
  /** Faults its connections go through, in the order they were added (both directions). */
  toxics: ToxicConfig[];
  /** TLS terminated here; null or absent: plain TCP. */
  tls?: TlsConfig | null;
  /** HTTP: request bodies over this many bytes get 413; 0: no limit. */
  maxBodySize: number;
  /** HTTP: add X-Forwarded-For/-Proto/-Host. */
  forwardedHeaders: boolean;
};

/** One server of a backend. */
export type ServerConfig = {
  /**
   * Its id: its place in the shared server states (routes.ts), given by the main thread, never reused for
   * another server while this process runs (a reload keeps a server's id when its backend and name stay).
   */
  id: number;
  /** Unique within its backend (default: its address). */
  name: string;
  address: Address;
  /** Its share of new connections against the others' (round-robin, hash); 0 takes none. 0 to 256. */
  weight: number;
  /** Takes connections only while no server that is not a backup is up. */
  backup: boolean;
};

/** Active health checks, run by the main thread (control/health.ts), as HAProxy's `check inter rise fall`. */
export type HealthConfig = {
  /** 'tcp': a connect that succeeds; 'http': a GET of `path` answered 2xx or 3xx. */
  kind: 'tcp' | 'http';
  /** HTTP: the request target, '/health'. */
  path: string;
  /** Between two checks of a server. */
  intervalMs: number;
  /** A check not finished this long has failed. */
  timeoutMs: number;
  /** Consecutive successes that bring a down server up. */
  rise: number;
  /** Consecutive failures that take an up server down. */
  fall: number;
};

/** Where connections go: servers, how one is picked, and how their health is known. */
export type BackendConfig = {
  name: string;
  balance: Balance;
  servers: ServerConfig[];
  /** null: no active checks; every server counts as up, and a failed connect is only retried. */
  health: HealthConfig | null;
  /** 0: no PROXY header; 1 or 2: the version written at the start of each connection. */
  sendProxy: 0 | 1 | 2;
  /** Connects tried again after one fails, each on another server when there is one (HAProxy's retries 3 + redispatch). */
  retries: number;
  /** TLS to its servers (docs/tls.md, "To backends"); null or absent: plain. */
  tls?: BackendTls | null;
};

/** TLS originated to a backend's servers. */
export type BackendTls = {
  /** Check the server's certificate: its chain against `ca` (or the system's store), its name against `serverName`. */
  verify: boolean;
  /** A PEM file of trusted certificates; null: the system's store (OpenSSL's default paths). */
  ca: string | null;
  /** The name sent in SNI and checked in the certificate; null: the server's address as written (a name). */
  serverName: string | null;
  /** A client certificate (PEM, chain after it) and its key, for servers that ask for one; null: none. */
  cert?: { cert: string; key: string } | null;
};
