// What a request's target and its Host must be (RFC 9112 3.2, RFC 9110 4.2 and 7.2, RFC 3986 3.2.2), checked
// on the head's bytes in place after scanHead(): no string and no regular expression, a loop or two over the
// bytes of the target and of the Host value. llhttp has already refused most malformed targets (outside
// CONNECT it lets a target start only with '/', '*' or a scheme); what is left is which form fits which
// method, a fragment, the authority's syntax, and whether Host agrees with the target.
//
//   origin-form     /path?query                      any method but CONNECT
//   absolute-form   http(s)://host[:port][/path][?q]  any method but CONNECT; a Host sent with it must name
//                                                     the same host and port, else 400 (as HAProxy)
//   asterisk-form   *                                OPTIONS only
//   authority-form  host:port                        CONNECT only (answered 501 after this check)
//
// Host, and an absolute-form target's authority, is `uri-host [":" port]`: a reg-name (unreserved,
// pct-encoded and sub-delims bytes, but no ',' and no two dots in a row), an IPv4 address (a reg-name by
// its bytes), or an IPv6 or IPvFuture literal in brackets; then, optionally, ':' and at most 65535 in
// digits. docs/http.md ("Request-target and Host") compares this with what HAProxy and nginx accept.
//
// A forwarded absolute-form target stays as it came, and the request is routed by its Host, which then
// names the same host: the backend, the route and X-Forwarded-Host all see one host. An HTTP/1.0 request
// may come without Host; with an absolute-form target its authority is then the request's host.

import { HEAD_ERR, type HeadInfo } from './head.js';
import { METHOD } from './parser-t.js';

const SP = 0x20;
const HASH = 0x23;
const PERCENT = 0x25;
const STAR = 0x2a;
const DOT = 0x2e;
const SLASH = 0x2f;
const COLON = 0x3a;
const QUESTION = 0x3f;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;

