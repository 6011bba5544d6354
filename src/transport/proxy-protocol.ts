// The PROXY protocol, versions 1 and 2 (HAProxy's doc/proxy-protocol.txt): a header a load balancer puts
// in front of a TCP stream to say who the client really was. A pure codec: bytes in, fields out, no sockets,
// and no state kept between calls.
//
//   parseProxyHeader(buf, start, end, out) -> NEED_MORE | OK | ERROR, the fields in `out`
//   encodeV1 / encodeV2(out, off, ...)     -> the header for one TCP client, written at out[off..]
//
// How the parser decides, from the bytes buf[start..end) received so far:
//
//   a prefix of "PROXY " or of the v2 signature ----------------------------------------> NEED_MORE
//   "PROXY " + (a prefix of) TCP4 / TCP6 / UNKNOWN, no CRLF yet, under 107 bytes -------> NEED_MORE
//            + a line ending in CRLF within 107 bytes, every field valid ---------------> OK, version 1
//   signature + version 2, a known command and family, under 16 + length bytes --------> NEED_MORE
//             + all 16 + length bytes (at most PROXY_V2_MAX), the blocks fit -----------> OK, version 2
//   anything else, as soon as the bytes so far show it ---------------------------------> ERROR
//
// Nothing malformed is guessed at: the spec says a receiver must drop what does not exactly match. The
// caller calls again on the whole span when more bytes arrive; a header is short, so scanning it again
// costs less than a state kept per connection.

export const PP = { NEED_MORE: 0, OK: 1, ERROR: 2 } as const;
export type PPStatus = (typeof PP)[keyof typeof PP];

/** The longest v1 line the spec allows, CRLF included ("PROXY UNKNOWN" with two full IPv6 addresses). */
export const PROXY_V1_MAX = 107;

/**
 * The longest v2 header we accept: 16 fixed bytes and 1024 of address block and TLVs. The largest address
 * block is 216 bytes (two unix paths); TLVs seen in practice take tens of bytes (AWS, GCP and Azure endpoint
 * ids) to a few hundred (HAProxy's authority <= 255, unique id <= 128, an SSL summary). The length field
 * alone would allow 65551 bytes. HAProxy has no separate cap on the whole header: it needs it within one
 * read of its buffer (tune.bufsize, 16 KiB by default) and caps each TLV value at 1024 bytes.
 */
export const PROXY_V2_MAX = 16 + 1024;

/** Reasons in ProxyHeader.error, stable so that tests and log readers can match on them. */
export const PP_ERR = {
  NOT_PROXY: 'no PROXY protocol header',
  V1_PROTOCOL: 'v1: protocol is not TCP4, TCP6 or UNKNOWN',
  V1_TOO_LONG: `v1: no CRLF within ${PROXY_V1_MAX} bytes`,
  V1_BARE_LF: 'v1: LF without CR',
  V1_BARE_CR: 'v1: CR without LF',
  V1_FIELDS: 'v1: not four fields separated by single spaces',
  V1_SRC_ADDR: 'v1: bad source address',
  V1_DST_ADDR: 'v1: bad destination address',
  V1_SRC_PORT: 'v1: bad source port',
  V1_DST_PORT: 'v1: bad destination port',
  V2_VERSION: 'v2: version is not 2',
  V2_COMMAND: 'v2: command is not LOCAL or PROXY',
  V2_FAMILY: 'v2: unknown address family or transport',
  V2_SHORT: 'v2: length shorter than the address block',
  V2_TOO_LONG: `v2: header over ${PROXY_V2_MAX} bytes`,
  V2_TLV: 'v2: TLV runs past the header',
} as const;

export type ProxyFamily = 'ipv4' | 'ipv6' | null;

/**
 * What parseProxyHeader found. The caller keeps one and passes it in; every field is reset on each call,
 * and the OK path allocates nothing but the two address strings.
 */
