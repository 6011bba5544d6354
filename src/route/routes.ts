// A worker's frontends and backends as it runs them, built from their configs (config.ts): what a handler
// reads per connection through the slot's `fe` and `be` columns, and each backend's pool of idle
// keep-alive connections.

import type { ConnTable } from '../core/table.js';
import { ST } from '../core/types.js';
import { SPLICE_MODE, type HandshakeContext } from '../transport/index.js';
import { type Address, addressFamily, encodeSockaddr, formatAddress } from '../sys/index.js';
import type { BackendConfig, FrontendConfig } from './config.js';

/** Frontend.mode values: which protocol a frontend's clients speak. */
export const MODE = { TCP: 0, HTTP: 1 } as const;

export class Frontend {
  readonly index: number;
  readonly name: string;
  readonly mode: number;
  readonly spliceMode: number;
  readonly acceptProxy: boolean;
  readonly backend: number;
  readonly headerTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly backendTimeoutMs: number;
  readonly tunnelTimeoutMs: number;
  readonly maxHeaderSize: number;
  readonly maxBodySize: number;
  readonly forwardedHeaders: boolean;

  constructor(index: number, c: FrontendConfig) {
    this.index = index;
    this.name = c.name;
    this.mode = c.mode === 'http' ? MODE.HTTP : MODE.TCP;
    this.spliceMode = c.splice === 'on' ? SPLICE_MODE.ON : c.splice === 'off' ? SPLICE_MODE.OFF : SPLICE_MODE.AUTO;
    this.acceptProxy = c.acceptProxy;
    this.backend = c.backend;
    this.headerTimeoutMs = c.headerTimeoutMs;
    this.idleTimeoutMs = c.idleTimeoutMs;
    this.backendTimeoutMs = c.backendTimeoutMs;
    this.tunnelTimeoutMs = c.tunnelTimeoutMs;
    this.maxHeaderSize = c.maxHeaderSize;
    this.maxBodySize = c.maxBodySize;
    this.forwardedHeaders = c.forwardedHeaders;
  }
}

// Idle keep-alive connections kept per backend per worker, as nginx's `keepalive 64` in the benchmark: more
// only hold backend resources without serving anyone.
const MAX_IDLE = 64;

export class Backend {
  readonly index: number;
  readonly name: string;
  readonly address: Address;
  /** The address in the kernel's layout, for connect(). */
  readonly sa: Buffer;
  readonly family: number;
  /** TCP (not a unix socket): TCP_NODELAY is set on its connections. */
  readonly isTcp: boolean;
  /** For log lines. */
  readonly text: string;
  readonly sendProxy: number;
  /** The pool: idle connections' slots, a stack (the warmest is reused first), with their generations. */
  private readonly idle = new Int32Array(MAX_IDLE);
  private readonly idleGen = new Uint32Array(MAX_IDLE);
  private idleCount = 0;

  constructor(index: number, c: BackendConfig) {
    this.index = index;
    this.name = c.name;
    this.address = c.address;
    this.sa = encodeSockaddr(c.address);
    this.family = addressFamily(c.address);
    this.isTcp = c.address.family !== 'unix';
    this.text = formatAddress(c.address);
    this.sendProxy = c.sendProxy;
  }

  /**
   * An idle connection from the pool, or -1. A connection closed while idle left its slot (its generation
   * changed, or the slot is no longer IDLE): it is skipped.
   */
  takeIdle(t: ConnTable): number {
    while (this.idleCount > 0) {
      this.idleCount--;
      const b = this.idle[this.idleCount];
      if (t.gen[b] === this.idleGen[this.idleCount] && t.state[b] === ST.IDLE) return b;
    }
    return -1;
  }

  /** Keeps backend slot b (already IDLE) in the pool; false when the pool is full: the caller closes it. */
  putIdle(t: ConnTable, b: number): boolean {
    if (this.idleCount === MAX_IDLE) return false;
    this.idle[this.idleCount] = b;
    this.idleGen[this.idleCount] = t.gen[b];
    this.idleCount++;
    return true;
  }

  /** Forgets every idle connection (the caller closes their slots). */
  clearIdle(): void {
    this.idleCount = 0;
  }
}

/** The context the routing layer and every protocol need. */
export interface RouteContext extends HandshakeContext {
  readonly frontends: readonly Frontend[];
  readonly backends: readonly Backend[];
}