/** Byte classes: a byte a reg-name may hold as it is; a hex digit. */
const REG = 1;
const HEX = 2;
const CLASS = new Uint8Array(256);
// unreserved (RFC 3986 2.3) and sub-delims (2.2), less ',': a comma is what joins the values of a field
// sent more than once, so a Host with one is read as a list of hosts by whatever combined or will split it
// (HAProxy refuses it for that reason).
for (const ch of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+;=") CLASS[ch.charCodeAt(0)] |= REG;
for (const ch of '0123456789ABCDEFabcdef') CLASS[ch.charCodeAt(0)] |= HEX;

/** A port that is not there or is empty (`host` or `host:`). */
const NO_PORT = -2;

/**
 * Checks buf[s..e) as `uri-host [":" port]` and returns where its uri-host ends (e when no port follows), or
 * -1 when it is not one. An empty value passes as an empty reg-name: callers decide whether it may be empty.
 */
export function hostEnd(buf: Uint8Array, s: number, e: number): number {
  let p = s;
  if (p < e && buf[p] === LBRACKET) {
    let q = p + 1;
    while (q < e && buf[q] !== RBRACKET) q++;
    if (q === e || !ipLiteral(buf, p + 1, q)) return -1;
    p = q + 1;
  } else {
    p = regNameEnd(buf, p, e);
    if (p < 0) return -1;
  }
  if (p === e) return e;
  if (buf[p] !== COLON || port(buf, p + 1, e) === -1) return -1;
  return p;
}

/**
 * Where the reg-name that starts at s ends (at a ':' or at e), or -1 for a byte a reg-name may not hold, a
 * '%' not followed by two hex digits, or two dots in a row (an empty label: no host name has one, and a
 * backend that maps hosts to directories could take `..` for a parent, which is why nginx refuses it).
 */
function regNameEnd(buf: Uint8Array, s: number, e: number): number {
  let p = s;
  while (p < e) {
    const c = buf[p];
    if (CLASS[c] & REG) {
      if (c === DOT && p > s && buf[p - 1] === DOT) return -1;
      p++;
    } else if (c === PERCENT) {
      if (p + 2 >= e || !(CLASS[buf[p + 1]] & HEX) || !(CLASS[buf[p + 2]] & HEX)) return -1;
      p += 3;
    } else {
      return c === COLON ? p : -1;
    }
  }
  return p;
}

/** The port buf[s..e) as a number: NO_PORT when empty (RFC 3986: port = *DIGIT), -1 when not digits or over 65535. */
function port(buf: Uint8Array, s: number, e: number): number {
  if (s >= e) return NO_PORT;
  let v = 0;
  for (let p = s; p < e; p++) {
    const d = buf[p] - 0x30;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
    if (v > 65535) return -1;
  }
  return v;
}

/** Inside the brackets of an IP-literal: an IPv6 address, or an IPvFuture ("v" 1*HEXDIG "." 1*(...)). */
function ipLiteral(buf: Uint8Array, s: number, e: number): boolean {
  if (s < e && (buf[s] | 0x20) === 0x76) {
    let p = s + 1;
    while (p < e && CLASS[buf[p]] & HEX) p++;
    if (p === s + 1 || p >= e - 1 || buf[p] !== DOT) return false;
    for (p++; p < e; p++) if (!(CLASS[buf[p]] & REG) && buf[p] !== COLON) return false;
    return true;
  }
  return ipv6(buf, s, e);
}

/**
 * RFC 3986's IPv6address: eight groups of 1 to 4 hex digits separated by ':', fewer when one '::' stands for
 * the rest, the last two groups possibly an IPv4 address. No zone identifier (RFC 9110 has none).
 */
function ipv6(buf: Uint8Array, s: number, e: number): boolean {
  let p = s;
  let groups = 0;
  let gap = false;
  if (e - p >= 2 && buf[p] === COLON && buf[p + 1] === COLON) {
    gap = true;
    p += 2;
    if (p === e) return true;
  }
  for (;;) {
    let q = p;
    while (q < e && CLASS[buf[q]] & HEX) q++;
    if (q < e && buf[q] === DOT) {
      // The last 32 bits as an IPv4 address, which ends the literal.
      if (!ipv4(buf, p, e)) return false;
      groups += 2;
      break;
    }
    if (q === p || q - p > 4) return false;
    groups++;
    p = q;
    if (p === e) break;
    if (buf[p] !== COLON || ++p === e) return false;
    if (buf[p] === COLON) {
      if (gap) return false;
      gap = true;
      if (++p === e) break;
    }
  }
  return gap ? groups <= 7 : groups === 8;
}

/** Four dec-octets (0 to 255, no leading zero) separated by dots, filling buf[s..e). */
function ipv4(buf: Uint8Array, s: number, e: number): boolean {
  let p = s;
  for (let i = 0; i < 4; i++) {
    if (i > 0 && (p >= e || buf[p++] !== DOT)) return false;
    const d = p;
    let v = 0;
    while (p < e && p - d < 3 && buf[p] >= 0x30 && buf[p] <= 0x39) v = v * 10 + buf[p++] - 0x30;
    if (p === d || v > 255 || (p - d > 1 && buf[d] === 0x30)) return false;
  }
  return p === e;
}

/** Byte-wise, ASCII case-insensitive: "http://" (7) or "https://" (8) at buf[s..e)? The scheme's length + 3, or 0. */
function httpScheme(buf: Uint8Array, s: number, e: number): number {
  if (e - s < 7) return 0;
  // 'h' 't' 't' 'p', in either case
  if ((buf[s] | 0x20) !== 0x68 || (buf[s + 1] | 0x20) !== 0x74 || (buf[s + 2] | 0x20) !== 0x74 || (buf[s + 3] | 0x20) !== 0x70) return 0;
  let p = s + 4;
  if ((buf[p] | 0x20) === 0x73) p++;
  return buf[p] === COLON && buf[p + 1] === SLASH && buf[p + 2] === SLASH ? p + 3 - s : 0;
}

/**
 * The target's form against the method, and an absolute-form target's authority. Fills info.target,
 * targetEnd and pathStart, and for absolute-form authStart, authEnd and defaultPort. Returns a HEAD_ERR.
 */
function checkTarget(buf: Uint8Array, start: number, info: HeadInfo, method: number): number {
  // The target lies between the request line's first space and its last (strict llhttp: single spaces).
  let ts = start;
  while (buf[ts] !== SP) ts++;
  ts++;
  let te = info.startLineEnd;
  while (buf[te - 1] !== SP) te--;
  te--;
  info.target = ts;
  info.targetEnd = te;
  info.pathStart = -1;
  info.authStart = -1;
  info.authEnd = -1;
  // A fragment is the client's own and is never sent (RFC 9112 3.2 has none in any form); llhttp lets it
  // through, and a path cut at '#' by one hop and not by the next routes differently (HAProxy refuses it).
  for (let p = ts; p < te; p++) if (buf[p] === HASH) return HEAD_ERR.BAD_TARGET;
  if (method === METHOD.CONNECT) {
    // authority-form: a host and a port, both there.
    const he = hostEnd(buf, ts, te);
    return he > ts && he < te - 1 ? HEAD_ERR.NONE : HEAD_ERR.TARGET_FORM;
  }
  const c = buf[ts];
  if (c === SLASH) {
    info.pathStart = ts;
    return HEAD_ERR.NONE;
  }
  if (c === STAR) {
    if (te - ts !== 1) return HEAD_ERR.BAD_TARGET;
    return method === METHOD.OPTIONS ? HEAD_ERR.NONE : HEAD_ERR.TARGET_FORM;
  }
  // absolute-form, for http and https: the only schemes this proxy serves.
  const k = httpScheme(buf, ts, te);
  if (k === 0) return HEAD_ERR.BAD_TARGET;
  const as = ts + k;
  let ae = as;
  while (ae < te && buf[ae] !== SLASH && buf[ae] !== QUESTION) ae++;
  // An http(s) URI with an empty host is invalid (RFC 9110 4.2.1 and 4.2.2); userinfo fails as a host.
  const he = hostEnd(buf, as, ae);
  if (he <= as) return HEAD_ERR.BAD_TARGET;
  info.authStart = as;
  info.authEnd = ae;
  info.defaultPort = k === 7 ? 80 : 443;
  if (ae < te && buf[ae] === SLASH) info.pathStart = ae;
  return HEAD_ERR.NONE;
}

const lower = (c: number) => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c);