export class ProxyHeader {
  status: PPStatus = PP.NEED_MORE;
  /** Bytes of the header when OK (the payload starts at start + consumed), else 0. */
  consumed = 0;
  /** 1 or 2 once a signature is recognised, 0 before. */
  version: 0 | 1 | 2 = 0;
  /** v1 UNKNOWN, v2 LOCAL, or a v2 family that is not TCP: no client address, use the real peer's. */
  local = false;
  /** Set with the addresses: null when local or not OK. */
  family: ProxyFamily = null;
  /** Dotted quad, or IPv6 in RFC 5952 form ("::1", "::ffff:192.0.2.1"): fit for X-Forwarded-For. */
  srcAddr = '';
  srcPort = 0;
  dstAddr = '';
  dstPort = 0;
  /** A PP_ERR reason when ERROR, else ''. */
  error = '';
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const DOT = 0x2e;
const COLON = 0x3a;
const D0 = 0x30;

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const SIG_V1 = ascii('PROXY ');
/** v2's 12 bytes: CRLF CRLF NUL CRLF "QUIT" LF. */
const SIG_V2 = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
const TCP4 = ascii('TCP4 ');
const TCP6 = ascii('TCP6 ');
const UNKNOWN = ascii('UNKNOWN');
const HEX = ascii('0123456789abcdef');

/** v2 byte 13: the version in the high nibble, the command in the low one. */
const V2_VERSION = 2;
const V2_LOCAL = 0;
const V2_PROXY = 1;
/** v2 byte 14: family (high nibble) and transport (low nibble), the pairs the spec lists. */
const FAM = { UNSPEC: 0x00, TCP4: 0x11, UDP4: 0x12, TCP6: 0x21, UDP6: 0x22, UNIX_STREAM: 0x31, UNIX_DGRAM: 0x32 } as const;

/** Scratch space, module-level so no call allocates: two parsed addresses (src at 0, dst at 16), text. */
const ADDR = Buffer.alloc(32);
/** Longest address text: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" is 45 characters. */
const TEXT_MAX = 45;
const TEXT = Buffer.alloc(64);
/** Where encoders build a header before copying it out whole (the largest is a v1 line). */
const HDR = Buffer.alloc(PROXY_V1_MAX);

/**
 * Looks for a PROXY header at buf[start..end) (start <= end <= buf.length). Returns out.status:
 * NEED_MORE (call again with more bytes), OK (out.consumed is the header's length; the bytes after it are
 * the payload, untouched), or ERROR (out.error says why; drop the connection). Never reads outside
 * [start, end) and never writes to buf.
 */
export function parseProxyHeader(buf: Uint8Array, start: number, end: number, out: ProxyHeader): PPStatus {
  out.status = PP.NEED_MORE;
  out.consumed = 0;
  out.version = 0;
  out.local = false;
  out.family = null;
  out.srcAddr = out.dstAddr = '';
  out.srcPort = out.dstPort = 0;
  out.error = '';
  if (end <= start) return PP.NEED_MORE;
  if (buf[start] === SIG_V1[0]) {
    if (!matches(buf, start, end, SIG_V1)) return fail(out, PP_ERR.NOT_PROXY);
    if (end - start < SIG_V1.length) return PP.NEED_MORE;
    out.version = 1;
    return parseV1(buf, start, end, out);
  }
  if (buf[start] === SIG_V2[0]) {
    if (!matches(buf, start, end, SIG_V2)) return fail(out, PP_ERR.NOT_PROXY);
    if (end - start < SIG_V2.length) return PP.NEED_MORE;
    out.version = 2;
    return parseV2(buf, start, end, out);
  }
  return fail(out, PP_ERR.NOT_PROXY);
}

function fail(out: ProxyHeader, reason: string): PPStatus {
  out.status = PP.ERROR;
  out.error = reason;
  return PP.ERROR;
}

function ok(out: ProxyHeader, consumed: number): PPStatus {
  out.status = PP.OK;
  out.consumed = consumed;
  return PP.OK;
}

/** Do the bytes at buf[p..end) agree with `token` as far as both go? (A prefix of it counts.) */
function matches(buf: Uint8Array, p: number, end: number, token: Uint8Array): boolean {
  const n = Math.min(end - p, token.length);
  for (let i = 0; i < n; i++) if (buf[p + i] !== token[i]) return false;
  return true;
}

// ---- version 1 --------------------------------------------------------------------------------------------

function parseV1(buf: Uint8Array, start: number, end: number, out: ProxyHeader): PPStatus {
  const p = start + SIG_V1.length;
  // The protocol first, so that "PROXY " followed by anything else fails without waiting for a line end.
  let proto: 4 | 6 | 0;
  if (matches(buf, p, end, TCP4)) proto = 4;
  else if (matches(buf, p, end, TCP6)) proto = 6;
  else if (matches(buf, p, end, UNKNOWN)) proto = 0;
  else return fail(out, PP_ERR.V1_PROTOCOL);
  const tokenEnd = p + (proto === 0 ? UNKNOWN.length : TCP4.length);
  if (end < tokenEnd) return PP.NEED_MORE;
  // UNKNOWN ends the line or is followed by a space and anything (the spec: the receiver ignores it). A
  // bare LF here is left for the line-end check to name.
  if (proto === 0 && end > tokenEnd) {
    const c = buf[tokenEnd];
    if (c !== SP && c !== CR && c !== LF) return fail(out, PP_ERR.V1_PROTOCOL);
  }

  // The line ends at the first CR, which must be followed by LF; a lone CR or LF anywhere is an error.
  const limit = start + PROXY_V1_MAX;
  let cr = -1;
  for (let i = p; i < end && i < limit; i++) {
    const c = buf[i];
    if (c === LF) return fail(out, PP_ERR.V1_BARE_LF);
    if (c !== CR) continue;
    if (i + 1 >= limit) return fail(out, PP_ERR.V1_TOO_LONG);
    if (i + 1 === end) return PP.NEED_MORE;
    if (buf[i + 1] !== LF) return fail(out, PP_ERR.V1_BARE_CR);
    cr = i;
    break;
  }
  if (cr < 0) return end >= limit ? fail(out, PP_ERR.V1_TOO_LONG) : PP.NEED_MORE;
  if (proto === 0) {
    out.local = true;
    return ok(out, cr + 2 - start);
  }

  // "src dst sport dport": four non-empty fields, one space between each, none after the last.
  const s1 = tokenEnd;
  const e1 = nextSpace(buf, s1, cr);
  const e2 = e1 < cr ? nextSpace(buf, e1 + 1, cr) : cr;
  const e3 = e2 < cr ? nextSpace(buf, e2 + 1, cr) : cr;
  const e4 = e3 < cr ? nextSpace(buf, e3 + 1, cr) : cr;
  if (e3 === cr || e4 !== cr || e1 === s1 || e2 === e1 + 1 || e3 === e2 + 1 || e4 === e3 + 1) {
    return fail(out, PP_ERR.V1_FIELDS);
  }
  const v6 = proto === 6;
  if (!(v6 ? parseIPv6(buf, s1, e1, ADDR, 0) : parseIPv4(buf, s1, e1, ADDR, 0))) return fail(out, PP_ERR.V1_SRC_ADDR);
  if (!(v6 ? parseIPv6(buf, e1 + 1, e2, ADDR, 16) : parseIPv4(buf, e1 + 1, e2, ADDR, 16))) {
    return fail(out, PP_ERR.V1_DST_ADDR);
  }
  const sport = parsePort(buf, e2 + 1, e3);
  if (sport < 0) return fail(out, PP_ERR.V1_SRC_PORT);
  const dport = parsePort(buf, e3 + 1, e4);
  if (dport < 0) return fail(out, PP_ERR.V1_DST_PORT);
  setAddresses(out, v6, ADDR, 0, 16, sport, dport);
  return ok(out, cr + 2 - start);
}

function nextSpace(buf: Uint8Array, p: number, end: number): number {
  while (p < end && buf[p] !== SP) p++;
  return p;
}

/** A decimal port, 0 to 65535, no sign, no leading zero but "0" itself; -1 if not. */
function parsePort(buf: Uint8Array, s: number, e: number): number {
  const n = e - s;
  if (n < 1 || n > 5 || (n > 1 && buf[s] === D0)) return -1;
  let v = 0;
  for (let i = s; i < e; i++) {
    const d = buf[i] - D0;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v <= 65535 ? v : -1;
}

// ---- version 2 --------------------------------------------------------------------------------------------

/** Bytes of the address block for a v2 family byte under the PROXY command; -1 for a family the spec lacks. */
function v2AddressBytes(fam: number): number {
  switch (fam) {
    case FAM.UNSPEC:
      return 0;
    case FAM.TCP4:
    case FAM.UDP4:
      return 12; // struct { u32 src, dst; u16 sport, dport; }, network order
    case FAM.TCP6:
    case FAM.UDP6:
      return 36; // struct { u8 src[16], dst[16]; u16 sport, dport; }
    case FAM.UNIX_STREAM:
    case FAM.UNIX_DGRAM:
      return 216; // struct { char src[108], dst[108]; }
    default:
      return -1;
  }
}

// Layout (the spec's struct proxy_hdr_v2): sig[12], ver_cmd at 12, fam at 13, u16 big-endian length at 14,
// then `length` bytes: the address block for the family, then TLVs { u8 type; u16 length; value }.
function parseV2(buf: Uint8Array, start: number, end: number, out: ProxyHeader): PPStatus {
  const n = end - start;
  // Each byte is judged as soon as it is here, so a bad header fails before its length has arrived.
  if (n <= 12) return PP.NEED_MORE;
  const verCmd = buf[start + 12];
  if (verCmd >> 4 !== V2_VERSION) return fail(out, PP_ERR.V2_VERSION);
  const cmd = verCmd & 0x0f;
  if (cmd !== V2_LOCAL && cmd !== V2_PROXY) return fail(out, PP_ERR.V2_COMMAND);
  if (n <= 13) return PP.NEED_MORE;
  const fam = buf[start + 13];
  // LOCAL: the spec says the family is ignored along with the whole block.
  const addrBytes = cmd === V2_LOCAL ? 0 : v2AddressBytes(fam);
  if (addrBytes < 0) return fail(out, PP_ERR.V2_FAMILY);
  if (n < 16) return PP.NEED_MORE;
  const len = (buf[start + 14] << 8) | buf[start + 15];
  const total = 16 + len;
  if (total > PROXY_V2_MAX) return fail(out, PP_ERR.V2_TOO_LONG);
  if (len < addrBytes) return fail(out, PP_ERR.V2_SHORT);
  if (n < total) return PP.NEED_MORE;

  // LOCAL (a health check from the proxy itself) and UNSPEC carry no usable address, and what follows
  // may have any shape ("log the address information if present", the spec says): skip it all.
  if (cmd === V2_LOCAL || fam === FAM.UNSPEC) {
    out.local = true;
    return ok(out, total);
  }
  // TLVs are not read, but each must end within the header: a TLV running past it means the sender and
  // we disagree on where the payload starts. (A CRC32C TLV is not checked: TCP already did.)
  const hEnd = start + total;
  for (let p = start + 16 + addrBytes; p < hEnd; ) {
    if (hEnd - p < 3) return fail(out, PP_ERR.V2_TLV);
    p += 3 + ((buf[p + 1] << 8) | buf[p + 2]);
    if (p > hEnd) return fail(out, PP_ERR.V2_TLV);
  }
  const a = start + 16;
  if (fam === FAM.TCP4) {
    setAddresses(out, false, buf, a, a + 4, (buf[a + 8] << 8) | buf[a + 9], (buf[a + 10] << 8) | buf[a + 11]);
  } else if (fam === FAM.TCP6) {
    setAddresses(out, true, buf, a, a + 16, (buf[a + 32] << 8) | buf[a + 33], (buf[a + 34] << 8) | buf[a + 35]);
  } else {
    // UDP or unix: the spec lets a receiver fall back to UNSPEC for valid families it does not support,
    // and a UDP or unix address cannot stand for the peer of a TCP connection anyway.
    out.local = true;
  }
  return ok(out, total);
}

function setAddresses(out: ProxyHeader, v6: boolean, b: Uint8Array, src: number, dst: number, sport: number, dport: number): void {
  out.family = v6 ? 'ipv6' : 'ipv4';
  out.srcAddr = TEXT.toString('latin1', 0, v6 ? formatIPv6(b, src, TEXT, 0) : formatIPv4(b, src, TEXT, 0));
  out.dstAddr = TEXT.toString('latin1', 0, v6 ? formatIPv6(b, dst, TEXT, 0) : formatIPv4(b, dst, TEXT, 0));
  out.srcPort = sport;
  out.dstPort = dport;
}

// ---- encoding ---------------------------------------------------------------------------------------------

/**
 * Writes a v1 line for a TCP client at out[off..] and returns its length (at most PROXY_V1_MAX), or -1 if
 * it does not fit (nothing is written then). `family` 'ipv4' or 'ipv6' needs addresses of that family in
 * text (an IPv6 one is written in RFC 5952 form); anything else (a unix socket client, null) gives
 * "PROXY UNKNOWN\r\n". An address or port that is not valid is the caller's bug: RangeError.
 */
export function encodeV1(
  out: Buffer,
  off: number,
  family: string | null,
  srcAddr: string,
  srcPort: number,
  dstAddr: string,
  dstPort: number,
): number {
  let n = 0;
  if (family !== 'ipv4' && family !== 'ipv6') {
    n = put(HDR, n, SIG_V1);
    n = put(HDR, n, UNKNOWN);
  } else {
    const v6 = family === 'ipv6';
    checkArgs(v6, srcAddr, srcPort, dstAddr, dstPort);
    n = put(HDR, n, SIG_V1);
    n = put(HDR, n, v6 ? TCP6 : TCP4);
    n = v6 ? formatIPv6(ADDR, 0, HDR, n) : formatIPv4(ADDR, 0, HDR, n);
    HDR[n++] = SP;
    n = v6 ? formatIPv6(ADDR, 16, HDR, n) : formatIPv4(ADDR, 16, HDR, n);
    HDR[n++] = SP;
    n = putDec(HDR, n, srcPort);
    HDR[n++] = SP;
    n = putDec(HDR, n, dstPort);
  }
  HDR[n++] = CR;
  HDR[n++] = LF;
  return emit(out, off, n);
}

/**
 * Writes a v2 header for a TCP client at out[off..] and returns its length (28 for IPv4, 52 for IPv6, 16
 * for LOCAL), or -1 if it does not fit (nothing is written then). Same arguments and rules as encodeV1;
 * a family other than 'ipv4'/'ipv6' gives LOCAL with UNSPEC, which receivers must accept (HAProxy sends
 * the same for a unix socket client). No TLVs.
 */
export function encodeV2(
  out: Buffer,
  off: number,
  family: string | null,
  srcAddr: string,
  srcPort: number,
  dstAddr: string,
  dstPort: number,
): number {
  let n = put(HDR, 0, SIG_V2);
  if (family !== 'ipv4' && family !== 'ipv6') {
    HDR[n++] = (V2_VERSION << 4) | V2_LOCAL;
    HDR[n++] = FAM.UNSPEC;
    HDR[n++] = 0;
    HDR[n++] = 0;
    return emit(out, off, n);
  }
  const v6 = family === 'ipv6';
  checkArgs(v6, srcAddr, srcPort, dstAddr, dstPort);
  const w = v6 ? 16 : 4;
  HDR[n++] = (V2_VERSION << 4) | V2_PROXY;
  HDR[n++] = v6 ? FAM.TCP6 : FAM.TCP4;
  HDR[n++] = 0;
  HDR[n++] = 2 * w + 4;
  n += ADDR.copy(HDR, n, 0, w);
  n += ADDR.copy(HDR, n, 16, 16 + w);
  n = HDR.writeUInt16BE(srcPort, n);
  n = HDR.writeUInt16BE(dstPort, n);
  return emit(out, off, n);
}

/** Parses both addresses into ADDR (src at 0, dst at 16) and checks the ports, or throws RangeError. */
function checkArgs(v6: boolean, srcAddr: string, srcPort: number, dstAddr: string, dstPort: number): void {
  if (!textToBytes(srcAddr, v6, 0)) throw new RangeError(`PROXY header: source '${srcAddr}' is not an ${v6 ? 'IPv6' : 'IPv4'} address`);
  if (!textToBytes(dstAddr, v6, 16)) {
    throw new RangeError(`PROXY header: destination '${dstAddr}' is not an ${v6 ? 'IPv6' : 'IPv4'} address`);
  }
  checkPort(srcPort);
  checkPort(dstPort);
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`PROXY header: port ${port} is not 0..65535`);
}

/** Copies ASCII `text` to TEXT, then parses it into ADDR at `at`; false if not ASCII or not an address. */
function textToBytes(text: string, v6: boolean, at: number): boolean {
  if (text.length > TEXT_MAX) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7e) return false;
    TEXT[i] = c;
  }
  return v6 ? parseIPv6(TEXT, 0, text.length, ADDR, at) : parseIPv4(TEXT, 0, text.length, ADDR, at);
}

