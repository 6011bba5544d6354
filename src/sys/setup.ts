// Set-up calls: they run at start, stop or on rare paths, and throw SysError with the call and errno name
// (`listen 127.0.0.1:8080: EADDRINUSE (address already in use)`), which the CLI prints as its one line.

import { AF, EFD, F, IPV6_V6ONLY, O, RLIMIT_NOFILE, SO, SOCK, SOL, TCP_NODELAY } from './constants.js';
import { check } from './errors.js';
import { close, errno, fcntlInt, pipe2, raw, setIntOpt, socket, write } from './libc.js';
import {
  type Address,
  addressFamily,
  decodeSockaddr,
  encodeSockaddr,
  formatAddress,
  SOCKADDR_STORAGE_SIZE,
} from './sockaddr.js';

export type ListenOptions = { backlog: number; reusePort: boolean };

/**
 * A non-blocking listening TCP socket bound to `addr`. With reusePort, several such sockets (one per worker,
 * and across processes of the same user) share the port and the kernel spreads connections between them.
 * An IPv6 listener is IPv6-only, so `[::]:P` and `0.0.0.0:P` can be two separate listeners.
 */
export function listenSocket(addr: Address, opts: ListenOptions): number {
  const fd = boundSocket(addr, opts.reusePort);
  const l = raw.listen(fd, opts.backlog) as number;
  if (l === -1) {
    const err = errno();
    close(fd);
    check(-err, 'listen', formatAddress(addr));
  }
  return fd;
}

/**
 * Throws SysError (`listen ADDR: EADDRINUSE`) when something already holds `addr`'s port: anything that
 * listens there, another ffi-proxy's SO_REUSEPORT listeners included, which our own SO_REUSEPORT listeners
 * would otherwise join without a word (the kernel would then split new connections between the two). A probe
 * socket without SO_REUSEPORT is bound and closed at once. It keeps SO_REUSEADDR, so that connections of an
 * earlier run still in TIME_WAIT do not count. Port 0 needs no probe: the kernel picks a free port.
 */
export function checkPortFree(addr: Address): void {
  if (addr.family !== 'unix' && addr.port === 0) return;
  close(boundSocket(addr, false));
}

/**
 * A socket bound to `addr` with SO_REUSEPORT but never listening: it holds the port (and settles port 0)
 * for processes that bind their own listeners to it later, and takes no connections itself, because only
 * listening sockets join the port's reuseport group. Throws as listenSocket does (EADDRINUSE...).
 */
export function reservePort(addr: Address): { fd: number; address: Address } {
  const fd = boundSocket(addr, true);
  try {
    return { fd, address: localAddress(fd) };
  } catch (e) {
    close(fd);
    throw e;
  }
}

function boundSocket(addr: Address, reusePort: boolean): number {
  const what = formatAddress(addr);
  const fd = check(socket(addressFamily(addr), SOCK.STREAM | SOCK.NONBLOCK | SOCK.CLOEXEC, 0), 'socket', what);
  try {
    check(setIntOpt(fd, SOL.SOCKET, SO.REUSEADDR, 1), 'setsockopt SO_REUSEADDR', what);
    if (reusePort) check(setIntOpt(fd, SOL.SOCKET, SO.REUSEPORT, 1), 'setsockopt SO_REUSEPORT', what);
    if (addr.family === 'ipv6') check(setIntOpt(fd, SOL.IPV6, IPV6_V6ONLY, 1), 'setsockopt IPV6_V6ONLY', what);
    const sa = encodeSockaddr(addr);
    const r = raw.bind(fd, sa, sa.length) as number;
    // Named "listen" like the listen() failure: to the user both mean the address cannot be listened on.
    check(r === -1 ? -errno() : 0, 'listen', what);
    return fd;
  } catch (e) {
    close(fd);
    throw e;
  }
}

/** The address a socket is bound to (resolves port 0). */
export function localAddress(fd: number): Address {
  const sa = Buffer.alloc(SOCKADDR_STORAGE_SIZE);
  const len = new Uint32Array([SOCKADDR_STORAGE_SIZE]);
  const r = raw.getsockname(fd, sa, len) as number;
  check(r === -1 ? -errno() : 0, 'getsockname');
  return decodeSockaddr(sa, len[0]);
}

