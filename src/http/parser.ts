// The HTTP/1.1 parser: llhttp (from the node binary, through src/sys/llhttp.ts) driven without a single
// call back into JavaScript, everything else read from the llhttp_t memory.
//
//   in the head:  find the head's end (the first CRLFCRLF, see findHeadEnd) ──> llhttp parses the bytes
//                 up to it ──> HEADERS, `consumed` = end of head (or on, up to the message's end, for
//                 executeThrough) ; not there yet ──> llhttp checks what has come ──> NEED_MORE
//   in the body:  llhttp parses ──> at the message's end on_message_complete stops it ──> MESSAGE,
//                 `consumed` = end of message ; all bytes taken ──> NEED_MORE ; anything wrong ──> ERROR
//
// on_message_complete is a C function that returns non-zero (messageStop() in src/sys/llhttp.ts), which
// llhttp reports as HPE_CB_MESSAGE_COMPLETE with error_pos at the message's end: the parser then needs a
// reset before the next message, which the next execute() does by itself (reset() is a 128-byte copy of a
// freshly initialised llhttp_t). on_headers_complete is not set: the head's end is found by the driver,
// which feeds llhttp only the head when it wants to stop there. Strict llhttp refuses a bare CR or LF
// anywhere in a head, so the first CRLFCRLF after the start line is exactly where llhttp's head ends.
//
// Strict mode only: no lenient flag is ever set, so llhttp refuses what RFC 9112 does not allow (bare LF or
// CR, obs-fold, Content-Length with Transfer-Encoding, a Transfer-Encoding not ending in chunked, bad chunk
// sizes, invalid tokens...), which is what keeps request smuggling out.
//
// Thread model: one settings struct per thread (module state); a parser belongs to the thread that made it.

import { lowMemory } from '../sys/index.js';
import { addressOf, llhttp, messageStop } from '../sys/llhttp.js';
import { CODES, ProxyError } from '../sys/errors.js';
import { HF, HPE, LAYOUTS, type Layout, PARSER_TYPE, SETTINGS } from './parser-t.js';

/** What execute() found; HEADERS and MESSAGE can come together (a head with no body to skip). */
export const PEV = { NEED_MORE: 0, HEADERS: 1, MESSAGE: 2, UPGRADE: 4, ERROR: 8 } as const;

const CR = 0x0d;
const LF = 0x0a;
// findHeadEnd's progress through CR LF CR LF; BEFORE_START: no byte of the message seen yet.
const BEFORE_START = -1;

let settings: Buffer | null = null;
/** What llhttp_finish() returns when on_message_complete stopped it (messageStop().returns). */
let stopReturns = 0;
let layout: Layout | null = null;
/** A freshly initialised llhttp_t of each type: reset() copies it (what llhttp_reset does, without a call). */
const fresh: Buffer[] = [];

function settingsStruct(): Buffer {
  if (settings) return settings;
  const ll = llhttp();
  // Off-heap (allocUnsafeSlow): llhttp keeps a pointer to it in every parser, so it must never move.
  const s = Buffer.allocUnsafeSlow(SETTINGS.size).fill(0);
  ll.settingsInit(s);
  const stop = messageStop();
  s.writeBigUInt64LE(stop.address, SETTINGS.onMessageComplete);
  stopReturns = stop.returns;
  settings = s;
  return s;
}

function freshParser(type: number): Buffer {
  let f = fresh[type];
  if (f === undefined) {
    f = Buffer.allocUnsafeSlow(128).fill(0);
    llhttp().init(f, type, settingsStruct());
    fresh[type] = f;
  }
  return f;
}

/**
 * The first CRLFCRLF in data[from..len): the index just past it, or -1. Looks at every fourth byte, since
 * any four consecutive bytes include one of those: only where that byte is a CR or an LF can the pattern
 * cover it, and the four places it could start are checked. A head's bytes are mostly neither.
 */
function findCrlfCrlf(data: Uint8Array, from: number, len: number): number {
  let i = from + 3;
  while (i < len) {
    const c = data[i];
    if (c !== CR && c !== LF) {
      i += 4;
      continue;
    }
    for (let s = i - 3; s <= i; s++) {
      if (s >= from && s + 3 < len && data[s] === CR && data[s + 1] === LF && data[s + 2] === CR && data[s + 3] === LF) {
        return s + 4;
      }
    }
    i++;
  }
  return -1;
}

/**
 * Runs the CR LF CR LF matcher from state k (bytes matched so far) over data[from..to). Returns the new
 * state (0..3), or -1 - (index just past the pattern) when it completes.
 */
