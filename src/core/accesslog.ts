// The access log's worker side: what each HTTP request and each TCP connection was, as a fixed-size record
// in a ring of shared memory, one ring per worker. The worker never formats a string or waits: it fills a
// record with numbers and bytes and moves its write index; the main thread (control/accesslog.ts) reads the
// records, formats them (json, haproxy, combined) and writes the files. When the ring is full the record is
// dropped and counted, and the proxy goes on.
//
// Ring (a SharedArrayBuffer the main thread makes for each worker):
//
//   Int32 words  WRITE (records written, the worker's), READ (records read, the main thread's), DROPPED
//   records      RING_RECORDS of RECORD_BYTES, record n at slot n % RING_RECORDS
//
// A record (offsets in bytes, little-endian typed-array views):
//
//   0  start      f64  clock ms: the request's complete head (HTTP), the accept (TCP)
//   8  end        f64  clock ms: the response's end, or the connection's
//   16 tq         f64  ms from the accept, or the previous response's end, to the complete head (HTTP)
//   24 tc         f64  ms to connect to the server; 0: a pooled connection; -1: none made
//   32 tr         f64  ms from the complete head to the response's first byte; -1: none came
//   40 bytesIn    f64  from the client, forwarded (this request's, or the connection's)
//   48 bytesOut   f64  to the client
//   56 fe u16, 58 srv u16 (NO_SERVER: none), 60 status u16 (0: none), 62 port u16, 64 lineLen u16,
//   66 term u8, 67 mode u8 (MODE_*), 68 retries u8, 69 state u8 (the client's ST at the end), 70 ip version u8
//   72 ip         16 bytes (IPv4 in the first 4)
//   88 line       LOG_LINE_BYTES: the request line's first bytes
//
// Worker-local per slot, made only once a frontend logs: the request's numbers until its record is written.

import { MAX_FRONTENDS } from './counters.js';
import type { ConnTable } from './table.js';
import { peerInto } from '../sys/index.js';

/** Records a ring holds (a power of two). */
export const RING_RECORDS = 4096;
/** Bytes of a request line a record keeps (longer ones are cut, and say so). */
export const LOG_LINE_BYTES = 256;
export const RECORD_BYTES = 88 + LOG_LINE_BYTES;
export const RING = { WRITE: 0, READ: 1, DROPPED: 2, WORDS: 4 } as const;
export const REC = {
  START: 0,
  END: 8,
  TQ: 16,
  TC: 24,
  TR: 32,
  BYTES_IN: 40,
  BYTES_OUT: 48,
  FE: 56,
  SRV: 58,
  STATUS: 60,
  PORT: 62,
  LINE_LEN: 64,
  TERM: 66,
  MODE: 67,
  RETRIES: 68,
  STATE: 69,
  IP_VERSION: 70,
  IP: 72,
  LINE: 88,
} as const;
export const MODE_HTTP = 1;
export const MODE_TCP = 2;
export const NO_SERVER = 0xffff;

/** Bytes of one worker's ring. */
export function ringBytes(): number {
  return RING.WORDS * 4 + RING_RECORDS * RECORD_BYTES;
}

export class AccessLog {
  /** Per frontend index: 1 when it logs; `http`: 1 when it is an HTTP frontend. Set at each reload. */
  readonly on = new Uint8Array(MAX_FRONTENDS);
  readonly http = new Uint8Array(MAX_FRONTENDS);
  private readonly hdr: Int32Array;
  private readonly f64: Float64Array;
  private readonly u16: Uint16Array;
  private readonly u8: Uint8Array;
  // Worker-local per slot (empty until a frontend logs): the client's request so far.
  open = new Uint8Array(0);
  status = new Uint16Array(0);
  srv = new Uint16Array(0);
  retries = new Uint8Array(0);
  tq = new Float64Array(0);
  tc = new Float64Array(0);
  tr = new Float64Array(0);
  in0 = new Float64Array(0);
  out0 = new Float64Array(0);
  last = new Float64Array(0);
  port = new Uint16Array(0);
  version = new Uint8Array(0);
  ip = new Uint8Array(0);
  lineLen = new Uint16Array(0);
  line = new Uint8Array(0);

  constructor(ring: SharedArrayBuffer | null) {
    const sab = ring ?? new SharedArrayBuffer(ringBytes());
    this.hdr = new Int32Array(sab, 0, RING.WORDS);
    this.f64 = new Float64Array(sab);
    this.u16 = new Uint16Array(sab);
    this.u8 = new Uint8Array(sab);
  }

  /** Which frontends log (by index; null: taken out), and which speak HTTP; makes the slot arrays once one does. */
  configure(frontends: readonly ({ accessLog: string | null; mode: string } | null)[], capacity: number): void {
    this.on.fill(0);
    frontends.forEach((f, i) => {
      this.on[i] = f !== null && f.accessLog !== null ? 1 : 0;
      this.http[i] = f?.mode === 'http' ? 1 : 0;
    });
    if (this.open.length === 0 && this.on.includes(1)) this.make(capacity);
  }

