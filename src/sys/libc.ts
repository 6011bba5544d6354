// The kernel through koffi. This folder is the only place that imports koffi; everything above it sees
// plain numbers, Buffers and typed arrays.
//
// Two kinds of wrapper:
// - hot path (read, send, splice, accept, ...): return the result, or -errno when libc returned exactly -1.
//   EAGAIN is a state the caller handles, not an error. EINTR is retried here, where it happens.
// - set-up (see setup.ts): throw SysError carrying the call and the errno name.
//
// Every pointer argument is declared `void *` so that koffi hands the C side the address of the Buffer or
// typed array's own memory (no copy in, no copy out). Callers must not keep such a pointer past the call,
// which none of these functions do.
//
// Thread model: each worker thread imports this module for itself; koffi function objects are per thread.

import koffi from 'koffi';
import { E, MADV_DONTNEED } from './constants.js';

// dlopen(NULL): the running node binary and the libraries it links, libc among them (glibc or musl alike),
// plus llhttp, which node exports. No library name to guess.
const libc = koffi.load(null);

const c = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, void *val, uint32_t len)'),
  getsockopt: libc.func('int getsockopt(int fd, int level, int name, void *val, void *len)'),
  bind: libc.func('int bind(int fd, void *addr, uint32_t len)'),
  listen: libc.func('int listen(int fd, int backlog)'),
  accept4: libc.func('int accept4(int fd, void *addr, void *len, int flags)'),
  connect: libc.func('int connect(int fd, void *addr, uint32_t len)'),
  getsockname: libc.func('int getsockname(int fd, void *addr, void *len)'),
  getpeername: libc.func('int getpeername(int fd, void *addr, void *len)'),
  epoll_create1: libc.func('int epoll_create1(int flags)'),
  epoll_ctl: libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
  epoll_wait: libc.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)'),
  read: libc.func('intptr_t read(int fd, void *buf, uintptr_t count)'),
  write: libc.func('intptr_t write(int fd, void *buf, uintptr_t count)'),
  send: libc.func('intptr_t send(int fd, void *buf, uintptr_t len, int flags)'),
  recv: libc.func('intptr_t recv(int fd, void *buf, uintptr_t len, int flags)'),
  // The same two with the buffer given as its C address, a number: for memory that never moves (pool
  // buffers), koffi then converts a number instead of looking up a typed array's backing store.
  recvAt: libc.func('intptr_t recv(int fd, uintptr_t buf, uintptr_t len, int flags)'),
  sendAt: libc.func('intptr_t send(int fd, uintptr_t buf, uintptr_t len, int flags)'),
  splice: libc.func('intptr_t splice(int fdIn, void *offIn, int fdOut, void *offOut, uintptr_t len, uint32_t flags)'),
  pipe2: libc.func('int pipe2(void *fds, int flags)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, ...)'),
  shutdown: libc.func('int shutdown(int fd, int how)'),
  close: libc.func('int close(int fd)'),
  eventfd: libc.func('int eventfd(uint32_t initval, int flags)'),
  getrlimit: libc.func('int getrlimit(int resource, void *rlim)'),
  setrlimit: libc.func('int setrlimit(int resource, void *rlim)'),
  getpid: libc.func('int getpid()'),
  madvise: libc.func('int madvise(void *addr, uintptr_t len, int advice)'),
  mmap: libc.func('void *mmap(void *addr, uintptr_t len, int prot, int flags, int fd, intptr_t off)'),
  munmap: libc.func('int munmap(uintptr_t addr, uintptr_t len)'),
  sysconf: libc.func('long sysconf(int name)'),
};

/** The raw calls, for set-up code in this folder. Nothing outside src/sys/ may use them. */
export const raw = c;

export function errno(): number {
  return koffi.errno();
}

// errno number -> name, from koffi's table of the platform's values.
const names: string[] = [];
for (const [name, value] of Object.entries(koffi.os.errno)) {
  if (names[value] === undefined) names[value] = name;
}
// Linux aliases EWOULDBLOCK to EAGAIN and EDEADLOCK to EDEADLK; prefer the common spelling.
names[E.EAGAIN] = 'EAGAIN';

/** `errnoName(104) === 'ECONNRESET'`. Accepts the positive errno or a hot-path negative result. */
export function errnoName(err: number): string {
  const n = Math.abs(err);
  return names[n] ?? `E${n}`;
}

// ---- hot path: results or -errno ------------------------------------------------------------------

// Each wrapper reads errno only when libc returned exactly -1, as POSIX specifies.

export function read(fd: number, buf: Uint8Array, len: number): number {
  for (;;) {
    const r = c.read(fd, buf, len) as number;
    if (r !== -1) return r;
    const e = koffi.errno();
    if (e !== E.EINTR) return -e;
  }
}

/**
 * recv(2) with no flags, for sockets: what read(2) does, by a shorter path through the kernel (no VFS
 * read layer; HAProxy and nginx read sockets this way too).
 */
