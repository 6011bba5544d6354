// Reading and rewriting a message head that llhttp has already accepted in strict mode, so every line ends
// in CRLF, every field line has a colon, there is no obs-fold and no bare CR or LF. This file does not
// re-validate syntax; it finds fields and applies the proxy's rules.
//
//   scanHead(head) -> HeadInfo: a span per field line (name, value with OWS trimmed), Host count,
//                                the fields Connection names, Transfer-Encoding
//   requestHeadError() (target.ts) -> the Host and request-target rules, which also fill the target's spans
//   writeHead(head, info, out, opts)  -> the head for the next hop, either way: hop-by-hop fields removed
//                                (RFC 9110 7.6.1), the proxy's Connection line, X-Forwarded-* on requests
//
// No allocation per call on the common path: spans go into the HeadInfo's Int32Array, names are compared
// as bytes, bytes are copied without views. Strings appear only for fields named in Connection and for
// X-Forwarded-For values a client sent (both rare).

/** At most this many field lines per head: HAProxy's default (tune.http.maxhdr 101) rounded; past it, 431. */
export const MAX_FIELDS = 100;

export const HEAD_ERR = {
  NONE: 0,
  TOO_MANY_FIELDS: 1,
  NO_HOST: 2,
  MANY_HOSTS: 3,
  BAD_HOST: 4, // the Host value is not uri-host [":" port]
  BAD_TARGET: 5, // the request-target is not valid (a fragment, an unknown scheme, a bad authority)
  TARGET_FORM: 6, // the request-target's form does not fit the method
  HOST_MISMATCH: 7, // an absolute-form target's authority and Host name different hosts or ports
} as const;

export class HeadInfo {
  /** 4 per field line: nameStart, nameEnd, valueStart, valueEnd (offsets into the scanned buffer). */
  readonly spans = new Int32Array(MAX_FIELDS * 4);
  count = 0;
  /** End of the start line (the index of its CR). */
  startLineEnd = 0;
  /** Where the blank line that ends the head starts (the index of its CR). */
  fieldsEnd = 0;
  hosts = 0;
  host = -1; // field index of the (first) Host
  /**
   * The request's host, which it is routed by and X-Forwarded-Host names: the Host value's span (scanHead),
   * or an absolute-form target's authority when there is no Host (requestHeadError); -1 when neither.
   */
  hostStart = -1;
  hostEnd = -1;
  // Filled by requestHeadError (target.ts) for requests: the request-target buf[target..targetEnd), where its
  // path starts (-1: none, as `*`), an absolute-form target's authority (-1: none) and its scheme's port.
  target = 0;
  targetEnd = 0;
  pathStart = -1;
  authStart = -1;
  authEnd = -1;
  defaultPort = 80;
  /** Transfer-Encoding field lines, and whether the one seen is exactly `chunked` (the only coding we relay). */
  transferEncodings = 0;
  chunkedOnly = false;
  /** Lower-case field names listed in Connection besides close/keep-alive/upgrade (hop-by-hop too). */
  connectionNamed: string[] = [];
}

const COLON = 0x3a;
const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COMMA = 0x2c;
const SLASH = 0x2f;