  private make(C: number): void {
    this.open = new Uint8Array(C);
    this.status = new Uint16Array(C);
    this.srv = new Uint16Array(C);
    this.retries = new Uint8Array(C);
    this.tq = new Float64Array(C);
    this.tc = new Float64Array(C);
    this.tr = new Float64Array(C);
    this.in0 = new Float64Array(C);
    this.out0 = new Float64Array(C);
    this.last = new Float64Array(C);
    this.port = new Uint16Array(C);
    this.version = new Uint8Array(C);
    this.ip = new Uint8Array(C * 16);
    this.lineLen = new Uint16Array(C);
    this.line = new Uint8Array(C * LOG_LINE_BYTES);
  }

  /** Keeps client c's request line, head[0..its CR), for the record. */
  requestLine(c: number, head: Uint8Array, end: number): void {
    const at = c * LOG_LINE_BYTES;
    let i = 0;
    for (; i < end && head[i] !== 13; i++) if (i < LOG_LINE_BYTES) this.line[at + i] = head[i];
    this.lineLen[c] = i < 0xffff ? i : 0xffff;
  }

  /** Client c was accepted on fd (its frontend logs): its address; a TCP connection's record begins. */
  accepted(t: ConnTable, c: number, fd: number): void {
    const r = peerInto(fd, this.ip, c * 16);
    this.version[c] = r < 0 ? 0 : (r / 65536) | 0;
    this.port[c] = r < 0 ? 0 : r & 0xffff;
    this.last[c] = t.born[c];
    if (this.http[t.fe[c]]) this.open[c] = 0;
    else this.begin(t, c);
  }

  /** Client c's request starts (HTTP: its head is complete; TCP: its accept). */
  begin(t: ConnTable, c: number): void {
    this.open[c] = 1;
    this.lineLen[c] = 0;
    this.status[c] = 0;
    this.srv[c] = NO_SERVER;
    this.retries[c] = 0;
    this.tq[c] = t.since[c] - this.last[c];
    this.tc[c] = -1;
    this.tr[c] = -1;
    this.in0[c] = t.up[c];
    this.out0[c] = t.down[c];
  }

  /**
   * Writes client c's record, ended for `term` at clock ms `now`, and closes its request; a full ring
   * drops it and counts the drop. No allocation.
   */
  write(t: ConnTable, c: number, term: number, now: number): void {
    this.open[c] = 0;
    this.last[c] = now;
    const w = this.hdr[RING.WRITE];
    // The indices count on past 2^31 and wrap: their difference, taken as an Int32, stays right.
    if (((w - Atomics.load(this.hdr, RING.READ)) | 0) >= RING_RECORDS) {
      this.hdr[RING.DROPPED]++;
      return;
    }
    const at = RING.WORDS * 4 + (w & (RING_RECORDS - 1)) * RECORD_BYTES;
    const f = at >> 3;
    const f64 = this.f64;
    f64[f] = t.since[c];
    f64[f + 1] = now;
    f64[f + 2] = this.tq[c];
    f64[f + 3] = this.tc[c];
    f64[f + 4] = this.tr[c];
    f64[f + 5] = t.up[c] - this.in0[c];
    f64[f + 6] = t.down[c] - this.out0[c];
    const h = at >> 1;
    const fe = t.fe[c];
    const http = this.http[fe] === 1;
    this.u16[h + REC.FE / 2] = fe;
    this.u16[h + REC.SRV / 2] = this.srv[c];
    this.u16[h + REC.STATUS / 2] = this.status[c];
    this.u16[h + REC.PORT / 2] = this.port[c];
    const n = this.lineLen[c];
    this.u16[h + REC.LINE_LEN / 2] = n;
    const u8 = this.u8;
    u8[at + REC.TERM] = term;
    u8[at + REC.MODE] = http ? MODE_HTTP : MODE_TCP;
    u8[at + REC.RETRIES] = this.retries[c];
    u8[at + REC.STATE] = t.state[c];
    u8[at + REC.IP_VERSION] = this.version[c];
    const ipBytes = this.version[c] === 4 ? 4 : 16;
    for (let i = 0; i < ipBytes; i++) u8[at + REC.IP + i] = this.ip[c * 16 + i];
    const line = this.line;
    const from = c * LOG_LINE_BYTES;
    const m = n < LOG_LINE_BYTES ? n : LOG_LINE_BYTES;
    for (let i = 0; i < m; i++) u8[at + REC.LINE + i] = line[from + i];
    Atomics.store(this.hdr, RING.WRITE, (w + 1) | 0);
  }
}