export function recv(fd: number, buf: Uint8Array, len: number): number {
  for (;;) {
    const r = c.recv(fd, buf, len, 0) as number;
    if (r !== -1) return r;
    const e = koffi.errno();
    if (e !== E.EINTR) return -e;
  }
}

/**
 * recv() into the memory at C address `addr`, which must stay valid and in place (a pool buffer: see
 * BufferPool.address()). The caller guarantees `len` bytes of room there.
 */
export function recvAt(fd: number, addr: number, len: number): number {
  for (;;) {
    const r = c.recvAt(fd, addr, len, 0) as number;
    if (r !== -1) return r;
    const e = koffi.errno();
    if (e !== E.EINTR) return -e;
  }
}

/** send() from the memory at C address `addr` (as recvAt()). */
export function sendAt(fd: number, addr: number, len: number, flags: number): number {
  for (;;) {
    const r = c.sendAt(fd, addr, len, flags) as number;
    if (r !== -1) return r;
    const e = koffi.errno();
    if (e !== E.EINTR) return -e;
  }
}

/** send(2) with MSG_NOSIGNAL: a peer that reset gives -EPIPE, never a signal. */
export function send(fd: number, buf: Uint8Array, len: number, flags: number): number {
  for (;;) {
    const r = c.send(fd, buf, len, flags) as number;
    if (r !== -1) return r;
    const e = koffi.errno();
    if (e !== E.EINTR) return -e;
  }
}

export function write(fd: number, buf: Uint8Array, len: number): number {
  for (;;) {
    const r = c.write(fd, buf, len) as number;
    if (r !== -1) return r;
    const e = koffi.errno();
    if (e !== E.EINTR) return -e;
  }
}

/** splice(2) between a socket and a pipe, no offsets. */
export function splice(fdIn: number, fdOut: number, len: number, flags: number): number {
  for (;;) {
    const r = c.splice(fdIn, null, fdOut, null, len, flags) as number;
    if (r !== -1) return r;
    const e = koffi.errno();
    if (e !== E.EINTR) return -e;
  }
}

/** accept4(2) without the peer address (getpeername() gives it when a log line needs it). */
export function accept4(fd: number, flags: number): number {
  for (;;) {
    const r = c.accept4(fd, null, null, flags) as number;
    if (r !== -1) return r;
    const e = koffi.errno();
    if (e !== E.EINTR) return -e;
  }
}

/** socket(2); -errno on failure (EMFILE is an expected condition under load, not a set-up error). */
export function socket(domain: number, type: number, protocol: number): number {
  const r = c.socket(domain, type, protocol) as number;
  return r === -1 ? -koffi.errno() : r;
}

/**
 * connect(2) on a non-blocking socket: 0 when connected at once, -EINPROGRESS while in progress, other
 * -errno on failure. EINTR leaves the connect going on in the background, as EINPROGRESS does (POSIX).
 */
export function connect(fd: number, addr: Uint8Array, len: number): number {
  const r = c.connect(fd, addr, len) as number;
  if (r !== -1) return r;
  const e = koffi.errno();
  return e === E.EINTR ? -E.EINPROGRESS : -e;
}

const intBox = new Int32Array(1);
const lenBox = new Uint32Array(1);

/** getsockopt(SOL_SOCKET, SO_ERROR): the pending error of a socket (0 = none), or -errno. */
export function sockError(fd: number): number {
  intBox[0] = 0;
  lenBox[0] = 4;
  const r = c.getsockopt(fd, 1 /* SOL_SOCKET */, 4 /* SO_ERROR */, intBox, lenBox) as number;
  return r === -1 ? -koffi.errno() : intBox[0];
}

/** setsockopt with an int value: 0 or -errno. */
export function setIntOpt(fd: number, level: number, name: number, value: number): number {
  intBox[0] = value;
  const r = c.setsockopt(fd, level, name, intBox, 4) as number;
  return r === -1 ? -koffi.errno() : 0;
}

const lingerZero = new Int32Array([1, 0]); // struct linger { int l_onoff; int l_linger; }: 8 bytes

/**
 * SO_LINGER {on, 0 s}: the next close() sends RST instead of FIN. Used to pass an abort (a reset on one
 * side) on to the other side, so it does not mistake a cut-off stream for a complete one. 0 or -errno.
 */
export function setLingerZero(fd: number): number {
  const r = c.setsockopt(fd, 1 /* SOL_SOCKET */, 13 /* SO_LINGER */, lingerZero, 8) as number;
  return r === -1 ? -koffi.errno() : 0;
}

export function shutdown(fd: number, how: number): number {
  const r = c.shutdown(fd, how) as number;
  return r === -1 ? -koffi.errno() : 0;
}

/** close(2). On Linux the fd is released even when close reports EINTR, so it is never retried. */
export function close(fd: number): number {
  const r = c.close(fd) as number;
  return r === -1 ? -koffi.errno() : 0;
}

export function epollCtl(epfd: number, op: number, fd: number, event: Uint8Array | null): number {
  const r = c.epoll_ctl(epfd, op, fd, event) as number;
  return r === -1 ? -koffi.errno() : 0;
}