function crlfStep(k0: number, data: Uint8Array, from: number, to: number): number {
  let k = k0;
  for (let i = from; i < to; i++) {
    const c = data[i];
    if (c === LF) {
      if (k === 3) return -1 - (i + 1);
      k = k === 1 ? 2 : 0;
    } else if (c === CR) {
      k = k === 2 ? 3 : 1;
    } else {
      k = 0;
    }
  }
  return k;
}

// Parsers' llhttp_t structs, carved 128 bytes at a time from memory below 2 GiB (lowMemory: the struct's
// address goes to llhttp_execute on every call, and a small address is passed without an allocation), or
// from the heap where there is none. Parsers are pooled and never freed, so neither is their memory.
const ARENA = 64 * 1024;
let arena: { bytes: Buffer; address: number } | null = null;
let arenaUsed = ARENA;
let noLowMemory = false;

function parserMemory(): { mem: Buffer; address: number } {
  if (arenaUsed === ARENA && !noLowMemory) {
    arena = lowMemory(ARENA);
    arenaUsed = 0;
    if (arena === null) noLowMemory = true;
  }
  if (arena !== null && arenaUsed < ARENA) {
    const at = arenaUsed;
    arenaUsed += 128;
    return { mem: arena.bytes.subarray(at, at + 128), address: arena.address + at };
  }
  const mem = Buffer.allocUnsafeSlow(128);
  return { mem, address: Number(addressOf(mem)) };
}

export class HttpParser {
  readonly type: number;
  /** The llhttp_t itself: off-heap, it must not move while llhttp holds pointers into it. */
  private readonly mem: Buffer;
  /** Its C address: it never moves. */
  private readonly memAddr: number;
  private readonly L: Layout;
  /**
   * 16- and 32-bit views of `mem`, and the indexes into them of the wider fields the hot path reads: Buffer's
   * readUInt16LE and readUInt32LE validate their offset on every call, these are plain element loads. Every
   * such field is aligned to its size (parser-t.ts), and `mem` starts on a 128-byte boundary of its memory.
   */
  private readonly m16: Uint16Array;
  private readonly m32: Uint32Array;
  private readonly iFlags: number;
  private readonly iStatus: number;
  private readonly iErrorPos: number;
  private readonly iContentLength: number;
  private readonly fresh: Buffer;
  /** `fresh` as 32-bit words, for reset(). */
  private readonly fresh32: Uint32Array;
  /** Bytes of the last execute() input that were parsed (up to the boundary or error it stopped at). */
  consumed = 0;
  /** After HEADERS: where the head ended in that execute()'s input (just past its CRLFCRLF). */
  headEnd = 0;
  /** llhttp_errno_t of the last ERROR. */
  errno = 0;
  /** Set before executing a response whose request was HEAD (or a CONNECT answered 2xx): no body follows. */
  noBody = false;
  /** The message's head has not ended yet (findHeadEnd's progress is in `crlf`). */
  private inHead = true;
  private crlf = BEFORE_START;
  /** The message ended (llhttp stopped there): the next execute() starts the next one. */
  private done = false;
  /** Why the driver itself refused a message (llhttp's reason otherwise). */
  private ownReason: string | null = null;

  constructor(type: number) {
    this.type = type;
    this.L = parserLayout();
    this.fresh = freshParser(type);
    const place = parserMemory();
    this.mem = place.mem;
    this.memAddr = place.address;
    this.mem.set(this.fresh);
    this.fresh32 = new Uint32Array(this.fresh.buffer, this.fresh.byteOffset, 32);
    this.m16 = new Uint16Array(this.mem.buffer, this.mem.byteOffset, 64);
    this.m32 = new Uint32Array(this.mem.buffer, this.mem.byteOffset, 32);
    this.iFlags = this.L.flags >> 1;
    this.iStatus = this.L.statusCode >> 1;
    this.iErrorPos = this.L.errorPos >> 2;
    this.iContentLength = this.L.contentLength >> 2;
  }

  /**
   * As execute(), but a head is parsed together with the body bytes after it in `data`, up to the
   * message's end, in one llhttp call (responses: head and a small body leave together).
   */
  executeThrough(data: Uint8Array, len = data.length, addr = -1): number {
    return this.execute(data, len, addr, true);
  }