// Reused by peerAddress (one per thread: module state is per thread): called once per HTTP client, it
// would otherwise leave two small buffers of garbage per connection, which an idle worker never collects.
const peerSa = Buffer.alloc(SOCKADDR_STORAGE_SIZE);
const peerLen = new Uint32Array(1);

/** The address of a connected socket's peer, or null when it is gone. Once per HTTP client, and for logs. */
export function peerAddress(fd: number): Address | null {
  const sa = peerSa;
  const len = peerLen;
  len[0] = SOCKADDR_STORAGE_SIZE;
  const r = raw.getpeername(fd, sa, len) as number;
  if (r === -1) return null;
  return decodeSockaddr(sa, len[0]);
}

/**
 * getpeername() without allocating: copies the peer's address bytes (4 for IPv4, 16 for IPv6) into `out`
 * and returns how many; 0 when the peer is gone or is not an IP address. For hashing a client (route/).
 */
export function peerAddressBytes(fd: number, out: Uint8Array): number {
  peerLen[0] = SOCKADDR_STORAGE_SIZE;
  if ((raw.getpeername(fd, peerSa, peerLen) as number) === -1) return 0;
  // sockaddr_in: family at 0, address at 4 (4 bytes); sockaddr_in6: address at 8 (16 bytes). See sockaddr.ts.
  const family = peerSa.readUInt16LE(0);
  const at = family === AF.INET ? 4 : 8;
  const n = family === AF.INET ? 4 : family === AF.INET6 ? 16 : 0;
  for (let i = 0; i < n; i++) out[i] = peerSa[at + i];
  return n;
}

/** A non-blocking eventfd, used to wake a worker blocked in epoll_wait. */
export function createEventfd(): number {
  const fd = raw.eventfd(0, EFD.NONBLOCK | EFD.CLOEXEC) as number;
  return check(fd === -1 ? -errno() : fd, 'eventfd');
}

const one = new BigUint64Array([1n]);

/** Adds 1 to an eventfd's counter. Any thread may call it; the fd is shared by the whole process. */
export function signalEventfd(fd: number): void {
  // EAGAIN means the counter is at its maximum, so the reader is already due to wake: nothing is lost.
  write(fd, new Uint8Array(one.buffer), 8);
}

/**
 * A non-blocking pipe for splice, resized to `size` bytes (F_SETPIPE_SZ rounds up to a power-of-two number
 * of pages). Returns [readFd, writeFd], or -errno (EMFILE/ENFILE are expected under load: the caller falls
 * back to copying).
 */
export function createPipe(size: number, fds: Int32Array): number {
  const r = pipe2(fds, O.NONBLOCK | O.CLOEXEC);
  if (r < 0) return r;
  // A failure to resize (EPERM over /proc/sys/fs/pipe-max-size) leaves the default 64 KiB, which works.
  fcntlInt(fds[1], F.SETPIPE_SZ, size);
  return 0;
}

/** The current size of a pipe's buffer, in bytes. */
export function pipeSize(fd: number): number {
  return check(fcntlInt(fd, F.GETPIPE_SZ, 0), 'fcntl F_GETPIPE_SZ');
}

/** RLIMIT_NOFILE as [soft, hard]. */
export function getNofile(): [number, number] {
  const lim = new BigUint64Array(2);
  const r = raw.getrlimit(RLIMIT_NOFILE, lim) as number;
  check(r === -1 ? -errno() : 0, 'getrlimit RLIMIT_NOFILE');
  return [Number(lim[0]), Number(lim[1])];
}

/**
 * Raises the soft RLIMIT_NOFILE to the hard limit, as HAProxy and nginx do at start: the soft default (often
 * 1024) would cap the proxy at a few hundred connections. Returns [soft, hard] as they are afterwards; if
 * the raise is refused, the old limits stand and the capacity is planned from them.
 */
export function raiseNofile(): [number, number] {
  const lim = new BigUint64Array(2);
  const r = raw.getrlimit(RLIMIT_NOFILE, lim) as number;
  check(r === -1 ? -errno() : 0, 'getrlimit RLIMIT_NOFILE');
  if (lim[0] < lim[1]) {
    lim[0] = lim[1];
    raw.setrlimit(RLIMIT_NOFILE, lim);
  }
  return getNofile();
}

export function setNoDelay(fd: number): number {
  return setIntOpt(fd, SOL.TCP, TCP_NODELAY, 1);
}

