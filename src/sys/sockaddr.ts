// Socket addresses: parsing the user's text and the C layouts the kernel reads.
//
// Layouts (Linux, both x86-64 and arm64; sa_family_t is a host-order u16, ports and IPv4 addresses are
// network order):
//   struct sockaddr_in  { u16 family; u16 port_be; u8 addr[4]; u8 zero[8]; }                 16 bytes
//   struct sockaddr_in6 { u16 family; u16 port_be; u32 flowinfo; u8 addr[16]; u32 scope_id; } 28 bytes
//   struct sockaddr_un  { u16 family; char path[108]; }                                       110 bytes

import { isIPv4, isIPv6 } from 'node:net';
import { AF } from './constants.js';
import { CODES, ProxyError } from './errors.js';

export const SOCKADDR_IN_SIZE = 16;
export const SOCKADDR_IN6_SIZE = 28;
export const SOCKADDR_UN_SIZE = 110;
/** sun_path's size, including the NUL the kernel expects after a pathname. */
export const UNIX_PATH_MAX = 108;
/** Big enough for any of the three: what getsockname() is given. */
export const SOCKADDR_STORAGE_SIZE = 128;

export type IpAddress = { family: 'ipv4' | 'ipv6'; host: string; port: number };
export type UnixAddress = { family: 'unix'; path: string };
export type Address = IpAddress | UnixAddress;
/** What the user wrote before name resolution: a host name still to be looked up, or an address. */
export type AddressSpec = Address | { family: 'name'; host: string; port: number };

function bad(text: string, why: string): ProxyError {
  return new ProxyError(CODES.BAD_ADDRESS, `bad address '${text}': ${why}`);
}

function parsePort(text: string, port: string): number {
  if (!/^[0-9]{1,5}$/.test(port)) throw bad(text, 'the port must be a number from 0 to 65535');
  const n = Number(port);
  if (n > 65535) throw bad(text, 'the port must be a number from 0 to 65535');
  return n;
}

/**
 * Parses `HOST:PORT`, `[IPv6]:PORT` or `unix:/path`. HOST may be an IPv4 address or a name (resolved later
 * by the caller); a bare IPv6 address must be in brackets, since its colons would hide the port.
 * Throws ProxyError(FFIP_ERR_BAD_ADDRESS) with the reason.
 */
export function parseAddress(text: string): AddressSpec {
  if (text.startsWith('unix:')) {
    const path = text.slice(5);
    if (path === '') throw bad(text, 'the unix socket path is empty');
    if (Buffer.byteLength(path) >= UNIX_PATH_MAX) throw bad(text, `the unix socket path is over ${UNIX_PATH_MAX - 1} bytes`);
    if (path.includes('\0')) throw bad(text, 'the unix socket path contains a NUL byte');
    return { family: 'unix', path };
  }
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) throw bad(text, "missing ']' after the IPv6 address");
    const host = text.slice(1, end);
    if (!isIPv6(host)) throw bad(text, `'${host}' is not an IPv6 address`);
    if (text[end + 1] !== ':') throw bad(text, 'expected :PORT after the IPv6 address');
    return { family: 'ipv6', host, port: parsePort(text, text.slice(end + 2)) };
  }
  const colon = text.lastIndexOf(':');
  if (colon < 0) throw bad(text, 'expected HOST:PORT, [IPv6]:PORT or unix:/path');
  const host = text.slice(0, colon);
  if (host.includes(':')) throw bad(text, 'an IPv6 address must be written in brackets: [::1]:8080');
  if (host === '') throw bad(text, 'the host is empty');
  const port = parsePort(text, text.slice(colon + 1));
  if (isIPv4(host)) return { family: 'ipv4', host, port };
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(host)) throw bad(text, `'${host}' is not a valid host name`);
  return { family: 'name', host, port };
}

export function formatAddress(a: AddressSpec): string {
  if (a.family === 'unix') return `unix:${a.path}`;
  if (a.family === 'ipv6') return `[${a.host}]:${a.port}`;
  return `${a.host}:${a.port}`;
}

/** The 16 bytes of an IPv6 address in text form (already checked by isIPv6), zone ids refused. */
export function ipv6Bytes(host: string): Uint8Array {
  const out = new Uint8Array(16);
  if (host.includes('%')) throw bad(host, 'IPv6 zone ids are not supported');
  let text = host;
  // A trailing dotted IPv4 (::ffff:1.2.3.4) stands for the last two groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((v4[0] << 8) | v4[1]).toString(16)}:${((v4[2] << 8) | v4[3]).toString(16)}`;
  }
  const halves = text.split('::');
  const head = halves[0] === '' ? [] : halves[0].split(':');
  const rest = halves.length > 1 ? (halves[1] === '' ? [] : halves[1].split(':')) : [];
  const groups = halves.length > 1 ? [...head, ...Array(8 - head.length - rest.length).fill('0'), ...rest] : head;
  for (let i = 0; i < 8; i++) {
    const g = parseInt(groups[i], 16);
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  }
  return out;
}

function ipv6Text(b: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(((b[2 * i] << 8) | b[2 * i + 1]).toString(16));
  // Compress the longest run of zero groups (RFC 5952), enough for readable log lines.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Encodes an address into a new Buffer in the kernel's layout; `.length` is the socklen_t to pass. */
export function encodeSockaddr(a: Address): Buffer {
  if (a.family === 'ipv4') {
    const b = Buffer.alloc(SOCKADDR_IN_SIZE);
    b.writeUInt16LE(AF.INET, 0); // host order; both supported CPUs are little-endian
    b.writeUInt16BE(a.port, 2);
    const parts = a.host.split('.').map(Number);
    for (let i = 0; i < 4; i++) b[4 + i] = parts[i];
    return b;
  }
  if (a.family === 'ipv6') {
    const b = Buffer.alloc(SOCKADDR_IN6_SIZE);
    b.writeUInt16LE(AF.INET6, 0);
    b.writeUInt16BE(a.port, 2);
    // flowinfo (offset 4) and scope_id (offset 24) stay 0.
    b.set(ipv6Bytes(a.host), 8);
    return b;
  }
  const b = Buffer.alloc(SOCKADDR_UN_SIZE);
  b.writeUInt16LE(AF.UNIX, 0);
  b.write((a as UnixAddress).path, 2, 'utf8'); // the rest of sun_path is zero, so the NUL is there
  return b;
}

/** Decodes a sockaddr the kernel filled in (`len` is the socklen_t it returned). */
export function decodeSockaddr(b: Uint8Array, len: number): Address {
  const view = Buffer.from(b.buffer, b.byteOffset, len);
  const family = view.readUInt16LE(0);
  if (family === AF.INET) {
    return { family: 'ipv4', host: `${view[4]}.${view[5]}.${view[6]}.${view[7]}`, port: view.readUInt16BE(2) };
  }
  if (family === AF.INET6) {
    return { family: 'ipv6', host: ipv6Text(view.subarray(8, 24)), port: view.readUInt16BE(2) };
  }
  if (family === AF.UNIX) {
    const end = view.indexOf(0, 2);
    return { family: 'unix', path: view.toString('utf8', 2, end < 0 ? len : end) };
  }
  throw new ProxyError(CODES.BAD_ADDRESS, `unknown address family ${family}`);
}

export function addressFamily(a: Address): number {
  return a.family === 'ipv4' ? AF.INET : a.family === 'ipv6' ? AF.INET6 : AF.UNIX;
}