  /**
   * Parses data[0..len) (bytes not yet parsed) and says what it found; see PEV and `consumed`. In a head,
   * it stops at the head's end (HEADERS), unless `through`; a message's end always stops it (MESSAGE). `addr`
   * is the C address of data[0] when the caller knows it (pool buffers never move: BufferPool.address());
   * else it is asked of koffi.
   */
  execute(data: Uint8Array, len = data.length, addr = -1, through = false): number {
    if (this.done) {
      // The next message starts with these bytes; with none, the last one's fields stay readable.
      if (len === 0) {
        this.consumed = 0;
        return PEV.NEED_MORE;
      }
      this.reset();
    }
    let ev: number = PEV.NEED_MORE;
    let end = len;
    let at = -1; // where the head ends, when it ends in these bytes
    if (this.inHead) {
      at = this.findHeadEnd(data, len);
      if (at >= 0) {
        ev = PEV.HEADERS;
        this.inHead = false;
        this.headEnd = at;
        if (!through || this.noBody) end = at;
      }
    }
    const m = this.mem;
    const ll = llhttp();
    const r = (addr >= 0 ? ll.executeAt(this.memAddr, addr, end) : ll.execute(m, data, end)) as number;
    if (r === HPE.OK) {
      this.consumed = end;
      if (ev !== PEV.NEED_MORE && this.noBody) {
        // A response to HEAD ends with its head, whatever its framing fields say (RFC 9110 9.3.2). The
        // flag is what llhttp sets when told so by on_headers_complete; messageNeedsEof() reads it.
        this.m16[this.iFlags] |= HF.SKIPBODY;
        this.done = true;
        return ev | PEV.MESSAGE;
      }
      return ev;
    }
    // error_pos, read from llhttp_t (what llhttp_get_error_pos returns). Addresses on 64-bit Linux fit in
    // 47 bits, so the arithmetic is exact in a double.
    const pos = this.m32[this.iErrorPos] + this.m32[this.iErrorPos + 1] * 2 ** 32;
    this.consumed = pos - (addr >= 0 ? addr : Number(addressOf(data)));
    if (r === HPE.CB_MESSAGE_COMPLETE && !this.inHead && this.consumed >= at) {
      this.done = true;
      return ev | PEV.MESSAGE | (m[this.L.upgrade] !== 0 ? PEV.UPGRADE : 0);
    }
    if (r === HPE.CB_MESSAGE_COMPLETE) {
      // llhttp and findHeadEnd disagree on where the head ends: refuse rather than guess.
      this.errno = HPE.INTERNAL;
      this.ownReason = 'message ended inside its head';
    } else {
      this.errno = r;
    }
    return PEV.ERROR;
  }

  /**
   * Where the head ends in data[0..len) (just past the CRLFCRLF), carrying on from earlier calls for this
   * message; -1 when not in these bytes. Empty lines before the start line are skipped, as llhttp does.
   */
  private findHeadEnd(data: Uint8Array, len: number): number {
    let from = 0;
    if (this.crlf === BEFORE_START) {
      while (from < len && (data[from] === CR || data[from] === LF)) from++;
      if (from === len) return -1;
    } else if (this.crlf > 0) {
      // The last call's bytes ended in part of a CRLFCRLF: these may finish it.
      const k = crlfStep(this.crlf, data, 0, Math.min(len, 3));
      if (k < 0) {
        this.crlf = BEFORE_START;
        return -1 - k;
      }
    }
    const at = findCrlfCrlf(data, from, len);
    if (at >= 0) {
      this.crlf = BEFORE_START;
      return at;
    }
    // How much of a CRLFCRLF the bytes end in: the last three bytes decide it (with fewer, what came before).
    const k = crlfStep(len - from >= 3 ? 0 : Math.max(this.crlf, 0), data, Math.max(from, len - 3), len);
    this.crlf = k < 0 ? 0 : k;
    return -1;
  }

  /** The peer closed: completes a message delimited by EOF (a response without length). */
  finish(): number {
    if (this.done) return PEV.NEED_MORE;
    const r = llhttp().finish(this.mem) as number;
    if (r === HPE.OK) return PEV.NEED_MORE;
    if (r === stopReturns) {
      this.done = true;
      return PEV.MESSAGE;
    }
    this.errno = r;
    return PEV.ERROR;
  }

