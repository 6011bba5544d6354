// llhttp's constants (llhttp.h, 9.x) that the driver needs, and the two llhttp_t layouts it knows.

/** llhttp_type_t */
export const PARSER_TYPE = { REQUEST: 1, RESPONSE: 2 } as const;

/** llhttp_errno_t values the driver branches on; any other non-zero value is a parse error. */
export const HPE = {
  OK: 0,
  INTERNAL: 1,
  /** What llhttp_execute() returns when on_message_complete "fails": our stop at a message's end. */
  CB_MESSAGE_COMPLETE: 18,
} as const;

/** llhttp_flags (parser->flags, uint16). */
export const HF = {
  CONNECTION_KEEP_ALIVE: 0x1,
  CONNECTION_CLOSE: 0x2,
  CONNECTION_UPGRADE: 0x4,
  CHUNKED: 0x8,
  UPGRADE: 0x10,
  CONTENT_LENGTH: 0x20,
  SKIPBODY: 0x40,
  TRAILING: 0x80,
  TRANSFER_ENCODING: 0x200,
} as const;

/** llhttp_method_t values the proxy treats specially. */
export const METHOD = { HEAD: 2, CONNECT: 5, OPTIONS: 6 } as const;

/**
 * Byte offsets into struct llhttp__internal_s (llhttp_t) on 64-bit targets:
 *
 *   int32 _index @0; void *_span_pos0 @8; void *_span_cb0 @16; int32 error @24; const char *reason @32;
 *   const char *error_pos @40; void *data @48; void *_current @56; uint64 content_length @64;
 *   uint8 type @72, method @73, http_major @74, http_minor @75, header_state @76;
 *   then lenient_flags, upgrade, finish, flags (u16), status_code (u16), initial_message_completed,
 *   and void *settings @88. sizeof == 96.
 *
 * llhttp 9.2 widened lenient_flags from uint8 to uint16, which moves the fields after it by 2 bytes; both
 * layouts are listed and the start-up self-test (parser.ts) decides which one this binary has.
 */
export type Layout = {
  name: string;
  /** int32 error (llhttp_errno_t) and const char *error_pos: read and written instead of calling
   * llhttp_get_error_pos and llhttp_resume, which only read and clear them. */
  error: number;
  errorPos: number;
  contentLength: number;
  type: number;
  method: number;
  httpMajor: number;
  httpMinor: number;
  upgrade: number;
  flags: number;
  statusCode: number;
  settings: number;
  size: number;
};

const common = { error: 24, errorPos: 40, contentLength: 64, type: 72, method: 73, httpMajor: 74, httpMinor: 75, settings: 88, size: 96 };

export const LAYOUTS: Layout[] = [
  // llhttp >= 9.2: uint16 lenient_flags @78 (after one byte of padding)
  { name: 'llhttp 9.2+', ...common, upgrade: 80, flags: 82, statusCode: 84 },
  // llhttp 9.0 and 9.1: uint8 lenient_flags @77
  { name: 'llhttp 9.0-9.1', ...common, upgrade: 78, flags: 80, statusCode: 82 },
];

/**
 * Offset of the one callback we set in struct llhttp_settings_s: pointer 12 of the struct
 * (on_message_begin, on_protocol, on_url, on_status, on_method, on_version, on_header_field,
 * on_header_value, on_chunk_extension_name, on_chunk_extension_value, on_headers_complete, on_body,
 * on_message_complete, ...). llhttp 9.x only appends to this struct, so it does not move.
 */
// `size` is what we allocate: llhttp_settings_init() zeroes sizeof(llhttp_settings_t), 200 bytes in 9.3, so 1 KiB
// leaves room for the struct to grow in later 9.x releases without that memset running past our buffer.
export const SETTINGS = { onMessageComplete: 96, size: 1024 } as const;
