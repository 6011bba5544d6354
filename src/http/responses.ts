// The responses the proxy writes itself, built once at load so that sending one allocates nothing.
// Each has a short plain-text body that says what happened; the log line says more. Every one carries
// `Connection: close`, and the proxy closes the connection after it (exchange.ts: fail, then linger).

export const GENERATED = {
  400: ['Bad Request', 'the request was malformed or ambiguous'],
  408: ['Request Timeout', 'the request did not arrive in time'],
  413: ['Content Too Large', 'the request body is over the limit'],
  431: ['Request Header Fields Too Large', 'the request head is over the limit'],
  501: ['Not Implemented', 'the method (CONNECT) or the transfer coding is not supported'],
  502: ['Bad Gateway', 'the backend refused, reset or sent an invalid response'],
  503: ['Service Unavailable', 'no backend could be reached, or the proxy is full'],
  504: ['Gateway Timeout', 'the backend did not answer in time'],
} as const;

export type GeneratedStatus = keyof typeof GENERATED;

function build(status: GeneratedStatus): Buffer {
  const [reason, what] = GENERATED[status];
  const body = `${status} ${reason}: ${what}.\n`;
  return Buffer.from(
    `HTTP/1.1 ${status} ${reason}\r\n` +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Cache-Control: no-store\r\n' +
      'Connection: close\r\n' +
      '\r\n' +
      body,
    'latin1',
  );
}

const built = new Map<number, Buffer>();
for (const s of Object.keys(GENERATED).map(Number) as GeneratedStatus[]) built.set(s, build(s));

/** The bytes of a generated response. Do not modify: the same Buffer is shared by every send. */
export function generated(status: GeneratedStatus): Buffer {
  return built.get(status)!;
}
