// Typed errors for set-up code. Every error a user can meet has a stable `code` (FFIP_ERR_*), so tests and
// callers match on it rather than on message text.

import { errnoName } from './libc.js';

export const CODES = {
  /** A system call failed during set-up; `errno` names the cause. */
  SYSCALL: 'FFIP_ERR_SYSCALL',
  /** An address (listen or backend) could not be parsed or resolved. */
  BAD_ADDRESS: 'FFIP_ERR_BAD_ADDRESS',
  /** An option has a value outside what it accepts. */
  BAD_OPTION: 'FFIP_ERR_BAD_OPTION',
  /** A config file (or document) is not one the proxy can run: each problem names where it is. */
  BAD_CONFIG: 'FFIP_ERR_BAD_CONFIG',
  /** The platform is not one the C layouts in src/sys/ are written for. */
  UNSUPPORTED_PLATFORM: 'FFIP_ERR_UNSUPPORTED_PLATFORM',
} as const;

export type ErrorCode = (typeof CODES)[keyof typeof CODES];

export class ProxyError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'ProxyError';
    this.code = code;
  }
}

/** `listen 127.0.0.1:8080: EADDRINUSE (address already in use)`. */
export class SysError extends ProxyError {
  readonly errno: number;
  readonly syscall: string;
  readonly errnoName: string;
  constructor(syscall: string, what: string, err: number) {
    const name = errnoName(err);
    super(CODES.SYSCALL, `${syscall}${what ? ' ' + what : ''}: ${name}${HINTS[name] ? ` (${HINTS[name]})` : ''}`);
    this.name = 'SysError';
    this.errno = Math.abs(err);
    this.syscall = syscall;
    this.errnoName = name;
  }
}

// Plain words for the errors a user is likely to cause, so the one line the CLI prints is enough.
const HINTS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this machine',
  EACCES: 'permission denied',
  ECONNREFUSED: 'connection refused',
  ENOENT: 'no such file',
  EMFILE: 'too many open files in this process',
  ENFILE: 'too many open files on this machine',
};

/** Throws SysError when a hot-path style result `r` is negative; returns it otherwise. */
export function check(r: number, syscall: string, what = ''): number {
  if (r < 0) throw new SysError(syscall, what, r);
  return r;
}
