// The HTTP/1.1 parser: llhttp (from the node binary, through src/sys/llhttp.ts) driven with two callbacks
// per message and everything else read from the llhttp_t memory.
//
//   execute(bytes) ──> llhttp parses ──> on_headers_complete: pause ──> HEADERS, `consumed` = end of head
//                                   │    (a request with no body does not pause: HEADERS|MESSAGE together)
//                                   └──> on_message_complete: pause ──> MESSAGE, `consumed` = end of body
//                                   └──> all bytes taken, no boundary ──> NEED_MORE
//                                   └──> upgrade/CONNECT done ──> UPGRADE;  any other error ──> ERROR
//
// A pause is resumed at once, so the next execute() (with the bytes from `consumed` on) carries on.
// Strict mode only: no lenient flag is ever set, so llhttp refuses what RFC 9112 does not allow (bare LF or
// CR, obs-fold, Content-Length with Transfer-Encoding, a Transfer-Encoding not ending in chunked, bad chunk
// sizes, invalid tokens...), which is what keeps request smuggling out.
//
// Thread model: one settings struct and one pair of callbacks per thread (module state); a parser belongs
// to the thread that made it. execute() calls are never nested, so the callbacks report through a module
// variable rather than a closure per parser (undici does the same).

import { addressOf, llhttp, registerCallback } from '../sys/llhttp.js';
import { CODES, ProxyError } from '../sys/errors.js';
import { HF, HPE, LAYOUTS, type Layout, METHOD, PARSER_TYPE, SETTINGS } from './parser-t.js';

/** What execute() found; HEADERS and MESSAGE can come together (a head with no body to skip). */
export const PEV = { NEED_MORE: 0, HEADERS: 1, MESSAGE: 2, UPGRADE: 4, ERROR: 8 } as const;

// Set by the callbacks during one llhttp_execute(), read right after it.
let fired = 0;
let skipBody = false;
// False for executeThrough(): the head's end is known to the caller, so there is no pause at it. Set by
// every execute(), like the two above.
let pauseAtHead = true;
// The llhttp_t being executed and the layout to read it with, for the headers callback.
let current: Buffer | null = null;
let currentLayout: Layout | null = null;

let settings: Buffer | null = null;
let layout: Layout | null = null;

function settingsStruct(): Buffer {
  if (settings) return settings;
  const ll = llhttp();
  // Off-heap (allocUnsafeSlow): llhttp keeps a pointer to it in every parser, so it must never move.
  const s = Buffer.allocUnsafeSlow(SETTINGS.size).fill(0);
  ll.settingsInit(s);
  const onHeaders = registerCallback(() => {
    fired |= PEV.HEADERS;
    // 1 = "this message has no body" (a response to HEAD, or a 2xx to CONNECT).
    if (skipBody) return 1;
    if (!pauseAtHead) return 0;
    // A request with neither Content-Length nor chunked has no body (RFC 9112 6.3): carry on, so that the
    // message completes in this same execute() (one call per bodiless request instead of two).
    const m = current!;
    const L = currentLayout!;
    if (m[L.type] === PARSER_TYPE.REQUEST) {
      const f = m.readUInt16LE(L.flags);
      if (!(f & (HF.CHUNKED | HF.CONTENT_LENGTH))) return 0;
    }
    // Otherwise pause, so that execute() returns at the head's end, before the body.
    return HPE.PAUSED;
  });
  const onMessage = registerCallback(() => {
    fired |= PEV.MESSAGE;
    return HPE.PAUSED;
  });
  s.writeBigUInt64LE(onHeaders, SETTINGS.onHeadersComplete);
  s.writeBigUInt64LE(onMessage, SETTINGS.onMessageComplete);
  settings = s;
  return s;
}

export class HttpParser {
  readonly type: number;
  /** The llhttp_t itself: off-heap, it must not move while llhttp holds pointers into it. */
  private readonly mem: Buffer;
  private readonly L: Layout;
  /** Bytes of the last execute() input that were parsed (up to the boundary or error it stopped at). */
  consumed = 0;
  /** llhttp_errno_t of the last ERROR. */
  errno = 0;
  /** Set before executing a response whose request was HEAD (or a CONNECT answered 2xx): no body follows. */
  noBody = false;

  constructor(type: number) {
    this.type = type;
    this.L = parserLayout();
    this.mem = Buffer.allocUnsafeSlow(128).fill(0);
    llhttp().init(this.mem, type, settingsStruct());
  }

  /**
   * As execute(), but without the pause at the end of the head: one call parses a head and as much of the
   * body as `data` holds, up to the message's end. For a caller that found the head's end itself (strict
   * llhttp makes the first CRLFCRLF the end of a head): it saves an execute, a resume and a position read.
   */
  executeThrough(data: Uint8Array, addr = -1): number {
    return this.execute(data, addr, false);
  }