/** Byte-wise, ASCII case-insensitive: does buf[s..e) equal `lower` (given in lower case)? */
function eqLower(buf: Uint8Array, s: number, e: number, lower: string): boolean {
  if (e - s !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    const c = buf[s + i];
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * The CR that ends the line buf[p] is in. No CR or LF may appear inside a line (strict llhttp), and a line
 * ends in the two bytes CR LF, so looking at every second byte finds one of them: half the reads of a
 * byte-by-byte scan, on the values that make up most of a head.
 */
function lineCr(buf: Uint8Array, from: number): number {
  let p = from;
  for (;;) {
    const c = buf[p];
    if (c === CR) return p;
    if (c === LF) return p - 1;
    p += 2;
  }
}

/** Hop-by-hop fields a proxy must not forward (RFC 9110 7.6.1, plus the Trailer field the issue names). */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade'];

/**
 * Fills `info` from the head in buf[start..end) (end = just past the blank line's LF). Returns a HEAD_ERR:
 * TOO_MANY_FIELDS (answer 431). The Host and request-target rules are checked by requestHeadError() (target.ts).
 */
export function scanHead(buf: Uint8Array, start: number, end: number, info: HeadInfo): number {
  info.count = 0;
  info.hosts = 0;
  info.host = -1;
  info.transferEncodings = 0;
  info.chunkedOnly = false;
  if (info.connectionNamed.length) info.connectionNamed = [];
  let p = start;
  p = lineCr(buf, p);
  info.startLineEnd = p;
  p += 2;
  while (p < end && buf[p] !== CR) {
    if (info.count === MAX_FIELDS) return HEAD_ERR.TOO_MANY_FIELDS;
    const ns = p;
    while (buf[p] !== COLON) p++;
    const ne = p;
    p++;
    while (buf[p] === SP || buf[p] === HTAB) p++;
    const vs = p;
    p = lineCr(buf, p);
    let ve = p;
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
    p += 2;
    const i = info.count++;
    const o = i * 4;
    info.spans[o] = ns;
    info.spans[o + 1] = ne;
    info.spans[o + 2] = vs;
    info.spans[o + 3] = ve;
    classify(buf, info, i, ns, ne, vs, ve);
  }
  info.fieldsEnd = p;
  info.hostStart = info.host >= 0 ? info.spans[info.host * 4 + 2] : -1;
  info.hostEnd = info.host >= 0 ? info.spans[info.host * 4 + 3] : -1;
  return HEAD_ERR.NONE;
}

function classify(buf: Uint8Array, info: HeadInfo, i: number, ns: number, ne: number, vs: number, ve: number): void {
  switch (ne - ns) {
    case 4:
      if (eqLower(buf, ns, ne, 'host')) {
        info.hosts++;
        if (info.host < 0) info.host = i;
      }
      return;
    case 10:
      if (eqLower(buf, ns, ne, 'connection')) connectionTokens(buf, info, vs, ve);
      return;
    case 17:
      if (eqLower(buf, ns, ne, 'transfer-encoding')) {
        info.transferEncodings++;
        info.chunkedOnly = eqLower(buf, vs, ve, 'chunked');
      }
      return;
  }
}

/**
 * Connection = #connection-option: comma-separated tokens with optional whitespace. The field names it lists
 * are hop-by-hop too; its own options (close, keep-alive, upgrade) are not names, and the proxy writes its
 * own Connection line anyway (writeHead).
 */
function connectionTokens(buf: Uint8Array, info: HeadInfo, vs: number, ve: number): void {
  let p = vs;
  while (p < ve) {
    while (p < ve && (buf[p] === SP || buf[p] === HTAB || buf[p] === COMMA)) p++;
    const ts = p;
    while (p < ve && buf[p] !== COMMA) p++;
    let te = p;
    while (te > ts && (buf[te - 1] === SP || buf[te - 1] === HTAB)) te--;
    if (te === ts) continue;
    if (eqLower(buf, ts, te, 'close') || eqLower(buf, ts, te, 'keep-alive') || eqLower(buf, ts, te, 'upgrade')) continue;
    info.connectionNamed.push(Buffer.from(buf.buffer, buf.byteOffset + ts, te - ts).toString('latin1').toLowerCase());
  }
}

function isHopByHop(buf: Uint8Array, info: HeadInfo, ns: number, ne: number, keepUpgrade: boolean): boolean {
  for (const name of HOP_BY_HOP) {
    if (eqLower(buf, ns, ne, name)) return !(keepUpgrade && name === 'upgrade');
  }
  for (const name of info.connectionNamed) if (eqLower(buf, ns, ne, name)) return true;
  return false;
}

export type HeadOptions = {
  /**
   * For a request going upstream: add X-Forwarded-For/-Proto/-Host (on by default in the CLI;
   * --no-forwarded-headers turns it off). Null for responses, and for requests with the option off.
   */
  forwarded: { clientAddress: string; proto: string } | null;
  /** The request asks to upgrade and the proxy lets it (or this is the 101 answering it): keep Upgrade. */
  upgrading: boolean;
  /**
   * The Connection line to send, chosen by the proxy for this hop: 'close' when it will close after this
   * message, 'keep-alive' for an HTTP/1.0 peer it keeps, null when HTTP/1.1's default says it all. An
   * upgrade always sends `Connection: upgrade`.
   */
  connection: 'close' | 'keep-alive' | null;
  /**
   * A request whose route strips its prefix: `cutLen` bytes of the start line from `cutAt` (the target's
   * path) are left out, and a '/' put in their place when what follows does not start with one.
   */
  cutAt?: number;
  cutLen?: number;
};

const CONNECTION_LINE = {
  close: Buffer.from('Connection: close\r\n'),
  'keep-alive': Buffer.from('Connection: keep-alive\r\n'),
  upgrade: Buffer.from('Connection: upgrade\r\n'),
};
const XFH = Buffer.from('X-Forwarded-Host: ');

/** Copies src[s..e) to out at n; returns the new n, or -1 when out is too small. */
function copy(src: Uint8Array, s: number, e: number, out: Uint8Array, n: number): number {
  const len = e - s;
  if (n + len > out.length) return -1;
  copyBytes(src, s, e, out, n);
  return n + len;
}

// The typed array methods, called through .call: V8's background compiler does not resolve a method on a
// typed array's prototype chain, and each `x.copyWithin(...)` then costs a generic property lookup.
const SET = Uint8Array.prototype.set;
const COPY_WITHIN = Uint8Array.prototype.copyWithin;

// The last pair of arrays copyBytes was given, whether they share an ArrayBuffer, and if so a view of all of
// it and where each array starts in it. writeHead copies from one inbox to one outbox several times per
// head. A Buffer's `buffer` and `byteOffset` getters cost a call into V8 each, and in code that V8 compiled
// on its background thread `byteOffset` is not inlined at all (about 11 ns, against 3 when it is). So they
// are asked once per pair, and never when the caller knows the answers (primeCopy).
let lastSrc: Uint8Array | null = null;
let lastOut: Uint8Array | null = null;
let sameSlab = false;
let slabView: Uint8Array = new Uint8Array(0);
// The ArrayBuffer slabView was made for by copyBytes itself; null after primeCopy, whose view it did not make.
let slabBuffer: ArrayBufferLike | null = null;
let srcOffset = 0;
let outOffset = 0;

/**
 * Tells copyBytes what the caller knows of the next copies from src to out: `slab` is a view of all of the
 * ArrayBuffer that both live in, src starting at `srcAt` in it and out at `outAt`; or `slab` is null when
 * they do not share one. The pool knows all this of its buffers (BufferPool.sharedSlab).
 */
export function primeCopy(src: Uint8Array, srcAt: number, out: Uint8Array, outAt: number, slab: Uint8Array | null): void {
  lastSrc = src;
  lastOut = out;
  sameSlab = slab !== null;
  if (slab !== null) {
    slabView = slab;
    slabBuffer = null;
    srcOffset = srcAt;
    outOffset = outAt;
  }
}

/**
 * out.set(src.subarray(s, e), at) without the subarray (an allocation per call). Pool buffers are views
 * of shared slabs of 256 (pools.ts), so an inbox and an outbox are nearly always in the same one: then it
 * is one copyWithin on a view of the whole slab. A whole array (the proxy's own lines) is set as it is, and
 * a few bytes are copied one by one, which costs less than a call into V8's copy.
 */
export function copyBytes(src: Uint8Array, s: number, e: number, out: Uint8Array, at: number): void {
  const len = e - s;
  if (len <= 8) {
    for (let k = 0; k < len; k++) out[at + k] = src[s + k];
    return;
  }
  if (s === 0 && e === src.length) {
    SET.call(out, src, at);
    return;
  }
  if (src !== lastSrc || out !== lastOut) {
    const buffer = src.buffer;
    sameSlab = buffer === out.buffer;
    if (sameSlab && buffer !== slabBuffer) {
      slabBuffer = buffer;
      slabView = new Uint8Array(buffer);
    }
    srcOffset = src.byteOffset;
    outOffset = out.byteOffset;
    lastSrc = src;
    lastOut = out;
  }
  if (sameSlab) COPY_WITHIN.call(slabView, outOffset + at, srcOffset + s, srcOffset + e);
  else SET.call(out, src.subarray(s, e), at);
}

/** Writes CR LF to out at n; returns the new n, or -1 when out is too small. */
function crlf(out: Uint8Array, n: number): number {
  if (n + 2 > out.length) return -1;
  out[n] = CR;
  out[n + 1] = LF;
  return n + 2;
}

/** Writes the latin1 string `s` to out at n; returns the new n, or -1 when out is too small. */
function text(s: string, out: Buffer, n: number): number {
  if (n + s.length > out.length) return -1;
  return n + out.write(s, n, 'latin1');
}

/**
 * The X-Forwarded-For and X-Forwarded-Proto lines (and the start of X-Forwarded-Host, whose value is the
 * request's host) as bytes, kept for the last client and proto asked: a worker writes the same few
 * client addresses over and over, so they are encoded once rather than per request, and go out in one copy.
 */
class ForwardedLines {
  private client = '';
  private proto = '';
  private withHost = Buffer.alloc(0);
  private withoutHost = Buffer.alloc(0);
  of(client: string, proto: string, host: boolean): Buffer {
    if (client !== this.client || proto !== this.proto) {
      this.client = client;
      this.proto = proto;
      const lines = `X-Forwarded-For: ${client}\r\nX-Forwarded-Proto: ${proto}\r\n`;
      this.withoutHost = Buffer.from(lines, 'latin1');
      this.withHost = Buffer.from(`${lines}X-Forwarded-Host: `, 'latin1');
    }
    return host ? this.withHost : this.withoutHost;
  }
}
// One per scheme: a worker serving plain and TLS frontends alike does not encode again at each switch.
const forwardedLines = { http: new ForwardedLines(), https: new ForwardedLines() };

/** The end of the field line whose value ends at ve: just past its CRLF (after any trailing whitespace). */
function lineEnd(buf: Uint8Array, ve: number): number {
  let p = ve;
  while (buf[p] !== CR) p++;
  return p + 2;
}

/**
 * Writes the next hop's version of the head buf[start..end) (a request going to the backend, or a response
 * going to the client) into `out` and returns its length, or -1 when `out` is too small (the caller
 * answers 431 or 502), never a truncated head. The start line is copied as is. Hop-by-hop fields and the
 * fields Connection names are dropped, then the proxy's own Connection line is added. For requests with
 * `forwarded`, an existing X-Forwarded-For gets the client appended (as nginx's $proxy_add_x_forwarded_for
 * does), and X-Forwarded-Proto/-Host are replaced, so a client cannot forge them.
 *
 * Kept field lines are copied as they came (llhttp has checked them), a run of consecutive ones at a time:
 * a head with nothing to drop is one copy plus the proxy's own lines.
 */
export function writeHead(buf: Uint8Array, start: number, info: HeadInfo, out: Buffer, o: HeadOptions): number {
  const fwd = o.forwarded;
  const spans = info.spans;
  let n = 0;
  let run = start; // the kept bytes not yet copied start here
  let xff = -1;
  const cutLen = o.cutLen ?? 0;
  if (cutLen > 0) {
    const at = o.cutAt!;
    if ((n = copy(buf, start, at, out, n)) < 0) return -1;
    run = at + cutLen;
    if (buf[run] !== SLASH) {
      if (n + 1 > out.length) return -1;
      out[n++] = SLASH;
    }
  }
  for (let i = 0; i < info.count; i++) {
    const ns = spans[i * 4];
    const ne = spans[i * 4 + 1];
    let drop = isHopByHop(buf, info, ns, ne, o.upgrading);
    if (!drop && fwd !== null) {
      if (eqLower(buf, ns, ne, 'x-forwarded-for')) {
        if (xff < 0) xff = i; // merged into one line below
        drop = true;
      } else {
        drop = eqLower(buf, ns, ne, 'x-forwarded-proto') || eqLower(buf, ns, ne, 'x-forwarded-host');
      }
    }
    if (!drop) continue;
    // A field line starts with its name (strict llhttp refuses leading whitespace).
    if ((n = copy(buf, run, ns, out, n)) < 0) return -1;
    run = lineEnd(buf, spans[i * 4 + 3]);
  }
  if ((n = copy(buf, run, info.fieldsEnd, out, n)) < 0) return -1;
  const connection = o.upgrading ? 'upgrade' : o.connection;
  if (connection !== null) {
    const line = CONNECTION_LINE[connection];
    if ((n = copy(line, 0, line.length, out, n)) < 0) return -1;
  }
  if (fwd !== null) {
    // Every X-Forwarded-For line the client sent, in order, then the client itself.
    let prior = '';
    for (let i = xff; i >= 0 && i < info.count; i++) {
      const ns = spans[i * 4];
      const ne = spans[i * 4 + 1];
      if (!eqLower(buf, ns, ne, 'x-forwarded-for')) continue;
      const v = Buffer.from(buf.buffer, buf.byteOffset + spans[i * 4 + 2], spans[i * 4 + 3] - spans[i * 4 + 2]);
      if (v.length) prior += (prior ? ', ' : '') + v.toString('latin1');
    }
    if (prior) {
      const lines = `X-Forwarded-For: ${prior}, ${fwd.clientAddress}\r\nX-Forwarded-Proto: ${fwd.proto}\r\n`;
      if ((n = text(lines, out, n)) < 0) return -1;
      if (info.hostStart >= 0 && (n = copy(XFH, 0, XFH.length, out, n)) < 0) return -1;
    } else {
      // The usual case: the lines as bytes, kept from the last request with the same client and proto.
      const lines = forwardedLines[fwd.proto === 'https' ? 'https' : 'http'].of(fwd.clientAddress, fwd.proto, info.hostStart >= 0);
      if ((n = copy(lines, 0, lines.length, out, n)) < 0) return -1;
    }
    if (info.hostStart >= 0) {
      if ((n = copy(buf, info.hostStart, info.hostEnd, out, n)) < 0) return -1;
      if ((n = crlf(out, n)) < 0) return -1;
    }
  }
  return crlf(out, n);
}
