// A recording HTTP backend for the HTTP-mode tests, and a client-side response reader. Both parse with
// Node's own HTTP parser (node's http_parser binding, driven directly), not with the proxy's code, so a
// test checks the proxy against an independent reading of the bytes.
//
//   const be = await recordingBackend((req, conn) => ({ status: 200, body: 'hi' }));
//   be.connections     every accepted connection: its raw bytes and the requests parsed from them
//   be.requests        every request, in arrival order, over all connections
//
// The handler runs once per complete request (after its body), one at a time per connection, so pipelined
// requests are answered in order, and decides the reply: a response, raw bytes, or an action (never
// answer, reset, close). `Expect: 100-continue` is answered with `100 Continue` as soon as the head is in
// (as Node's http server does), unless `continue100: false`.

import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import net from 'node:net';

const require = createRequire(import.meta.url);

// Node's parser binding, as _http_server and _http_client use it. Typed here by hand: it is internal.
type NodeParser = {
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
  execute(b: Buffer): number | (Error & { code?: string; reason?: string; bytesParsed?: number });
  finish(): undefined | (Error & { code?: string });
  close(): void;
  [k: number]: unknown;
};
type ParserCtor = {
  new (): NodeParser;
  REQUEST: number;
  RESPONSE: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
};
const common = require('_http_common') as { HTTPParser: ParserCtor; methods: string[] };
const { HTTPParser, methods } = common;

/** Bodies up to this size are kept whole on the record; larger ones only by length and sha256. */
const KEEP_BODY = 1 << 20;

export type RecordedRequest = {
  /** Index among all requests this backend received. */
  index: number;
  conn: ConnRecord;
  method: string;
  url: string;
  versionMajor: number;
  versionMinor: number;
  /** Name, value, name, value... as sent. */
  rawHeaders: string[];
  /** Lower-case names; repeated fields joined with ', '. */
  headers: Record<string, string>;
  rawTrailers: string[];
  trailers: Record<string, string>;
  upgrade: boolean;
  shouldKeepAlive: boolean;
  bodyLength: number;
  bodySha: string;
  /** The body, when it is at most 1 MiB (else null). */
  body: Buffer | null;
};

export type ConnRecord = {
  /** Index among the connections this backend accepted. */
  index: number;
  socket: net.Socket;
  /** Every byte received on it, in order. */
  chunks: Buffer[];
  bytes: number;
  requests: RecordedRequest[];
  /** Node's parser refused the bytes (the proxy sent something that is not HTTP/1.1): its error code. */
  parseError: string | null;
  closed: boolean;
  raw(): Buffer;
};

export type Header = [string, string];

/** A response the backend builds. Defaults: 200, Content-Length framing. */
export type ResponseReply = {
  status?: number;
  reason?: string;
  headers?: Header[];
  body?: string | Buffer;
  /**
   * length: adds Content-Length (default); chunked: Transfer-Encoding: chunked, body in `chunkSize`
   * pieces, then `trailers`; eof: no length, the backend closes after the body; none: `headers` as given and
   * the body as is (the test frames it itself).
   * For HEAD requests and 1xx/204/304 the body is never written, whatever the framing says.
   */
  framing?: 'length' | 'chunked' | 'eof' | 'none';
  chunkSize?: number;
  trailers?: Header[];
  /** Add `Connection: close` and close after the response. */
  close?: boolean;
  /** Wait this long before answering. */
  delayMs?: number;
  /**
   * After a 101: what to do with the tunnel. 'echo' echoes every later byte. Default 'echo'.
   */
  tunnel?: 'echo';
};
export type RawReply = { raw: string | Buffer; close?: boolean; reset?: boolean; delayMs?: number };
export type ActionReply = {
  /** never: do not answer (the connection stays open); reset: RST; close: FIN without a response. */
  action: 'never' | 'reset' | 'close';
  delayMs?: number;
};
export type Reply = ResponseReply | RawReply | ActionReply;
export type Handler = (req: RecordedRequest, conn: ConnRecord) => Reply | Promise<Reply>;