  /**
   * Parses `data` (the bytes not yet parsed) and says what it found; see PEV and `consumed`. `addr` is the
   * C address of data[0] when the caller knows it (pool buffers never move: BufferPool.address()); else it
   * is asked of koffi.
   */
  execute(data: Uint8Array, addr = -1, pauseHead = true): number {
    const ll = llhttp();
    fired = 0;
    skipBody = this.noBody;
    pauseAtHead = pauseHead;
    current = this.mem;
    currentLayout = this.L;
    const r = ll.execute(this.mem, data, data.length) as number;
    if (r === HPE.OK) {
      this.consumed = data.length;
      return fired; // e.g. a head with no body to skip ends exactly at the end of data
    }
    // error_pos, read from llhttp_t (what llhttp_get_error_pos returns). Addresses on 64-bit Linux fit in
    // 47 bits, so the arithmetic is exact in a double.
    const m = this.mem;
    const pos = m.readUInt32LE(this.L.errorPos) + m.readUInt32LE(this.L.errorPos + 4) * 2 ** 32;
    this.consumed = pos - (addr >= 0 ? addr : Number(addressOf(data)));
    if (r === HPE.PAUSED) {
      m.writeInt32LE(0, this.L.error); // llhttp_resume: a paused parser's error back to HPE_OK
      return fired;
    }
    if (r === HPE.PAUSED_UPGRADE) return fired | PEV.UPGRADE;
    this.errno = r;
    return PEV.ERROR;
  }

  /** After UPGRADE when the upgrade did not happen (no 101): parse what follows as HTTP again. */
  resumeAfterUpgrade(): void {
    llhttp().resumeAfterUpgrade(this.mem);
  }

  /** The peer closed: completes a message delimited by EOF (a response without length). */
  finish(): number {
    fired = 0;
    const r = llhttp().finish(this.mem) as number;
    if (r === HPE.OK || r === HPE.PAUSED) return fired;
    this.errno = r;
    return PEV.ERROR;
  }

  /** Back to the start state, keeping the type, the settings and `noBody` (which the caller sets per message). */
  reset(): void {
    llhttp().reset(this.mem);
    this.errno = 0;
  }

  get method(): number {
    return this.mem[this.L.method];
  }
  get httpMajor(): number {
    return this.mem[this.L.httpMajor];
  }
  get httpMinor(): number {
    return this.mem[this.L.httpMinor];
  }
  get statusCode(): number {
    return this.mem.readUInt16LE(this.L.statusCode);
  }
  /** llhttp_flags (HF.*) of the current message. */
  get flags(): number {
    return this.mem.readUInt16LE(this.L.flags);
  }
  get upgrade(): boolean {
    return this.mem[this.L.upgrade] !== 0;
  }
  /** The Content-Length of the message (or, inside a chunk, what is left of it). */
  get contentLength(): number {
    return this.mem.readUInt32LE(this.L.contentLength) + this.mem.readUInt32LE(this.L.contentLength + 4) * 2 ** 32;
  }
  get chunked(): boolean {
    return (this.flags & HF.CHUNKED) !== 0;
  }
  /**
   * May the connection carry another message after this one (RFC 9112 9.3)? HTTP/1.1 unless the message
   * said `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`; never when the body runs to the
   * close. Read from llhttp_t memory rather than asked of llhttp (a native call per message saved);
   * test/http/parser.test.ts checks it against llhttp_should_keep_alive over a matrix of messages.
   */
  shouldKeepAlive(): boolean {
    const f = this.flags;
    const http11 = this.httpMajor > 0 && this.httpMinor > 0;
    if (http11 ? f & HF.CONNECTION_CLOSE : !(f & HF.CONNECTION_KEEP_ALIVE)) return false;
    return !this.messageNeedsEof();
  }
  /**
   * True when the message's body runs until the connection closes (RFC 9112 6.3): a response that may
   * have a body (not 1xx, 204, 304 or an answer to HEAD) and has neither Content-Length nor a final
   * chunked coding. Requests never do. Checked against llhttp_message_needs_eof like shouldKeepAlive().
   */
  messageNeedsEof(): boolean {
    if (this.mem[this.L.type] === PARSER_TYPE.REQUEST) return false;
    const status = this.statusCode;
    const f = this.flags;
    if ((status >= 100 && status < 200) || status === 204 || status === 304 || f & HF.SKIPBODY) return false;
    if (f & HF.TRANSFER_ENCODING && !(f & HF.CHUNKED)) return true;
    return !(f & (HF.CHUNKED | HF.CONTENT_LENGTH));
  }
  /** llhttp's own answers, for the tests that keep the two above honest. */
  llhttpShouldKeepAlive(): boolean {
    return (llhttp().shouldKeepAlive(this.mem) as number) !== 0;
  }
  llhttpMessageNeedsEof(): boolean {
    return (llhttp().messageNeedsEof(this.mem) as number) !== 0;
  }
  /** `HPE_INVALID_HEADER_TOKEN`-style name of the last error. */
  errorName(): string {
    return llhttp().errnoName(this.errno) as string;
  }
  /** llhttp's words for the last error, e.g. "Invalid header value char". */
  errorReason(): string {
    return (llhttp().getErrorReason(this.mem) as string | null) ?? '';
  }
  get isHead(): boolean {
    return this.method === METHOD.HEAD;
  }
}