/** epoll_wait(2); EINTR (a signal to this process) is reported as 0 events, so the caller just loops. */
export function epollWait(epfd: number, events: Uint8Array, max: number, timeoutMs: number): number {
  const r = c.epoll_wait(epfd, events, max, timeoutMs) as number;
  if (r !== -1) return r;
  const e = koffi.errno();
  return e === E.EINTR ? 0 : -e;
}

// epoll_pwait2(2) (Linux 5.11, glibc 2.35) takes its timeout as a timespec: what the fault clock's
// sub-millisecond wake-ups need (src/toxic/clock.ts). Where it is missing, a whole-millisecond epoll_wait,
// rounded up, stands in.
let pwait2: ReturnType<typeof libc.func> | null = null;
try {
  pwait2 = libc.func('int epoll_pwait2(int epfd, void *events, int maxevents, void *timeout, void *sigmask)');
} catch {
  pwait2 = null;
}
// struct timespec as two int64, little-endian, written as four int32 (no BigInt made per call).
const timespec = new Int32Array(4);

/** epoll_wait(2) with a timeout of `ms` milliseconds and a fraction (>= 0); as epollWait() otherwise. */
export function epollWaitFine(epfd: number, events: Uint8Array, max: number, ms: number): number {
  if (pwait2 === null) return epollWait(epfd, events, max, Math.ceil(ms));
  const sec = Math.floor(ms / 1000);
  timespec[0] = sec;
  timespec[2] = Math.min(999_999_999, Math.round((ms - sec * 1000) * 1e6));
  const r = pwait2(epfd, events, max, timespec, null) as number;
  if (r !== -1) return r;
  const e = koffi.errno();
  return e === E.EINTR ? 0 : -e;
}

/** pipe2(2) into fds[0] (read end) and fds[1] (write end): 0 or -errno. */
export function pipe2(fds: Int32Array, flags: number): number {
  const r = c.pipe2(fds, flags) as number;
  return r === -1 ? -koffi.errno() : 0;
}

/** fcntl(2) with an int argument: the result, or -errno. */
export function fcntlInt(fd: number, cmd: number, arg: number): number {
  const r = c.fcntl(fd, cmd, 'int', arg) as number;
  return r === -1 ? -koffi.errno() : r;
}

/**
 * Gives the pages of `buf` (page-aligned, a whole number of pages) back to the kernel: MADV_DONTNEED on
 * private anonymous memory drops them, and the next touch maps fresh zero pages. 0 or -errno.
 */
export function releasePages(buf: Uint8Array): number {
  const r = c.madvise(buf, buf.length, MADV_DONTNEED) as number;
  return r === -1 ? -errno() : 0;
}

// mmap(2) for lowMemory(): PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT (x86-64 only).
const PROT_RW = 0x3;
const MAP_PRIVATE_ANON = 0x02 | 0x20;
const MAP_32BIT = 0x40;
/** Addresses below this are small integers (Smis) for V8 on 64-bit without pointer compression. */
const SMI_LIMIT = 2 ** 31;
// What this thread mapped with lowMemory(), for releaseLowMemory().
const lowMaps: { address: number; len: number }[] = [];

/**
 * `len` bytes of zeroed memory below 2 GiB, as a Buffer and its C address, or null where that cannot be had
 * (not x86-64, or that range used up). Its point is the address: the hot calls take C addresses as
 * numbers (recvAt, sendAt, llhttp's executeAt), and V8 passes a number under 2^31 as a small integer but
 * one above (any heap address) as a new heap object per call, 16 bytes of garbage each. Memory mapped here
 * is never moved or freed by V8; releaseLowMemory() unmaps it when the thread is done with it.
 */
export function lowMemory(len: number): { bytes: Buffer; address: number } | null {
  if (process.arch !== 'x64') return null;
  const p = c.mmap(null, len, PROT_RW, MAP_PRIVATE_ANON | MAP_32BIT, -1, 0);
  const address = Number(koffi.address(p));
  if (address + len > SMI_LIMIT) {
    // MAP_FAILED is (void *)-1, beyond what a double holds exactly; a real mapping that came back too high
    // (MAP_32BIT not honoured) is given back.
    if (address < 2 ** 53) c.munmap(address, len);
    return null;
  }
  lowMaps.push({ address, len });
  return { bytes: Buffer.from(koffi.view(p, len)), address };
}

/**
 * Unmaps everything lowMemory() gave this thread. Only once nothing will touch those Buffers again (the
 * worker's loop has returned): a read after it is a segmentation fault, not an exception.
 */
export function releaseLowMemory(): void {
  for (const m of lowMaps) c.munmap(m.address, m.len);
  lowMaps.length = 0;
}

const SC_PAGESIZE = 30;

/** The kernel's page size (4 KiB on x86-64; 4, 16 or 64 KiB on arm64). */
export function pageSize(): number {
  return Number(c.sysconf(SC_PAGESIZE));
}

/** The address of a buffer's first byte (for alignment checks; never kept across a GC of `buf`). */
export function bufferAddress(buf: Uint8Array): bigint {
  return koffi.address(buf);
}

export function getpid(): number {
  return c.getpid() as number;
}
