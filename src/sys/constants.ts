// Linux ABI constants for the calls in libc.ts. Values are from the kernel's uapi headers and are the
// same on x86-64 and arm64 (the two architectures package.json admits); where they differ it says so.

export const AF = { UNIX: 1, INET: 2, INET6: 10 } as const;

export const SOCK = {
  STREAM: 1,
  NONBLOCK: 0o4000, // == O_NONBLOCK
  CLOEXEC: 0o2000000, // == O_CLOEXEC
} as const;

export const SOL = { SOCKET: 1, TCP: 6, IPV6: 41 } as const;

export const SO = {
  REUSEADDR: 2,
  ERROR: 4,
  SNDBUF: 7,
  RCVBUF: 8,
  LINGER: 13,
  REUSEPORT: 15,
} as const;

export const TCP_NODELAY = 1;
export const IPV6_V6ONLY = 26;

export const SHUT = { RD: 0, WR: 1, RDWR: 2 } as const;

// send(2) flags. MSG_NOSIGNAL: a write to a reset peer returns EPIPE instead of raising SIGPIPE.
export const MSG = { DONTWAIT: 0x40, NOSIGNAL: 0x4000 } as const;

export const EPOLL = {
  CLOEXEC: 0o2000000,
  CTL_ADD: 1,
  CTL_DEL: 2,
  CTL_MOD: 3,
  IN: 0x001,
  PRI: 0x002,
  OUT: 0x004,
  ERR: 0x008,
  HUP: 0x010,
  RDHUP: 0x2000,
  ET: 0x80000000, // 1u << 31; a uint32 in C, so it is written with >>> 0 wherever it is combined.
} as const;

export const SPLICE_F = { MOVE: 1, NONBLOCK: 2, MORE: 4 } as const;

export const O = { NONBLOCK: 0o4000, CLOEXEC: 0o2000000 } as const;

export const F = { GETFL: 3, SETFL: 4, SETPIPE_SZ: 1031, GETPIPE_SZ: 1032 } as const;

export const EFD = { NONBLOCK: 0o4000, CLOEXEC: 0o2000000 } as const;

export const RLIMIT_NOFILE = 7;

export const MADV_DONTNEED = 4;

// The errno values the loop branches on. Names for every other value come from koffi.os.errno.
export const E = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  EPIPE: 32,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETUNREACH: 101,
  ECONNABORTED: 103,
  ECONNRESET: 104,
  ENOBUFS: 105,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
  EALREADY: 114,
  EINPROGRESS: 115,
  EPROTO: 71, // ours for a TLS error (sys/ssl.ts): the protocol failed, OpenSSL says why
} as const;
