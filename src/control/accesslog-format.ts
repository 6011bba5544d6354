// The access log's lines, written as bytes straight from the workers' records (core/accesslog.ts) into one
// growing output buffer per file: no string per field, no object per record. Names are turned into bytes
// once per drain, the date once per second; numbers are written digit by digit. This is what keeps a
// logged request's cost on the main thread well under a microsecond (docs/benchmarks.md).
//
//   json      {"time":"...","mode":"http","client":"127.0.0.1",...}
//   haproxy   127.0.0.1:33126 [04/Dec/2026:18:54:55.987] web app/a1 1/0/4/9/9 200 310 - - ---- -/-/-/-/0 0/0 "GET / HTTP/1.1"
//   combined  127.0.0.1 - - [04/Dec/2026:18:54:55 +0000] "GET / HTTP/1.1" 200 310 "-" "-"

import { LOG_LINE_BYTES, MODE_HTTP, NO_SERVER, REC, RECORD_BYTES, RING } from '../core/accesslog.js';
import { TERM_INFO } from '../core/term.js';
import { ST } from '../core/types.js';
import type { AccessLogFormat } from '../route/index.js';

const Q = 0x22; // "
const BS = 0x5c; // \
const HEX = '0123456789abcdef';
/** "00" .. "99" as bytes: pad() writes two digits per division. */
const PAIRS = Buffer.from(Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0')).join(''), 'latin1');

/**
 * Room a line is given at its start (ensure): every field of a record fits in it but names over 32 bytes,
 * which ask for their own; so the writers below do not check the buffer's end field by field.
 */
export const LINE_ROOM = 2048 + 6 * LOG_LINE_BYTES;

/** One file's bytes of the current drain. */
export class Out {
  buf = Buffer.allocUnsafe(256 * 1024);
  n = 0;

  ensure(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(next, 0, 0, this.n);
    this.buf = next;
  }

  byte(c: number): void {
    this.buf[this.n++] = c;
  }

  raw(b: Buffer): void {
    const k = b.length;
    if (k > 32) this.ensure(k + LINE_ROOM);
    this.buf.set(b, this.n);
    this.n += k;
  }

  /** An integer (negative ones too). */
  int(v: number): void {
    const buf = this.buf;
    let n = this.n;
    if (v < 0) {
      buf[n++] = 0x2d;
      v = -v;
    }
    if (v < 10) {
      buf[n] = 0x30 + v;
      this.n = n + 1;
      return;
    }
    let digits = 2;
    for (let p = 100; p <= v; p *= 10) digits++;
    this.n = n;
    this.pad(v, digits);
  }

  /** Milliseconds with up to 3 decimals (trailing zeros dropped), -1 for a phase never reached. */
  ms(v: number): void {
    if (v < 0) return this.int(-1);
    const micro = Math.round(v * 1000);
    this.int(Math.floor(micro / 1000));
    let frac = micro % 1000;
    if (frac === 0) return;
    const buf = this.buf;
    buf[this.n++] = 0x2e;
    buf[this.n++] = 0x30 + ((frac / 100) | 0);
    frac %= 100;
    if (frac === 0) return;
    buf[this.n++] = 0x30 + ((frac / 10) | 0);
    if (frac % 10 !== 0) buf[this.n++] = 0x30 + (frac % 10);
  }

  /** v (0 or more) as `digits` digits, zero-padded: two at a time from a table. */
  pad(v: number, digits: number): void {
    const buf = this.buf;
    const n = this.n;
    let i = digits - 1;
    for (; i > 0; i -= 2) {
      const q = Math.floor(v / 100);
      const k = (v - q * 100) * 2;
      buf[n + i] = PAIRS[k + 1];
      buf[n + i - 1] = PAIRS[k];
      v = q;
    }
    if (i === 0) buf[n] = 0x30 + (v % 10);
    this.n = n + digits;
  }

  /** bytes[from..to) for a quoted field: `"` `\` and bytes outside printable ASCII as \xHH. */
  escaped(bytes: Uint8Array, from: number, to: number, json: boolean): void {
    for (let i = from; i < to; i++) {
      const c = bytes[i];
      if (c >= 0x20 && c < 0x7f && c !== Q && c !== BS) this.buf[this.n++] = c;
      else if (json && (c === Q || c === BS)) {
        this.buf[this.n++] = BS;
        this.buf[this.n++] = c;
      } else {
        this.buf[this.n++] = BS;
        if (json) this.n += this.buf.write('u00', this.n, 'latin1');
        else this.buf[this.n++] = 0x78; // x
        this.buf[this.n++] = HEX.charCodeAt(c >> 4);
        this.buf[this.n++] = HEX.charCodeAt(c & 15);
      }
    }
  }

  /** Hands over the bytes written so far, and starts again in a new buffer of the same size. */
  take(): Buffer {
    const b = this.buf.subarray(0, this.n);
    this.buf = Buffer.allocUnsafeSlow(this.buf.length);
    this.n = 0;
    return b;
  }
}

/** Names as bytes, made once per drain: a frontend's, a server's `backend/server`, for both escapings. */
export type Names = {
  frontend(fe: number, json: boolean): Buffer;
  /** JSON: `"backend":"B","server":"S"` (server null when none); text: `B/S` (`B/<NOSRV>`). */
  where(fe: number, srv: number, json: boolean): Buffer;
};

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => String(n).padStart(2, '0');

/** The date of a clock ms, its second formatted once: ISO (json), HAProxy's, nginx's. */
class Dates {
  private second = -1;
  private iso = Buffer.alloc(0);
  private clf = Buffer.alloc(0);

  private at(ms: number): void {
    const s = Math.floor(ms / 1000);
    if (s === this.second) return;
    this.second = s;
    const d = new Date(s * 1000);
    const hms = `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`;
    this.iso = Buffer.from(`${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}T${hms}.`, 'latin1');
    this.clf = Buffer.from(`${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${hms}`, 'latin1');
  }

  isoDate(o: Out, ms: number): void {
    this.at(ms);
    o.raw(this.iso);
    o.pad(Math.floor(ms) % 1000, 3);
    o.byte(0x5a); // Z
  }

  haproxy(o: Out, ms: number): void {
    this.at(ms);
    o.raw(this.clf);
    o.byte(0x2e);
    o.pad(Math.floor(ms) % 1000, 3);
  }

  nginx(o: Out, ms: number): void {
    this.at(ms);
    o.raw(this.clf);
    o.raw(PLUS0000);
  }
}

const B = (s: string) => Buffer.from(s, 'latin1');
const PLUS0000 = B(' +0000');
const TERM_NAMES = TERM_INFO.map((i) => B(i.name));
const WHO = TERM_INFO.map((i) => i.who.charCodeAt(0));
const NULL = B('null');

/** One record of a ring, read in place through views made once per ring. */
export class RingView {
  readonly f64: Float64Array;
  readonly u16: Uint16Array;
  readonly u8: Uint8Array;
  at = 0;

  constructor(ring: SharedArrayBuffer) {
    this.f64 = new Float64Array(ring);
    this.u16 = new Uint16Array(ring);
    this.u8 = new Uint8Array(ring);
  }

  /** Points at record slot `slot`. */
  seek(slot: number): void {
    this.at = RING.WORDS * 4 + slot * RECORD_BYTES;
  }
  f(off: number): number {
    return this.f64[(this.at + off) >> 3];
  }
  h(off: number): number {
    return this.u16[(this.at + off) >> 1];
  }
  b(off: number): number {
    return this.u8[this.at + off];
  }
  get fe(): number {
    return this.h(REC.FE);
  }
}

/** HAProxy's termination state: who ended it, then the client's phase (docs/observability.md). */
function phase(r: RingView): number {
  switch (r.b(REC.STATE)) {
    case ST.H_HEAD:
    case ST.PP_WAIT:
    case ST.TLS_WAIT:
      return 0x52; // R
    case ST.WAITING:
      return 0x43; // C
    case ST.H_BODY:
    case ST.H_WAIT:
      return r.f(REC.TC) < 0 ? 0x43 : r.f(REC.TR) < 0 ? 0x48 : 0x44; // C, H, D
    case ST.H_LINGER:
      return 0x4c; // L
    default:
      return 0x44; // D
  }
}

function state(o: Out, r: RingView): void {
  const who = WHO[r.b(REC.TERM)] ?? 0x2d;
  o.byte(who);
  o.byte(who === 0x2d ? 0x2d : phase(r));
}

export class Formatter {
  private readonly dates = new Dates();
  // The last IPv4 client written, as bytes: a kept-alive client's requests come one after another.
  private lastIp = -1;
  private lastIpText = Buffer.alloc(0);

  /** Appends the record `r` points at to `o`, in `kind`, with its line end. */
  line(o: Out, kind: AccessLogFormat, r: RingView, names: Names): void {
    o.ensure(LINE_ROOM);
    if (kind === 'json') this.json(o, r, names);
    else if (kind === 'haproxy') this.haproxy(o, r, names);
    else this.combined(o, r, names);
    o.byte(0x0a);
  }

  private client(o: Out, r: RingView, port: boolean): void {
    const v = r.b(REC.IP_VERSION);
    const ip = r.at + REC.IP;
    if (v === 4) {
      const u8 = r.u8;
      const key = ((u8[ip] << 24) | (u8[ip + 1] << 16) | (u8[ip + 2] << 8) | u8[ip + 3]) >>> 0;
      if (key !== this.lastIp) {
        this.lastIp = key;
        this.lastIpText = Buffer.from(`${u8[ip]}.${u8[ip + 1]}.${u8[ip + 2]}.${u8[ip + 3]}`, 'latin1');
      }
      o.raw(this.lastIpText);
    } else if (v === 6) {
      o.n += o.buf.write(ipv6Text(r.u8, ip), o.n, 'latin1');
    } else o.byte(0x2d);
    if (port) {
      o.byte(0x3a);
      o.int(r.h(REC.PORT));
    }
  }

  /** "request line" (`<BADREQ>` when there was none), cut ones followed by `...`. */
  private quotedLine(o: Out, r: RingView): void {
    const len = r.h(REC.LINE_LEN);
    const from = r.at + REC.LINE;
    const to = from + Math.min(len, LOG_LINE_BYTES);
    const cut = len > LOG_LINE_BYTES;
    o.byte(Q);
    if (to === from) o.raw(BADREQ);
    else o.escaped(r.u8, from, to, false);
    if (cut) o.raw(DOTS);
    o.byte(Q);
  }

  private haproxy(o: Out, r: RingView, names: Names): void {
    const http = r.b(REC.MODE) === MODE_HTTP;
    const start = r.f(REC.START);
    const end = r.f(REC.END);
    this.client(o, r, true);
    o.raw(SP_LB);
    this.dates.haproxy(o, start);
    o.raw(RB_SP);
    o.raw(names.frontend(r.fe, false));
    o.byte(0x20);
    o.raw(names.where(r.fe, r.h(REC.SRV), false));
    o.byte(0x20);
    if (http) {
      wholeMs(o, r.f(REC.TQ));
      o.raw(SLASH0SLASH);
      wholeMs(o, r.f(REC.TC));
      o.byte(0x2f);
      wholeMs(o, r.f(REC.TR));
      o.byte(0x2f);
      wholeMs(o, end - start);
      o.byte(0x20);
      const status = r.h(REC.STATUS);
      o.int(status === 0 ? -1 : status);
      o.byte(0x20);
      o.int(r.f(REC.BYTES_OUT));
      o.raw(DASHES);
      state(o, r);
      o.raw(DASH2_CONNS);
      o.int(r.b(REC.RETRIES));
      o.raw(QUEUES);
      o.byte(0x20);
      this.quotedLine(o, r);
      return;
    }
    o.raw(ZERO_SLASH);
    wholeMs(o, r.f(REC.TC));
    o.byte(0x2f);
    wholeMs(o, end - start);
    o.byte(0x20);
    o.int(r.f(REC.BYTES_OUT));
    o.byte(0x20);
    state(o, r);
    o.raw(CONNS);
    o.int(r.b(REC.RETRIES));
    o.raw(QUEUES);
  }

  private combined(o: Out, r: RingView, names: Names): void {
    const http = r.b(REC.MODE) === MODE_HTTP;
    this.client(o, r, false);
    o.raw(DASH_DASH_LB);
    this.dates.nginx(o, r.f(REC.START));
    o.raw(RB_SP);
    if (http) {
      this.quotedLine(o, r);
      o.byte(0x20);
      const status = r.h(REC.STATUS);
      if (status === 0) o.byte(0x2d);
      else o.int(status);
    } else {
      o.raw(QTCP);
      o.raw(names.where(r.fe, r.h(REC.SRV), false));
      o.byte(Q);
      o.byte(0x20);
      o.int(tcpStatus(WHO[r.b(REC.TERM)] ?? 0x2d));
    }
    o.byte(0x20);
    o.int(r.f(REC.BYTES_OUT));
    o.raw(NO_AGENT);
  }

  private json(o: Out, r: RingView, names: Names): void {
    const http = r.b(REC.MODE) === MODE_HTTP;
    const start = r.f(REC.START);
    o.raw(J_TIME);
    this.dates.isoDate(o, start);
    o.raw(http ? J_HTTP : J_TCP);
    this.client(o, r, false);
    o.raw(J_PORT);
    o.int(r.h(REC.PORT));
    o.raw(J_FRONTEND);
    o.raw(names.frontend(r.fe, true));
    o.raw(J_Q_COMMA);
    o.raw(names.where(r.fe, r.h(REC.SRV), true));
    if (http) this.jsonRequest(o, r);
    o.raw(J_BYTES_IN);
    o.int(r.f(REC.BYTES_IN));
    o.raw(J_BYTES_OUT);
    o.int(r.f(REC.BYTES_OUT));
    if (http) {
      o.raw(J_TQ);
      o.ms(r.f(REC.TQ));
    }
    o.raw(J_TC);
    o.ms(r.f(REC.TC));
    if (http) {
      o.raw(J_TR);
      o.ms(r.f(REC.TR));
    }
    o.raw(http ? J_TA : J_TT);
    o.ms(r.f(REC.END) - start);
    o.raw(J_RETRIES);
    o.int(r.b(REC.RETRIES));
    o.raw(J_TERMINATION);
    o.raw(TERM_NAMES[r.b(REC.TERM)] ?? NULL);
    o.raw(J_STATE);
    state(o, r);
    o.raw(J_END);
  }

  /** ,"method":"GET","path":"/x","version":"HTTP/1.1","line_truncated":false,"status":200 */
  private jsonRequest(o: Out, r: RingView): void {
    const len = r.h(REC.LINE_LEN);
    const from = r.at + REC.LINE;
    const to = from + Math.min(len, LOG_LINE_BYTES);
    const cut = len > LOG_LINE_BYTES;
    const u8 = r.u8;
    const sp1 = u8.indexOf(0x20, from);
    const a = sp1 < 0 || sp1 >= to ? to : sp1;
    const sp2 = a < to ? u8.indexOf(0x20, a + 1) : -1;
    const b = sp2 < 0 || sp2 >= to ? to : sp2;
    jsonField(o, J_METHOD, u8, from, a, to > from);
    jsonField(o, J_PATH, u8, a + 1, b, a < to);
    jsonField(o, J_VERSION, u8, b + 1, to, b < to);
    o.raw(cut ? J_CUT : J_WHOLE);
    const status = r.h(REC.STATUS);
    if (status === 0) o.raw(NULL);
    else o.int(status);
  }
}

/** The IPv6 address at u8[at..at+16) as RFC 5952 writes it: the longest run of zero groups as `::`. */
function ipv6Text(u8: Uint8Array, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((u8[at + i] << 8) | u8[at + i + 1]).toString(16));
  let best = -1;
  let len = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > len) [best, len] = [i, j - i];
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + len).join(':')}`;
}

/** ,"name":"bytes[s..e)" escaped, or null when not `present`. */
function jsonField(o: Out, name: Buffer, u8: Uint8Array, s: number, e: number, present: boolean): void {
  o.raw(name);
  if (!present) return o.raw(NULL);
  o.byte(Q);
  o.escaped(u8, s, e, true);
  o.byte(Q);
}

/** Whole milliseconds, -1 for a phase never reached (HAProxy's timers). */
function wholeMs(o: Out, ms: number): void {
  o.int(ms < 0 ? -1 : Math.round(ms));
}

/** nginx stream's $status for a TCP connection, from who ended it. */
function tcpStatus(who: number): number {
  if (who === 0x53 || who === 0x73) return 502; // S, s
  if (who === 0x52) return 503; // R
  if (who === 0x49) return 500; // I
  if (who === 0x50) return 400; // P
  return 200;
}

const BADREQ = B('<BADREQ>');
const DOTS = B('...');
const SP_LB = B(' [');
const RB_SP = B('] ');
const SLASH0SLASH = B('/0/');
const ZERO_SLASH = B('0/');
const DASHES = B(' - - ');
const DASH2_CONNS = B('-- -/-/-/-/');
const CONNS = B(' -/-/-/-/');
const QUEUES = B(' 0/0');
const DASH_DASH_LB = B(' - - [');
const QTCP = B('"TCP ');
const NO_AGENT = B(' "-" "-"');
const J_TIME = B('{"time":"');
const J_HTTP = B('","mode":"http","client":"');
const J_TCP = B('","mode":"tcp","client":"');
const J_PORT = B('","client_port":');
const J_FRONTEND = B(',"frontend":"');
const J_Q_COMMA = B('",');
const J_METHOD = B(',"method":');
const J_PATH = B(',"path":');
const J_VERSION = B(',"version":');
const J_CUT = B(',"line_truncated":true,"status":');
const J_WHOLE = B(',"line_truncated":false,"status":');
const J_BYTES_IN = B(',"bytes_in":');
const J_BYTES_OUT = B(',"bytes_out":');
const J_TQ = B(',"tq_ms":');
const J_TC = B(',"tc_ms":');
const J_TR = B(',"tr_ms":');
const J_TA = B(',"ta_ms":');
const J_TT = B(',"tt_ms":');
const J_RETRIES = B(',"retries":');
const J_TERMINATION = B(',"termination":"');
const J_STATE = B('","termination_state":"');
const J_END = B('"}');

/** A name as bytes, for a JSON string (escaped) or a log field (as it is: names have no spaces). */
function nameBytes(name: string, json: boolean): Buffer {
  return Buffer.from(json ? JSON.stringify(name).slice(1, -1) : name, 'utf8');
}

/** The names of the route tables as they are now, as bytes, each made at its first use. */
export function namesOf(
  frontends: readonly ({ name: string; backend: number } | null)[],
  backends: readonly ({ name: string; servers: { id: number; name: string }[] } | null)[],
): Names {
  const servers = new Map<number, { backend: string; server: string }>();
  for (const be of backends) for (const s of be?.servers ?? []) servers.set(s.id, { backend: be!.name, server: s.name });
  const fe = new Map<number, Buffer>();
  const where = new Map<number, Buffer>();
  return {
    frontend(i, json) {
      const key = i * 2 + (json ? 1 : 0);
      let b = fe.get(key);
      if (b === undefined) fe.set(key, (b = nameBytes(frontends[i]?.name ?? '-', json)));
      return b;
    },
    where(i, srv, json) {
      const key = srv === NO_SERVER ? -(i * 2 + (json ? 1 : 0)) - 1 : srv * 2 + (json ? 1 : 0);
      let b = where.get(key);
      if (b !== undefined) return b;
      const n = srv === NO_SERVER ? undefined : servers.get(srv);
      const backend = n?.backend ?? backends[frontends[i]?.backend ?? -1]?.name ?? '-';
      const server = n?.server ?? null;
      const text = json
        ? `"backend":"${nameBytes(backend, true).toString()}","server":${server === null ? 'null' : `"${nameBytes(server, true).toString()}"`}`
        : `${backend}/${server ?? '<NOSRV>'}`;
      where.set(key, (b = Buffer.from(text, 'utf8')));
      return b;
    },
  };
}