function emit(out: Buffer, off: number, n: number): number {
  if (off < 0 || out.length - off < n) return -1;
  HDR.copy(out, off, 0, n);
  return n;
}

function put(dst: Uint8Array, off: number, bytes: Uint8Array): number {
  dst.set(bytes, off);
  return off + bytes.length;
}

// ---- addresses: text <-> bytes ----------------------------------------------------------------------------

/** A dotted quad at b[s..e) exactly: four decimals 0..255 without leading zeros (the spec: no octal doubt). */
function parseIPv4(b: Uint8Array, s: number, e: number, dst: Uint8Array, off: number): boolean {
  let p = s;
  for (let k = 0; k < 4; k++) {
    if (k > 0) {
      if (p >= e || b[p] !== DOT) return false;
      p++;
    }
    const d = p;
    let v = 0;
    while (p < e && p - d < 4 && b[p] >= D0 && b[p] <= D0 + 9) v = v * 10 + b[p++] - D0;
    const len = p - d;
    if (len === 0 || len > 3 || v > 255 || (len > 1 && b[d] === D0)) return false;
    dst[off + k] = v;
  }
  return p === e;
}

function hexValue(c: number): number {
  if (c >= D0 && c <= D0 + 9) return c - D0;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/**
 * An IPv6 address at b[s..e) exactly (RFC 4291 2.2): eight groups of 1-4 hex digits, at most one "::" for
 * one or more zero groups, optionally a dotted quad for the last 32 bits. No zone id. 16 bytes to dst[off..].
 */
function parseIPv6(b: Uint8Array, s: number, e: number, dst: Uint8Array, off: number): boolean {
  let n = 0; // groups written
  let gap = -1; // group index where "::" stands, if any
  let p = s;
  if (e - s < 2) return false;
  if (b[p] === COLON) {
    if (b[p + 1] !== COLON) return false;
    gap = 0;
    p += 2;
  }
  while (p < e) {
    const g = p;
    let v = 0;
    let h: number;
    while (p < e && p - g < 5 && (h = hexValue(b[p])) >= 0) {
      v = (v << 4) | h;
      p++;
    }
    if (p < e && b[p] === DOT) {
      // ::ffff:192.0.2.1 and the like: the dotted quad is the last two groups and ends the text.
      if (n > 6 || !parseIPv4(b, g, e, dst, off + 2 * n)) return false;
      n += 2;
      break;
    }
    if (p === g || p - g > 4 || n === 8) return false;
    dst[off + 2 * n] = v >> 8;
    dst[off + 2 * n + 1] = v & 0xff;
    n++;
    if (p === e) break;
    if (b[p] !== COLON || ++p === e) return false; // a group is followed by ":" and something
    if (b[p] === COLON) {
      if (gap >= 0) return false;
      gap = n;
      p++;
    }
  }
  if (gap < 0) return n === 8;
  if (n === 8) return false; // "::" must stand for at least one group
  // Move the groups after "::" to the end; zero what it stands for.
  const after = n - gap;
  dst.copyWithin(off + 16 - 2 * after, off + 2 * gap, off + 2 * n);
  dst.fill(0, off + 2 * gap, off + 16 - 2 * after);
  return true;
}

function putDec(dst: Uint8Array, off: number, v: number): number {
  if (v >= 10) off = putDec(dst, off, (v / 10) | 0);
  dst[off] = D0 + (v % 10);
  return off + 1;
}

function formatIPv4(b: Uint8Array, s: number, dst: Uint8Array, off: number): number {
  for (let k = 0; k < 4; k++) {
    if (k > 0) dst[off++] = DOT;
    off = putDec(dst, off, b[s + k]);
  }
  return off;
}

/**
 * The 16 bytes at b[s..] as RFC 5952 text: lower case, no leading zeros, the longest run of two or more
 * zero groups (the first of equal runs) as "::", and an IPv4-mapped address (::ffff:0:0/96) with its last
 * 32 bits dotted, as Node's net module prints them, so X-Forwarded-For reads the same either way.
 */
function formatIPv6(b: Uint8Array, s: number, dst: Uint8Array, off: number): number {
  let mapped = b[s + 10] === 0xff && b[s + 11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) mapped = b[s + i] === 0;
  if (mapped) {
    for (const c of MAPPED) dst[off++] = c;
    return formatIPv4(b, s + 12, dst, off);
  }
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && b[s + 2 * j] === 0 && b[s + 2 * j + 1] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  for (let i = 0; i < 8; ) {
    if (i === best) {
      dst[off++] = COLON;
      dst[off++] = COLON;
      i += bestLen;
      continue;
    }
    if (i > 0 && i !== best + bestLen) dst[off++] = COLON;
    off = putHex(dst, off, (b[s + 2 * i] << 8) | b[s + 2 * i + 1]);
    i++;
  }
  return off;
}
const MAPPED = ascii('::ffff:');

function putHex(dst: Uint8Array, off: number, v: number): number {
  let shift = 12;
  while (shift > 0 && v >> shift === 0) shift -= 4;
  for (; shift >= 0; shift -= 4) dst[off++] = HEX[(v >> shift) & 0xf];
  return off;
}

/** For logs: "PROXY v2 192.0.2.1:5678 -> 198.51.100.2:443", "PROXY v1 local", "PROXY error: <reason>". */
export function describeProxyHeader(h: ProxyHeader): string {
  if (h.status === PP.ERROR) return `PROXY error: ${h.error}`;
  if (h.status === PP.NEED_MORE) return 'PROXY incomplete';
  if (h.local) return `PROXY v${h.version} local`;
  const [l, r] = h.family === 'ipv6' ? ['[', ']'] : ['', ''];
  return `PROXY v${h.version} ${l}${h.srcAddr}${r}:${h.srcPort} -> ${l}${h.dstAddr}${r}:${h.dstPort}`;
}
