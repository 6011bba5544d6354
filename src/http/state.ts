// The HTTP/1 proxy's per-slot state beside the table, in the worker only: parsers, bits, body counts, the
// client's address for X-Forwarded-For, the copy of a request kept to replay it. A client slot's inbox and
// outbox are the table's (transport/boxes.ts). Nothing outside the worker reads this.

import type { ConnTable } from '../core/table.js';
import type { BufferPool } from '../core/pools.js';
import type { FaultContext } from '../toxic/index.js';
import { HeadInfo, type HeadOptions } from './head.js';
import { HttpParser } from './parser.js';
import { PARSER_TYPE } from './parser-t.js';

/** Per-slot HTTP bits (H1State.hf), beside the table's FL flags. */
export const H = {
  CLOSE_AFTER: 1 << 0, // client: close once this response is written
  REQ_DONE: 1 << 1, // client: the current request went to the backend whole
  RES_DONE: 1 << 2, // backend: the final response ended; finish once the outbox is flushed
  HEAD_OUT: 1 << 3, // client: bytes of a response went to it, so no generated response can follow
  KA10: 1 << 4, // client: HTTP/1.0 with keep-alive: answer with Connection: keep-alive
  REUSABLE: 1 << 5, // backend: the response allows the connection to be reused
  UPGRADING: 1 << 6, // client: this request asks to upgrade
  HEAD_REQ: 1 << 7, // client: this request is HEAD (its response has no body)
  RESP_BYTES: 1 << 8, // backend: a byte of the response arrived
  IN_HEAD: 1 << 9, // backend: parsing a response head (before HEADERS)
  POOLED: 1 << 10, // backend: taken from the pool for this request (it may have been closed meanwhile)
  KEPT: 1 << 11, // client: kept alive after a response, waiting for its next request (idle deadline)
  RAW: 1 << 12, // either side: the rest of a Content-Length body moves by count (splice), not through llhttp
} as const;

/**
 * Steps a slot's progress() takes before it yields to other connections (the ready queue), as the tunnel
 * bounds its reads per turn: a step moves at most one 64 KiB buffer, so this bounds a turn at a few MiB.
 */
export const TURNS = 64;

/** The worker's HTTP state: per-slot columns, the parsers no slot holds, scratch for head rewriting. */
export class H1State {
  readonly parsers: (HttpParser | null)[];
  readonly hf: Uint16Array; // H.* bits
  readonly sent: Float64Array; // client: body bytes of the current request forwarded (for maxBodySize)
  readonly rawLeft: Float64Array; // body bytes still to move by count (H.RAW)
  readonly peerText: (string | null)[]; // client: its address, for X-Forwarded-For
  readonly backend: Uint16Array; // client: the backend its current request's route chose
  readonly retry: Int32Array; // client: pool buffer with a copy of the request sent on a pooled connection
  readonly retryLen: Int32Array;
  readonly info = new HeadInfo();
  // writeHead's options, one object each way, filled in per message (no allocation per request).
  readonly forwarded = { clientAddress: '', proto: 'http' };
  readonly requestOpts: HeadOptions = { forwarded: null, upgrading: false, connection: null, cutAt: 0, cutLen: 0 };
  readonly responseOpts: HeadOptions = { forwarded: null, upgrading: false, connection: null, cutAt: 0, cutLen: 0 };
  /** Slots kept for backend connections (backendReserve). */
  readonly reserve: number;
  // Parsers no slot holds, by type: at most as many as messages were once read at the same time.
  readonly spareRequest: HttpParser[] = [];
  readonly spareResponse: HttpParser[] = [];

  /** `capacity` 0 in a worker with no HTTP frontend. */
  constructor(capacity: number) {
    this.parsers = new Array(capacity).fill(null);
    this.hf = new Uint16Array(capacity);
    this.sent = new Float64Array(capacity);
    this.rawLeft = new Float64Array(capacity);
    this.peerText = new Array(capacity).fill(null);
    this.backend = new Uint16Array(capacity);
    this.retry = new Int32Array(capacity).fill(-1);
    this.retryLen = new Int32Array(capacity);
    this.reserve = backendReserve(capacity);
  }

  /** Frees what slot s holds here (parser, retry copy). The loop's closeSlot() calls it for HTTP slots. */
  release(s: number, bufs: BufferPool): void {
    this.dropParser(s);
    this.dropRetryCopy(s, bufs);
  }

  /** Puts slot s's parser (if any) back among the spares. */
  dropParser(s: number): void {
    const p = this.parsers[s];
    if (p === null) return;
    this.parsers[s] = null;
    (p.type === PARSER_TYPE.REQUEST ? this.spareRequest : this.spareResponse).push(p);
  }

  dropRetryCopy(c: number, bufs: BufferPool): void {
    if (this.retry[c] >= 0) {
      bufs.release(this.retry[c]);
      this.retry[c] = -1;
    }
  }

  /**
   * Slot s's parser of `type`, reset, taken from the spares when s has none: a parser is held only while
   * a message is being read, so an idle keep-alive client costs no parser (docs/scaling.md).
   */
  parser(s: number, type: number): HttpParser {
    let p = this.parsers[s];
    if (p === null || p.type !== type) {
      this.dropParser(s);
      p = (type === PARSER_TYPE.REQUEST ? this.spareRequest : this.spareResponse).pop() ?? new HttpParser(type);
      this.parsers[s] = p;
    }
    p.reset();
    return p;
  }
}

/**
 * Slots an HTTP worker keeps for backend connections: clients alone (idle keep-alive ones, say) never fill
 * its table, so a request from a client it holds finds a slot for its backend unless this many requests
 * are in flight at once. An eighth of the table, at least 1, at most 1024 (the backend pool keeps 64).
 */
export function backendReserve(capacity: number): number {
  return Math.max(1, Math.min(1024, Math.floor(capacity / 8)));
}

/** The context the HTTP/1 proxy runs in: the routing layer's, and its own state. */
export interface H1Context extends FaultContext {
  readonly h1: H1State;
}

/** True when client c may take another slot: it leaves room for the backend connections (reserve). */
export function roomForClient(t: ConnTable, h: H1State): boolean {
  return t.free >= 1 + h.reserve;
}
