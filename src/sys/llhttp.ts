// llhttp's C API, as exported by the running node binary (node links llhttp statically and exports its
// symbols: `nm -D $(which node) | grep llhttp_`). No npm package, no native build.
//
// Only the raw calls live here, because this folder is the only one that imports koffi. The driver, which
// knows the llhttp_t layout and what to do with a parse, is src/http/parser.ts.
//
// Pointer arguments are `void *`: the parser and settings structs are off-heap Buffers (they never move,
// which llhttp needs, since it keeps pointers to them between calls) and data is any Buffer view.

import koffi from 'koffi';
import { CODES, ProxyError } from './errors.js';

function bind() {
  const lib = koffi.load(null);
  return {
    init: lib.func('void llhttp_init(void *parser, int type, void *settings)'),
    settingsInit: lib.func('void llhttp_settings_init(void *settings)'),
    execute: lib.func('int llhttp_execute(void *parser, void *data, uintptr_t len)'),
    // The same with both pointers as C addresses (numbers), for memory that never moves: the parser's
    // off-heap llhttp_t and a pool buffer. koffi converts numbers faster than it finds a Buffer's memory.
    executeAt: lib.func('int llhttp_execute(uintptr_t parser, uintptr_t data, uintptr_t len)'),
    finish: lib.func('int llhttp_finish(void *parser)'),
    reset: lib.func('void llhttp_reset(void *parser)'),
    getErrno: lib.func('int llhttp_get_errno(void *parser)'),
    getErrorReason: lib.func('const char *llhttp_get_error_reason(void *parser)'),
    getErrorPos: lib.func('uintptr_t llhttp_get_error_pos(void *parser)'),
    errnoName: lib.func('const char *llhttp_errno_name(int err)'),
    getType: lib.func('uint8_t llhttp_get_type(void *parser)'),
    getMethod: lib.func('uint8_t llhttp_get_method(void *parser)'),
    getHttpMajor: lib.func('uint8_t llhttp_get_http_major(void *parser)'),
    getHttpMinor: lib.func('uint8_t llhttp_get_http_minor(void *parser)'),
    getStatusCode: lib.func('int llhttp_get_status_code(void *parser)'),
    getUpgrade: lib.func('uint8_t llhttp_get_upgrade(void *parser)'),
    shouldKeepAlive: lib.func('int llhttp_should_keep_alive(void *parser)'),
    messageNeedsEof: lib.func('int llhttp_message_needs_eof(void *parser)'),
    // For the address of a C function to put in a settings struct (RTLD_DEFAULT is the null handle).
    dlsym: lib.func('uintptr_t dlsym(void *handle, const char *name)'),
    getpagesize: lib.func('int getpagesize()'),
  };
}

let bound: ReturnType<typeof bind> | null = null;

/**
 * The llhttp functions, bound on first use. Throws ProxyError(FFIP_ERR_UNSUPPORTED_PLATFORM) when this node
 * binary does not export them (a node built with a shared llhttp, or another runtime).
 */
export function llhttp(): ReturnType<typeof bind> {
  if (bound) return bound;
  try {
    bound = bind();
  } catch (e) {
    throw new ProxyError(
      CODES.UNSUPPORTED_PLATFORM,
      `this node binary does not export llhttp's C API (${(e as Error).message}); HTTP mode needs the official node builds`,
    );
  }
  return bound;
}

const cbProto = koffi.proto('int ffip_llhttp_cb(void *parser)');

/**
 * A C function usable as llhttp's on_message_complete that stops every parse at the end of a message, and
 * what it returns. It is libc's getpagesize(): it ignores its argument and returns the page size, a
 * non-zero value other than HPE_PAUSED, which llhttp takes as "callback error": llhttp_execute() returns
 * HPE_CB_MESSAGE_COMPLETE with error_pos just past the message, and llhttp_finish() returns the value
 * itself. No call into JavaScript per message. Where the symbol cannot be found, a registered JavaScript
 * function that returns 1 does the same, more slowly.
 */
export function messageStop(): { address: bigint; returns: number } {
  const ll = llhttp();
  const native = Number(ll.dlsym(null, 'getpagesize'));
  if (native !== 0) return { address: BigInt(native), returns: ll.getpagesize() as number };
  return { address: registerCallback(() => 1), returns: 1 };
}

/**
 * Registers `fn` as an `llhttp_cb` (int (*)(llhttp_t *)) and returns its C address, to be written into a
 * settings struct. Registered once per thread at start; never unregistered (the settings outlive every
 * parser that uses them).
 */
export function registerCallback(fn: () => number): bigint {
  return koffi.address(koffi.register(fn, koffi.pointer(cbProto)));
}

/** The C address of a Buffer's first byte: for comparing with pointers llhttp returns or stores. */
export function addressOf(buf: Uint8Array): bigint {
  return koffi.address(buf);
}