/**
 * The llhttp_t layout of this node's llhttp, found once by the self-test. Throws ProxyError
 * (FFIP_ERR_UNSUPPORTED_PLATFORM) with one line when the version or the layout is not one we know: reading
 * a struct at the wrong offsets would make every parse a guess.
 */
export function parserLayout(): Layout {
  if (layout) return layout;
  const version = process.versions.llhttp ?? 'unknown';
  if (!/^9\./.test(version)) {
    throw new ProxyError(CODES.UNSUPPORTED_PLATFORM, `llhttp ${version}: ffi-proxy knows the llhttp_t layout of llhttp 9.x only`);
  }
  for (const candidate of LAYOUTS) {
    if (selfTest(candidate)) {
      layout = candidate;
      return candidate;
    }
  }
  throw new ProxyError(
    CODES.UNSUPPORTED_PLATFORM,
    `llhttp ${version}: its llhttp_t layout is not one ffi-proxy knows (self-test failed); HTTP mode is unavailable`,
  );
}

/**
 * Parses known messages with a parser read through `L` and checks every field we read against llhttp's
 * own getters (or, where llhttp has none, against what the message says).
 */
function selfTest(L: Layout): boolean {
  const ll = llhttp();
  const mem = Buffer.allocUnsafeSlow(128).fill(0);
  const s = settingsStruct();
  const run = (type: number, text: string, expect: number = PEV.HEADERS): boolean => {
    ll.init(mem, type, s);
    const data = Buffer.from(text);
    fired = 0;
    skipBody = false;
    pauseAtHead = true;
    current = mem;
    currentLayout = L;
    const r = ll.execute(mem, data, data.length) as number;
    const at = (ll.getErrorPos(mem) as number) - Number(addressOf(data));
    const ok = (r === HPE.PAUSED || r === HPE.PAUSED_UPGRADE) && fired === expect && at === data.length;
    // error and error_pos where the layout says, and clearing error is what llhttp_resume does.
    if (!ok || mem.readInt32LE(L.error) !== r || mem.readBigUInt64LE(L.errorPos) !== BigInt(ll.getErrorPos(mem) as number)) return false;
    if (r === HPE.PAUSED) {
      mem.writeInt32LE(0, L.error);
      if ((ll.getErrno(mem) as number) !== 0) return false;
    }
    return mem.readBigUInt64LE(L.settings) === addressOf(s);
  };
  const head1 = 'PUT /t HTTP/1.0\r\nHost: h\r\nContent-Length: 7\r\nConnection: keep-alive\r\n\r\n';
  if (!run(PARSER_TYPE.REQUEST, head1)) return false;
  if (mem[L.method] !== ll.getMethod(mem) || mem[L.method] !== 4 /* PUT */) return false;
  if (mem[L.httpMajor] !== ll.getHttpMajor(mem) || mem[L.httpMinor] !== ll.getHttpMinor(mem) || mem[L.httpMinor] !== 0) return false;
  if (mem.readBigUInt64LE(L.contentLength) !== 7n) return false;
  if (mem.readUInt16LE(L.flags) !== (HF.CONTENT_LENGTH | HF.CONNECTION_KEEP_ALIVE)) return false;
  if (mem[L.upgrade] !== ll.getUpgrade(mem) || mem[L.upgrade] !== 0) return false;

  if (!run(PARSER_TYPE.RESPONSE, "HTTP/1.1 418 I'm a teapot\r\nTransfer-Encoding: chunked\r\n\r\n")) return false;
  if (mem.readUInt16LE(L.statusCode) !== ll.getStatusCode(mem) || mem.readUInt16LE(L.statusCode) !== 418) return false;
  if (mem.readUInt16LE(L.flags) !== (HF.CHUNKED | HF.TRANSFER_ENCODING)) return false;

  // No body: the headers callback lets it run on to the end of the message.
  const upgrade = 'GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n';
  if (!run(PARSER_TYPE.REQUEST, upgrade, PEV.HEADERS | PEV.MESSAGE)) return false;
  return mem[L.upgrade] === 1 && ll.getUpgrade(mem) === 1 && (mem.readUInt16LE(L.flags) & (HF.UPGRADE | HF.CONNECTION_UPGRADE)) !== 0;
}

/**
 * The proxy speaks HTTP/1.0 and 1.1 only. llhttp also parses HTTP/0.9 request lines (`GET /`) and 2.0
 * versions (the h2 preface); the proxy refuses those with 400 rather than guess at their framing.
 */
export function versionOk(p: HttpParser): boolean {
  return p.httpMajor === 1 && (p.httpMinor === 0 || p.httpMinor === 1);
}
