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

/**
 * getpeername() without allocating, for the access log: the peer's address bytes into out[at..at+16) (an
 * IPv4 address in the first 4), and returns its port plus its IP version times 65536 (4 or 6); -1 when the
 * peer is gone or is not an IP address.
 */
export function peerInto(fd: number, out: Uint8Array, at: number): number {
  peerLen[0] = SOCKADDR_STORAGE_SIZE;
  if ((raw.getpeername(fd, peerSa, peerLen) as number) === -1) return -1;
  const family = peerSa.readUInt16LE(0);
  if (family !== AF.INET && family !== AF.INET6) return -1;
  const v4 = family === AF.INET;
  const from = v4 ? 4 : 8;
  for (let i = 0; i < (v4 ? 4 : 16); i++) out[at + i] = peerSa[from + i];
  return (v4 ? 4 : 6) * 65536 + peerSa.readUInt16BE(2);
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


/** The kernel's view of a TCP connection (TCP_INFO, linux/tcp.h), for the admin endpoint's connection list. */
export type TcpInfo = {
  /** TCP state: 'established', 'close-wait', ... */
  state: string;
  /** Smoothed round-trip time and its variation, in milliseconds. */
  rttMs: number;
  rttVarMs: number;
  /** Retransmissions of the segment now waiting (the current backoff), and over the connection's life. */
  retransmits: number;
  totalRetrans: number;
  /** Segments sent and not yet acknowledged, and those the kernel thinks are lost. */
  unacked: number;
  lost: number;
  /** Congestion window, in segments. */
  cwnd: number;
  /** Bytes written and not yet sent (0 where the kernel does not say). */
  notsentBytes: number;
  /** Milliseconds since data was last received, and last sent. */
  lastRecvMs: number;
  lastSentMs: number;
};

const TCP_STATES = ['', 'established', 'syn-sent', 'syn-recv', 'fin-wait1', 'fin-wait2', 'time-wait', 'close', 'close-wait', 'last-ack', 'listen', 'closing'];
const tcpInfoBuf = Buffer.alloc(232);
const tcpInfoLen = new Uint32Array(1);

/** getsockopt(IPPROTO_TCP, TCP_INFO) of `fd`; null when it is not (or no longer) a TCP socket. Not for a hot path. */
export function tcpInfo(fd: number): TcpInfo | null {
  tcpInfoLen[0] = tcpInfoBuf.length;
  tcpInfoBuf.fill(0);
  if ((raw.getsockopt(fd, 6 /* IPPROTO_TCP */, 11 /* TCP_INFO */, tcpInfoBuf, tcpInfoLen) as number) === -1) return null;
  const b = tcpInfoBuf;
  const u32 = (at: number) => (tcpInfoLen[0] >= at + 4 ? b.readUInt32LE(at) : 0);
  return {
    state: TCP_STATES[b[0]] ?? String(b[0]),
    rttMs: u32(68) / 1000,
    rttVarMs: u32(72) / 1000,
    retransmits: b[2],
    totalRetrans: u32(100),
    unacked: u32(24),
    lost: u32(32),
    cwnd: u32(80),
    notsentBytes: u32(144),
    lastRecvMs: u32(52),
    lastSentMs: u32(44),
  };
}