export type RecordingBackend = {
  port: number;
  server: net.Server;
  connections: ConnRecord[];
  requests: RecordedRequest[];
  /** Replaces the handler (for tests that change the backend's behaviour midway). */
  setHandler(h: Handler): void;
  /** Connections still open. */
  open(): ConnRecord[];
  close(): Promise<void>;
};

export const defaultHandler: Handler = (req) => ({
  status: 200,
  headers: [['Content-Type', 'text/plain']],
  body: `${req.method} ${req.url} ${req.bodyLength}`,
});

function headerMap(raw: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    out[k] = k in out ? `${out[k]}, ${raw[i + 1]}` : raw[i + 1];
  }
  return out;
}

const REASONS: Record<number, string> = {
  100: 'Continue',
  101: 'Switching Protocols',
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  304: 'Not Modified',
  400: 'Bad Request',
  404: 'Not Found',
  500: 'Internal Server Error',
};

/** The bytes of a ResponseReply to `method`. */
export function buildResponse(r: ResponseReply, method = 'GET'): Buffer {
  const status = r.status ?? 200;
  const framing = r.framing ?? 'length';
  const body = typeof r.body === 'string' ? Buffer.from(r.body, 'latin1') : (r.body ?? Buffer.alloc(0));
  const noBody = method === 'HEAD' || (status >= 100 && status < 200) || status === 204 || status === 304;
  let head = `HTTP/1.1 ${status} ${r.reason ?? REASONS[status] ?? 'Whatever'}\r\n`;
  for (const [k, v] of r.headers ?? []) head += `${k}: ${v}\r\n`;
  const has = (name: string) => (r.headers ?? []).some(([k]) => k.toLowerCase() === name);
  if (framing === 'length' && !has('content-length') && !(status < 200 || status === 204)) {
    head += `Content-Length: ${body.length}\r\n`;
  }
  if (framing === 'chunked' && !has('transfer-encoding')) head += 'Transfer-Encoding: chunked\r\n';
  if (r.close && !has('connection')) head += 'Connection: close\r\n';
  head += '\r\n';
  const parts: Buffer[] = [Buffer.from(head, 'latin1')];
  if (!noBody) {
    if (framing === 'chunked') {
      const step = r.chunkSize ?? 65536;
      for (let o = 0; o < body.length; o += step) {
        const piece = body.subarray(o, Math.min(o + step, body.length));
        parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
      }
      let tail = '0\r\n';
      for (const [k, v] of r.trailers ?? []) tail += `${k}: ${v}\r\n`;
      parts.push(Buffer.from(tail + '\r\n', 'latin1'));
    } else {
      parts.push(body);
    }
  }
  return Buffer.concat(parts);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes honouring backpressure. */
async function put(s: net.Socket, b: Buffer): Promise<void> {
  if (s.destroyed) return;
  const step = 1 << 20;
  for (let o = 0; o < b.length; o += step) {
    if (s.destroyed) return;
    if (!s.write(b.subarray(o, Math.min(o + step, b.length)))) {
      // The waits that lose the race are cancelled, so a long write does not pile listeners on the socket.
      const ac = new AbortController();
      const wait = (e: string) => once(s, e, { signal: ac.signal }).catch(() => {});
      await Promise.race([wait('drain'), wait('close')]);
      ac.abort();
    }
  }
}

export type BackendOptions = { host?: string; continue100?: boolean };

/** Starts a recording backend on 127.0.0.1 with port 0. */
export async function recordingBackend(handler: Handler = defaultHandler, opts: BackendOptions = {}): Promise<RecordingBackend> {
  let h = handler;
  const connections: ConnRecord[] = [];
  const requests: RecordedRequest[] = [];
  const sockets = new Set<net.Socket>();
  const continue100 = opts.continue100 ?? true;

  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    const conn: ConnRecord = {
      index: connections.length,
      socket,
      chunks: [],
      bytes: 0,
      requests: [],
      parseError: null,
      closed: false,
      raw: () => Buffer.concat(conn.chunks),
    };
    connections.push(conn);
    socket.on('close', () => {
      conn.closed = true;
      sockets.delete(socket);
    });

    // Requests whose message is complete, waiting for their turn to be answered.
    const queue: RecordedRequest[] = [];
    let answering = false;
    let stopped = false; // 'never', reset, close or a response with close: no more answers here
    let tunnel = false;

    const parser = new HTTPParser();
    parser.initialize(HTTPParser.REQUEST, {}, 1 << 24, 0);
    let cur: RecordedRequest | null = null;
    let hash: Hash | null = null;
    let bodyParts: Buffer[] = [];
    let pendingHeaders: string[] = [];
    let pendingUrl = '';
    let headDone = false;
    let upgraded: RecordedRequest | null = null; // set when execute() completed an upgrade request

    parser[HTTPParser.kOnHeaders] = (headers: string[], url: string) => {
      if (!headDone) {
        pendingHeaders.push(...headers);
        pendingUrl += url;
      } else if (cur) {
        cur.rawTrailers.push(...headers);
      }
    };
    parser[HTTPParser.kOnHeadersComplete] = (
      versionMajor: number,
      versionMinor: number,
      headers: string[] | undefined,
      method: number,
      url: string | undefined,
      _statusCode: number,
      _statusMessage: string,
      upgrade: boolean,
      shouldKeepAlive: boolean,
    ) => {
      const rawHeaders = headers ? [...pendingHeaders, ...headers] : pendingHeaders;
      cur = {
        index: -1,
        conn,
        method: methods[method] ?? String(method),
        url: url !== undefined ? pendingUrl + url : pendingUrl,
        versionMajor,
        versionMinor,
        rawHeaders,
        headers: headerMap(rawHeaders),
        rawTrailers: [],
        trailers: {},
        upgrade,
        shouldKeepAlive,
        bodyLength: 0,
        bodySha: '',
        body: null,
      };
      pendingHeaders = [];
      pendingUrl = '';
      headDone = true;
      hash = createHash('sha256');
      bodyParts = [];
      if (continue100 && cur.headers['expect']?.toLowerCase() === '100-continue') {
        socket.write('HTTP/1.1 100 Continue\r\n\r\n');
      }
      return 0;
    };
    parser[HTTPParser.kOnBody] = (b: Buffer) => {
      if (!cur) return;
      hash!.update(b);
      cur.bodyLength += b.length;
      if (cur.bodyLength <= KEEP_BODY) bodyParts.push(Buffer.from(b));
      else bodyParts = [];
    };
    parser[HTTPParser.kOnMessageComplete] = () => {
      if (!cur) return;
      const req = cur;
      cur = null;
      headDone = false;
      req.bodySha = hash!.digest('hex');
      req.body = req.bodyLength <= KEEP_BODY ? Buffer.concat(bodyParts) : null;
      req.trailers = headerMap(req.rawTrailers);
      req.index = requests.length;
      requests.push(req);
      conn.requests.push(req);
      queue.push(req);
      if (req.upgrade) upgraded = req;
      void pump();
    };

    const pump = async () => {
      if (answering) return;
      answering = true;
      try {
        while (queue.length && !stopped && !socket.destroyed) {
          const req = queue.shift()!;
          const reply = await h(req, conn);
          if (reply.delayMs) await sleep(reply.delayMs);
          if ('action' in reply) {
            stopped = true;
            if (reply.action === 'reset') socket.resetAndDestroy();
            else if (reply.action === 'close') socket.end();
            // 'never': nothing, ever, on this connection
            break;
          }
          if ('raw' in reply) {
            await put(socket, typeof reply.raw === 'string' ? Buffer.from(reply.raw, 'latin1') : reply.raw);
            if (reply.reset) {
              stopped = true;
              socket.resetAndDestroy();
            } else if (reply.close) {
              stopped = true;
              socket.end();
            }
          } else {
            await put(socket, buildResponse(reply, req.method));
            if ((reply.status ?? 200) === 101) {
              // The tunnel: echo what was held and everything after.
              tunnel = true;
              stopped = true;
              waitingUpgrade = null;
              if (leftover.length) socket.write(leftover);
              leftover = Buffer.alloc(0);
              break;
            }
            if (reply.close || reply.framing === 'eof' || !req.shouldKeepAlive) {
              stopped = true;
              socket.end();
            }
          }
          if (req === waitingUpgrade) {
            // Answered without 101: the bytes held after its head are HTTP again.
            waitingUpgrade = null;
            const rest = leftover;
            leftover = Buffer.alloc(0);
            if (rest.length) parse(rest);
          }
        }
      } finally {
        answering = false;
      }
    };

    // After an upgrade request's head, later bytes are held until its reply says 101 (tunnel) or not.
    let leftover = Buffer.alloc(0);
    let waitingUpgrade: RecordedRequest | null = null;

    const parse = (d: Buffer) => {
      if (conn.parseError) return;
      let data = d;
      while (data.length) {
        upgraded = null;
        const r = parser.execute(data);
        if (typeof r !== 'number') {
          conn.parseError = r.code ?? String(r);
          socket.destroy();
          return;
        }
        if (upgraded) {
          waitingUpgrade = upgraded;
          leftover = Buffer.concat([leftover, data.subarray(r)]);
          return;
        }
        if (r === 0) return;
        data = data.subarray(r);
      }
    };

    socket.on('data', (d: Buffer) => {
      conn.chunks.push(d);
      conn.bytes += d.length;
      if (tunnel) socket.write(d);
      else if (waitingUpgrade) leftover = Buffer.concat([leftover, d]);
      else parse(d);
    });
    socket.on('end', () => {
      if (tunnel) socket.end();
    });
  });
  server.listen(0, opts.host ?? '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    server,
    connections,
    requests,
    setHandler: (nh) => (h = nh),
    open: () => connections.filter((c) => !c.closed),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// The client side: responses read with Node's parser from whatever bytes arrive.

export type ParsedResponse = {
  status: number;
  reason: string;
  versionMajor: number;
  versionMinor: number;
  rawHeaders: string[];
  headers: Record<string, string>;
  trailers: Record<string, string>;
  body: Buffer;
  bodyLength: number;
  bodySha: string;
  shouldKeepAlive: boolean;
  complete: boolean;
};

/**
 * Feeds bytes from a client socket into Node's response parser. `methods` is consulted per response (in
 * order) so that a response to HEAD is read without a body; 1xx interim responses are reported too.
 */
export class ResponseReader {
  readonly responses: ParsedResponse[] = [];
  error: string | null = null;
  ended = false;
  private parser = new HTTPParser();
  private cur: ParsedResponse | null = null;
  private hash: Hash | null = null;
  private parts: Buffer[] = [];
  private pendingHeaders: string[] = [];
  private headDone = false;
  private finals = 0;

  /** `methodFor(i)`: the method of the i-th request on this connection (for HEAD). */
  constructor(private methodFor: (i: number) => string = () => 'GET', private keepBodies = true) {
    const p = this.parser;
    p.initialize(HTTPParser.RESPONSE, {}, 1 << 24, 0);
    p[HTTPParser.kOnHeaders] = (headers: string[]) => {
      if (!this.headDone) this.pendingHeaders.push(...headers);
      else if (this.cur) this.cur.trailers = { ...this.cur.trailers, ...headerMap(headers) };
    };
    p[HTTPParser.kOnHeadersComplete] = (
      versionMajor: number,
      versionMinor: number,
      headers: string[] | undefined,
      _method: number,
      _url: string,
      statusCode: number,
      statusMessage: string,
      _upgrade: boolean,
      shouldKeepAlive: boolean,
    ) => {
      const rawHeaders = headers ? [...this.pendingHeaders, ...headers] : this.pendingHeaders;
      this.pendingHeaders = [];
      this.headDone = true;
      this.cur = {
        status: statusCode,
        reason: statusMessage,
        versionMajor,
        versionMinor,
        rawHeaders,
        headers: headerMap(rawHeaders),
        trailers: {},
        body: Buffer.alloc(0),
        bodyLength: 0,
        bodySha: '',
        shouldKeepAlive,
        complete: false,
      };
      this.hash = createHash('sha256');
      this.parts = [];
      this.responses.push(this.cur);
      if (statusCode >= 200 || statusCode === 101) this.finals++;
      // 1 = no body: the answer to a HEAD request.
      if (statusCode >= 200 && this.methodFor(this.finals - 1) === 'HEAD') return 1;
      return 0;
    };
    p[HTTPParser.kOnBody] = (b: Buffer) => {
      if (!this.cur) return;
      this.hash!.update(b);
      this.cur.bodyLength += b.length;
      if (this.keepBodies) this.parts.push(Buffer.from(b));
    };
    p[HTTPParser.kOnMessageComplete] = () => this.complete();
  }

  private complete() {
    if (!this.cur) return;
    this.cur.complete = true;
    this.cur.bodySha = this.hash!.digest('hex');
    if (this.keepBodies) this.cur.body = Buffer.concat(this.parts);
    this.cur = null;
    this.headDone = false;
  }

  /** Complete responses that are final (not 1xx other than 101). */
  finalResponses(): ParsedResponse[] {
    return this.responses.filter((r) => r.complete && (r.status >= 200 || r.status === 101));
  }

  push(d: Buffer): void {
    if (this.error) return;
    const r = this.parser.execute(d);
    if (typeof r !== 'number') this.error = r.code ?? String(r);
  }

  /** The connection ended: completes a response delimited by the close. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.error) return;
    const r = this.parser.finish();
    if (r) this.error = r.code ?? String(r);
  }
}

/** A client socket with a ResponseReader attached, and its close state. */
export type HttpClient = {
  socket: net.Socket;
  reader: ResponseReader;
  /** The methods of the requests sent, in order (fill it for HEAD). */
  methods: string[];
  ended: () => boolean;
  errorCode: () => string | null;
  /** Writes `s`; `methods` lists the methods of the requests in it when the scan would be wrong. */
  send(s: string | Buffer, methods?: string[]): void;
  /** Waits for `n` final responses in all; rejects (saying what it got) after `ms`. */
  responses(n: number, ms?: number): Promise<ParsedResponse[]>;
  /** Waits for the proxy to close the connection (FIN or reset). */
  closed(ms?: number): Promise<void>;
  destroy(): void;
};

export async function httpClient(port: number, keepBodies = true): Promise<HttpClient> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(socket, 'connect');
  const methodsSent: string[] = [];
  const reader = new ResponseReader((i) => methodsSent[i] ?? 'GET', keepBodies);
  let ended = false;
  let code: string | null = null;
  socket.on('data', (d: Buffer) => reader.push(d));
  socket.on('end', () => {
    ended = true;
    reader.end();
  });
  socket.on('error', (e: NodeJS.ErrnoException) => (code = e.code ?? String(e)));
  socket.on('close', () => {
    ended = true;
    reader.end();
  });
  const describe = () =>
    `got ${reader.finalResponses().length} final response(s) [${reader.responses.map((r) => r.status).join(' ')}]` +
    `${reader.error ? `, parse error ${reader.error}` : ''}${ended ? ', connection closed' : ''}${code ? ` (${code})` : ''}`;
  const client: HttpClient = {
    socket,
    reader,
    methods: methodsSent,
    ended: () => ended,
    errorCode: () => code,
    send(s, methods) {
      const b = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
      // The methods of the requests in it, for reading HEAD responses: given, or a rough scan that is
      // enough for requests without bodies.
      if (methods) methodsSent.push(...methods);
      else for (const m of b.toString('latin1').matchAll(/(?:^|\r\n\r\n)([A-Z]+) \S+ HTTP\/1\.[01]\r\n/g)) methodsSent.push(m[1]);
      socket.write(b);
    },
    async responses(n, ms = 5000) {
      const deadline = Date.now() + ms;
      while (reader.finalResponses().length < n) {
        if (Date.now() > deadline || ((ended || reader.error) && reader.finalResponses().length < n)) {
          throw new Error(`expected ${n} response(s): ${describe()}`);
        }
        await sleep(5);
      }
      return reader.finalResponses();
    },
    async closed(ms = 5000) {
      const deadline = Date.now() + ms;
      while (!ended) {
        if (Date.now() > deadline) throw new Error(`the proxy did not close the connection: ${describe()}`);
        await sleep(5);
      }
    },
    destroy: () => socket.destroy(),
  };
  return client;
}

/** `GET url HTTP/1.1` with Host and any extra header lines. */
export function get(url: string, extra = '', method = 'GET'): string {
  return `${method} ${url} HTTP/1.1\r\nHost: test.local\r\n${extra}\r\n`;
}

// ---------------------------------------------------------------------------------------------------------
// Conformance case files (test/http/cases/*.md; the format is described in cases/README.md).

export type ConformanceCase = {
  file: string;
  name: string;
  /** The bytes the client writes. */
  raw: Buffer;
  statuses: number[];
  backend: number;
  close: boolean;
};

/** `\r \n \t \0 \\ \xHH` to bytes; anything else after a backslash is an error. */
export function unescapeBytes(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c !== '\\') {
      const code = s.charCodeAt(i);
      if (code > 0xff) throw new Error(`non-latin1 character in a case: ${JSON.stringify(c)}`);
      out.push(code);
      continue;
    }
    const n = s[++i];
    if (n === 'r') out.push(0x0d);
    else if (n === 'n') out.push(0x0a);
    else if (n === 't') out.push(0x09);
    else if (n === '0') out.push(0x00);
    else if (n === '\\') out.push(0x5c);
    else if (n === 'x' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      out.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else throw new Error(`bad escape \\${n} in a case`);
  }
  return Buffer.from(out);
}

