// What the main thread tells each worker about its frontends and backends: plain data (it crosses the
// thread boundary in workerData), checked and resolved by src/control/config.ts. Declared once: the library
// options are turned into these, and the worker builds its Frontend and Backend objects from them.

import type { Address } from '../sys/index.js';

export const MODES = ['tcp', 'http'] as const;
export type Mode = (typeof MODES)[number];
export const SPLICE_MODES = ['on', 'off', 'auto'] as const;
export type SpliceMode = (typeof SPLICE_MODES)[number];

/** A listener with its protocol and options. Options of the other mode are carried and not used. */
export type FrontendConfig = {
  name: string;
  listen: Address;
  mode: Mode;
  /** Index into the backends. */
  backend: number;
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
  /** HTTP: request bodies over this many bytes get 413; 0: no limit. */
  maxBodySize: number;
  /** HTTP: add X-Forwarded-For/-Proto/-Host. */
  forwardedHeaders: boolean;
};

/** Where connections go. */
export type BackendConfig = {
  name: string;
  address: Address;
  /** 0: no PROXY header; 1 or 2: the version written at the start of each connection. */
  sendProxy: 0 | 1 | 2;
};