/**
 * Do the authority buf[as..ae) and the Host value buf[hs..he), both valid, name the same host and port? Hosts
 * compare ASCII case-insensitively; a missing or empty port is the scheme's default (so `http://a:80/` goes
 * with `Host: a`, as HAProxy lets it).
 */
function sameAuthority(buf: Uint8Array, as: number, ae: number, hs: number, he: number, defaultPort: number): boolean {
  const ah = hostEnd(buf, as, ae);
  const hh = hostEnd(buf, hs, he);
  if (ah - as !== hh - hs) return false;
  for (let i = 0; i < ah - as; i++) if (lower(buf[as + i]) !== lower(buf[hs + i])) return false;
  const ap = ah === ae ? NO_PORT : port(buf, ah + 1, ae);
  const hp = hh === he ? NO_PORT : port(buf, hh + 1, he);
  return (ap === NO_PORT ? defaultPort : ap) === (hp === NO_PORT ? defaultPort : hp);
}

/**
 * The proxy's request rules beyond llhttp's, for a head that scanHead() has filled `info` from (its start
 * line at buf[start]). Returns a HEAD_ERR, all answered 400:
 *
 * - MANY_HOSTS, NO_HOST: an HTTP/1.1 request needs exactly one Host; HTTP/1.0 may omit it but not repeat it
 *   (RFC 9112 3.2: a server MUST answer 400 when it is missing or repeated).
 * - TARGET_FORM, BAD_TARGET: the target's form does not fit the method, or the target is not valid (above).
 * - BAD_HOST: the Host value is not `uri-host [":" port]`.
 * - HOST_MISMATCH: an absolute-form target whose authority names another host or port than Host does.
 *
 * Also sets info.hostStart and hostEnd to an absolute-form target's authority when there is no Host.
 */
export function requestHeadError(buf: Uint8Array, start: number, info: HeadInfo, method: number, httpMinor: number): number {
  if (info.hosts > 1) return HEAD_ERR.MANY_HOSTS;
  if (info.hosts === 0 && httpMinor === 1) return HEAD_ERR.NO_HOST;
  const err = checkTarget(buf, start, info, method);
  if (err !== HEAD_ERR.NONE) return err;
  const hs = info.hostStart;
  const he = info.hostEnd;
  if (info.host >= 0) {
    // An empty Host passes (a target without an authority, RFC 9112 3.2), an empty host with a port does not.
    const hh = hostEnd(buf, hs, he);
    if (hh < 0 || (hh === hs && he > hs)) return HEAD_ERR.BAD_HOST;
    if (info.authStart >= 0 && !sameAuthority(buf, info.authStart, info.authEnd, hs, he, info.defaultPort)) {
      return HEAD_ERR.HOST_MISMATCH;
    }
  } else if (info.authStart >= 0) {
    info.hostStart = info.authStart;
    info.hostEnd = info.authEnd;
  }
  return HEAD_ERR.NONE;
}