/** Reads one case file: its cases and its proxy options. Throws on anything malformed. */
export function parseCaseFile(file: string, text: string): { options: Record<string, unknown>; cases: ConformanceCase[] } {
  let options: Record<string, unknown> = {};
  const m = /<!--\s*options:\s*(\{[^]*?\})\s*-->/.exec(text);
  if (m) options = JSON.parse(m[1]) as Record<string, unknown>;
  const cases: ConformanceCase[] = [];
  const lines = text.split('\n');
  type Draft = { name: string; meta: Record<string, string>; raw: string | null };
  let cur: Draft | null = null;
  const finish = () => {
    if (!cur) return;
    const where = `${file}: "${cur.name}"`;
    if (cur.raw === null) throw new Error(`${where}: no \`\`\`http block`);
    if (!cur.meta.status) throw new Error(`${where}: no status`);
    if (cur.meta.backend === undefined) throw new Error(`${where}: no backend count`);
    const statuses = cur.meta.status.split(/\s+/).map(Number);
    if (statuses.some((s) => !Number.isInteger(s) || s < 100 || s > 599)) throw new Error(`${where}: bad status`);
    const backend = Number(cur.meta.backend);
    if (!Number.isInteger(backend) || backend < 0) throw new Error(`${where}: bad backend count`);
    const closeMeta = cur.meta.close;
    if (closeMeta !== undefined && closeMeta !== 'yes' && closeMeta !== 'no') throw new Error(`${where}: close is yes or no`);
    const close = closeMeta === undefined ? statuses[statuses.length - 1] >= 400 : closeMeta === 'yes';
    const expanded = cur.raw.replace(/\{\{(\d+)\*(.*?)\}\}/g, (_, n: string, t: string) => t.repeat(Number(n)));
    cases.push({ file, name: cur.name, raw: unescapeBytes(expanded), statuses, backend, close });
    cur = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('## ')) {
      finish();
      cur = { name: line.slice(3).trim(), meta: {}, raw: null };
      continue;
    }
    if (!cur) continue;
    const kv = /^- (\w+):\s*(.*?)\s*$/.exec(line);
    if (kv && cur.raw === null) {
      cur.meta[kv[1]] = kv[2];
      continue;
    }
    if (line.trim() === '```http') {
      if (cur.raw !== null) throw new Error(`${file}: "${cur.name}": two \`\`\`http blocks`);
      const body: string[] = [];
      for (i++; i < lines.length && lines[i].trim() !== '```'; i++) body.push(lines[i]);
      if (i >= lines.length) throw new Error(`${file}: "${cur.name}": unclosed block`);
      cur.raw = body.join(''); // physical line breaks are not bytes
    }
  }
  finish();
  return { options, cases };
}