  /**
   * Back to the start state, keeping the type, the settings and `noBody` (which the caller sets per
   * message): a copy of a freshly initialised llhttp_t, which is all llhttp_reset() does for a parser
   * with no lenient flags and no user data (the self-test compares the two).
   */
  reset(): void {
    // Word by word rather than mem.set(fresh): in code V8 compiled on its background thread, a typed
    // array's methods are looked up generically on each call (docs/http.md, "Copies").
    const m = this.m32;
    const f = this.fresh32;
    for (let i = 0; i < 32; i++) m[i] = f[i];
    this.inHead = true;
    this.crlf = BEFORE_START;
    this.done = false;
    this.errno = 0;
    this.ownReason = null;
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
    return this.m16[this.iStatus];
  }
  /** llhttp_flags (HF.*) of the current message. */
  get flags(): number {
    return this.m16[this.iFlags];
  }
  get upgrade(): boolean {
    return this.mem[this.L.upgrade] !== 0;
  }
  /** The Content-Length of the message (or, inside a chunk, what is left of it). */
  get contentLength(): number {
    return this.m32[this.iContentLength] + this.m32[this.iContentLength + 1] * 2 ** 32;
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
    return this.ownReason ?? (llhttp().getErrorReason(this.mem) as string | null) ?? '';
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
 * own getters (or, where llhttp has none, against what the message says), the stop at a message's end,
 * and that reset()'s copy is what llhttp_reset() leaves.
 */
function selfTest(L: Layout): boolean {
  const ll = llhttp();
  const mem = Buffer.allocUnsafeSlow(128).fill(0);
  const s = settingsStruct();
  // Executes `text` on the parser as it is; true when llhttp returned `expect` and, for a stop, error and
  // error_pos are where the layout says (error_pos just past the message).
  const run = (text: string, expect: number): boolean => {
    const data = Buffer.from(text);
    const r = ll.execute(mem, data, data.length) as number;
    if (r !== expect) return false;
    if (r === HPE.OK) return true;
    const pos = ll.getErrorPos(mem) as number;
    return (
      pos - Number(addressOf(data)) === data.length &&
      mem.readInt32LE(L.error) === r &&
      ll.getErrno(mem) === r &&
      mem.readBigUInt64LE(L.errorPos) === BigInt(pos)
    );
  };
  const sameAsReset = (type: number): boolean => {
    ll.reset(mem);
    return mem.subarray(0, L.size).equals(freshParser(type).subarray(0, L.size));
  };

  ll.init(mem, PARSER_TYPE.REQUEST, s);
  if (mem.readBigUInt64LE(L.settings) !== addressOf(s)) return false;
  if (!run('PUT /t HTTP/1.0\r\nHost: h\r\nContent-Length: 7\r\nConnection: keep-alive\r\n\r\n', HPE.OK)) return false;
  if (mem[L.method] !== ll.getMethod(mem) || mem[L.method] !== 4 /* PUT */) return false;
  if (mem[L.httpMajor] !== ll.getHttpMajor(mem) || mem[L.httpMinor] !== ll.getHttpMinor(mem) || mem[L.httpMinor] !== 0) return false;
  if (mem.readBigUInt64LE(L.contentLength) !== 7n) return false;
  if (mem[L.type] !== ll.getType(mem)) return false;
  if (!run('1234567', HPE.CB_MESSAGE_COMPLETE)) return false;
  // Stopped before llhttp clears the message's fields for the next one.
  if (mem.readUInt16LE(L.flags) !== (HF.CONTENT_LENGTH | HF.CONNECTION_KEEP_ALIVE)) return false;
  if (mem[L.upgrade] !== ll.getUpgrade(mem) || mem[L.upgrade] !== 0) return false;
  if (!sameAsReset(PARSER_TYPE.REQUEST)) return false;

  ll.init(mem, PARSER_TYPE.RESPONSE, s);
  if (!run("HTTP/1.1 418 I'm a teapot\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", HPE.CB_MESSAGE_COMPLETE)) return false;
  if (mem.readUInt16LE(L.statusCode) !== ll.getStatusCode(mem) || mem.readUInt16LE(L.statusCode) !== 418) return false;
  // TRAILING: the last chunk was read (its empty trailer section ends the message).
  if (mem.readUInt16LE(L.flags) !== (HF.CHUNKED | HF.TRANSFER_ENCODING | HF.TRAILING)) return false;
  if (!sameAsReset(PARSER_TYPE.RESPONSE)) return false;

  ll.init(mem, PARSER_TYPE.REQUEST, s);
  const upgrade = 'GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n';
  if (!run(upgrade, HPE.CB_MESSAGE_COMPLETE)) return false;
  return mem[L.upgrade] === 1 && ll.getUpgrade(mem) === 1 && (mem.readUInt16LE(L.flags) & (HF.UPGRADE | HF.CONNECTION_UPGRADE)) !== 0;
}

/**
 * The proxy speaks HTTP/1.0 and 1.1 only. llhttp also parses HTTP/0.9 request lines (`GET /`) and 2.0
 * versions (the h2 preface); the proxy refuses those with 400 rather than guess at their framing.
 */
export function versionOk(p: HttpParser): boolean {
  return p.httpMajor === 1 && (p.httpMinor === 0 || p.httpMinor === 1);
}
