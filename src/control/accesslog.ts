// The access log's main-thread side: every DRAIN_MS it takes the records the workers wrote into their rings
// (core/accesslog.ts), formats each in its frontend's format and appends the lines to its frontend's file
// (or stdout). Formatting and writing happen here, never on a worker. A file that cannot keep up is not
// waited for: while its stream holds more than MAX_PENDING bytes the rings are left to fill, and the
// workers drop and count what does not fit. Drops are reported (a warning a second at most, and the
// ffi_proxy_access_log_dropped_total metric).
//
//   json      one object per line (the fields are in docs/observability.md)
//   haproxy   HAProxy's httplog and tcplog lines, with the proxy's own timers and termination state
//   combined  nginx's combined format (TCP connections as "TCP frontend backend/server")

import { type WriteStream, createWriteStream } from 'node:fs';
import { MODE_HTTP, NO_SERVER, REC, RECORD_BYTES, RING, RING_RECORDS, LOG_LINE_BYTES } from '../core/accesslog.js';
import type { Logger } from '../core/log.js';
import { TERM_INFO } from '../core/term.js';
import { ST } from '../core/types.js';
import type { AccessLogFormat, BackendConfig, FrontendConfig } from '../route/index.js';

const DRAIN_MS = 100;
const MAX_PENDING = 1024 * 1024;

/** One record, decoded. Times are clock ms (core/table.ts); timers are ms, -1 where the phase never came. */
export type AccessRecord = {
  start: number;
  end: number;
  tq: number;
  tc: number;
  tr: number;
  bytesIn: number;
  bytesOut: number;
  fe: number;
  srv: number;
  status: number;
  port: number;
  term: number;
  http: boolean;
  retries: number;
  state: number;
  client: string;
  line: string;
  truncated: boolean;
};

export type AccessLogSources = {
  rings: () => SharedArrayBuffer[];
  frontends: () => readonly (FrontendConfig | null)[];
  backends: () => readonly (BackendConfig | null)[];
};

export class AccessLogWriter {
  private readonly streams = new Map<string, WriteStream | NodeJS.WriteStream>();
  private timer: NodeJS.Timeout | null = null;
  /** Records written to files, and dropped (by the workers, ring full), over the process's life. */
  written = 0;
  private droppedSeen: number[] = [];
  dropped = 0;
  private lastWarn = 0;

  constructor(
    private readonly src: AccessLogSources,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.drain(), DRAIN_MS);
    this.timer.unref();
  }

  /** Takes what is left in the rings, then closes the files. */
  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.drain();
    const closing = [...this.streams.values()].map(
      (s) => new Promise<void>((resolve) => (s === process.stdout ? resolve() : (s as WriteStream).end(resolve))),
    );
    this.streams.clear();
    await Promise.all(closing);
  }

  /** Closes the files, to be opened again on the next line (after a log rotation moved them: SIGUSR1). */
  reopen(): void {
    for (const [path, s] of this.streams) if (s !== process.stdout) (s as WriteStream).end();
    this.streams.clear();
  }

  /** The files being written, and the counts. */
  report(): { written: number; dropped: number; files: string[] } {
    const files = new Set<string>();
    for (const f of this.src.frontends()) if (f?.accessLog) files.add(f.accessLog);
    return { written: this.written, dropped: this.dropped, files: [...files] };
  }

  /** Formats and writes every record waiting in every ring. Public for tests. */
  drain(): void {
    const frontends = this.src.frontends();
    if (!frontends.some((f) => f?.accessLog)) return this.countDrops();
    if (this.blocked()) return this.countDrops();
    const names = serverNames(this.src.backends());
    const out = new Map<string, string[]>();
    this.src.rings().forEach((ring) => {
      const hdr = new Int32Array(ring, 0, RING.WORDS);
      const w = Atomics.load(hdr, RING.WRITE);
      let r = Atomics.load(hdr, RING.READ);
      for (; r !== w; r = (r + 1) | 0) {
        const rec = decode(ring, r & (RING_RECORDS - 1));
        const f = frontends[rec.fe];
        if (!f?.accessLog) continue;
        const line = format(f.accessLogFormat, rec, f, names, this.src.backends());
        const lines = out.get(f.accessLog) ?? [];
        lines.push(line);
        out.set(f.accessLog, lines);
        this.written++;
      }
      Atomics.store(hdr, RING.READ, w);
    });
    for (const [path, lines] of out) this.stream(path).write(lines.join('\n') + '\n');
    this.countDrops();
  }

  private blocked(): boolean {
    for (const s of this.streams.values()) if (s.writableLength > MAX_PENDING) return true;
    return false;
  }

  private stream(path: string): WriteStream | NodeJS.WriteStream {
    let s = this.streams.get(path);
    if (s === undefined) {
      if (path === '-') s = process.stdout;
      else {
        const file = createWriteStream(path, { flags: 'a' });
        file.on('error', (e) => {
          this.log.error(`access log ${path}: ${e.message}; its lines are dropped until it can be written (SIGUSR1 reopens it)`);
          this.streams.delete(path);
        });
        s = file;
      }
      this.streams.set(path, s);
    }
    return s;
  }

  private countDrops(): void {
    let total = 0;
    this.src.rings().forEach((ring, i) => {
      const n = Atomics.load(new Int32Array(ring, 0, RING.WORDS), RING.DROPPED);
      total += n - (this.droppedSeen[i] ?? 0);
      this.droppedSeen[i] = n;
    });
    if (total === 0) return;
    this.dropped += total;
    const now = Date.now();
    if (now - this.lastWarn >= 1000) {
      this.lastWarn = now;
      this.log.warn(`access log: ${this.dropped} record(s) dropped so far: the workers' rings were full (the log's files could not keep up)`);
    }
  }
}

function decode(ring: SharedArrayBuffer, slot: number): AccessRecord {
  const at = RING.WORDS * 4 + slot * RECORD_BYTES;
  const v = new DataView(ring, at, RECORD_BYTES);
  const u8 = new Uint8Array(ring, at, RECORD_BYTES);
  const lineLen = v.getUint16(REC.LINE_LEN, true);
  const n = Math.min(lineLen, LOG_LINE_BYTES);
  const version = u8[REC.IP_VERSION];
  return {
    start: v.getFloat64(REC.START, true),
    end: v.getFloat64(REC.END, true),
    tq: v.getFloat64(REC.TQ, true),
    tc: v.getFloat64(REC.TC, true),
    tr: v.getFloat64(REC.TR, true),
    bytesIn: v.getFloat64(REC.BYTES_IN, true),
    bytesOut: v.getFloat64(REC.BYTES_OUT, true),
    fe: v.getUint16(REC.FE, true),
    srv: v.getUint16(REC.SRV, true),
    status: v.getUint16(REC.STATUS, true),
    port: v.getUint16(REC.PORT, true),
    term: u8[REC.TERM],
    http: u8[REC.MODE] === MODE_HTTP,
    retries: u8[REC.RETRIES],
    state: u8[REC.STATE],
    client: version === 4 ? [...u8.subarray(REC.IP, REC.IP + 4)].join('.') : version === 6 ? ipv6(u8.subarray(REC.IP, REC.IP + 16)) : '-',
    line: Buffer.from(u8.subarray(REC.LINE, REC.LINE + n)).toString('latin1'),
    truncated: lineLen > LOG_LINE_BYTES,
  };
}

function ipv6(b: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16));
  // The longest run of zero groups becomes '::' (RFC 5952).
  let best = -1;
  let len = 0;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > len && j - i > 1) [best, len] = [i, j - i];
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + len).join(':')}`;
}

type Names = Map<number, { backend: string; server: string }>;

function serverNames(backends: readonly (BackendConfig | null)[]): Names {
  const m: Names = new Map();
  for (const be of backends) for (const s of be?.servers ?? []) m.set(s.id, { backend: be!.name, server: s.name });
  return m;
}

/**
 * HAProxy's termination state: who ended it (TERM_INFO's `who`; `-` for a normal end), then the phase the
 * client was in: R waiting for the request, C connecting, H waiting for the response head, D data, L the
 * proxy's own answer going out, `-` after a complete exchange.
 */
export function terminationState(rec: AccessRecord): string {
  const who = TERM_INFO[rec.term]?.who ?? '-';
  if (who === '-') return '--';
  let phase = 'D';
  switch (rec.state) {
    case ST.H_HEAD:
    case ST.PP_WAIT:
      phase = 'R';
      break;
    case ST.WAITING:
      phase = 'C';
      break;
    case ST.H_BODY:
    case ST.H_WAIT:
      phase = rec.tc < 0 ? 'C' : rec.tr < 0 ? 'H' : 'D';
      break;
    case ST.H_LINGER:
      phase = 'L';
      break;
  }
  return who + phase;
}

const round = (ms: number) => (ms < 0 ? -1 : Math.round(ms * 1000) / 1000);

function where(rec: AccessRecord, f: FrontendConfig, names: Names, backends: readonly (BackendConfig | null)[]): { backend: string; server: string | null } {
  const n = rec.srv === NO_SERVER ? undefined : names.get(rec.srv);
  if (n) return n;
  return { backend: backends[f.backend]?.name ?? '-', server: null };
}

export function format(
  kind: AccessLogFormat,
  rec: AccessRecord,
  f: FrontendConfig,
  names: Names,
  backends: readonly (BackendConfig | null)[],
): string {
  const w = where(rec, f, names, backends);
  if (kind === 'json') return json(rec, f, w);
  if (kind === 'haproxy') return haproxy(rec, f, w);
  return combined(rec, w);
}

function json(rec: AccessRecord, f: FrontendConfig, w: { backend: string; server: string | null }): string {
  const [method, path, version] = rec.line.split(' ');
  const base = {
    time: new Date(rec.start).toISOString(),
    mode: rec.http ? 'http' : 'tcp',
    client: rec.client,
    client_port: rec.port,
    frontend: f.name,
    backend: w.backend,
    server: w.server,
  };
  const end = { retries: rec.retries, termination: TERM_INFO[rec.term]?.name ?? String(rec.term), termination_state: terminationState(rec) };
  if (!rec.http) {
    return JSON.stringify({ ...base, bytes_in: rec.bytesIn, bytes_out: rec.bytesOut, tc_ms: round(rec.tc), tt_ms: round(rec.end - rec.start), ...end });
  }
  return JSON.stringify({
    ...base,
    method: method || null,
    path: path ?? null,
    version: version ?? null,
    line_truncated: rec.truncated,
    status: rec.status || null,
    bytes_in: rec.bytesIn,
    bytes_out: rec.bytesOut,
    tq_ms: round(rec.tq),
    tc_ms: round(rec.tc),
    tr_ms: round(rec.tr),
    ta_ms: round(rec.end - rec.start),
    ...end,
  });
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => String(n).padStart(2, '0');

/** 04/Dec/2026:18:50:08.978 (HAProxy, UTC), or 04/Dec/2026:18:50:08 +0000 (nginx). */
function date(ms: number, millis: boolean): string {
  const d = new Date(ms);
  const day = `${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`;
  return millis ? `${day}.${String(d.getUTCMilliseconds()).padStart(3, '0')}` : `${day} +0000`;
}

/** A request line fit for a quoted field: non-printable bytes and quotes escaped, a cut line marked. */
function quoted(rec: AccessRecord): string {
  if (rec.line === '') return '"<BADREQ>"';
  const text = rec.line.replace(/[^\x20-\x7e]|["\\]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return `"${text}${rec.truncated ? '...' : ''}"`;
}

function haproxy(rec: AccessRecord, f: FrontendConfig, w: { backend: string; server: string | null }): string {
  const ms = (x: number) => (x < 0 ? -1 : Math.round(x));
  const head = `${rec.client}:${rec.port} [${date(rec.start, true)}] ${f.name} ${w.backend}/${w.server ?? '<NOSRV>'}`;
  if (!rec.http) {
    return `${head} 0/${ms(rec.tc)}/${ms(rec.end - rec.start)} ${rec.bytesOut} ${terminationState(rec)} -/-/-/-/${rec.retries} 0/0`;
  }
  const timers = `${ms(rec.tq)}/0/${ms(rec.tc)}/${ms(rec.tr)}/${ms(rec.end - rec.start)}`;
  return `${head} ${timers} ${rec.status || -1} ${rec.bytesOut} - - ${terminationState(rec)}-- -/-/-/-/${rec.retries} 0/0 ${quoted(rec)}`;
}

/** nginx's stream $status for a TCP connection: 200, or what its end says went wrong. */
function tcpStatus(rec: AccessRecord): number {
  const who = TERM_INFO[rec.term]?.who ?? '-';
  return who === 'S' || who === 's' ? 502 : who === 'R' ? 503 : who === 'I' ? 500 : who === 'P' ? 400 : 200;
}

function combined(rec: AccessRecord, w: { backend: string; server: string | null }): string {
  const request = rec.http ? quoted(rec) : `"TCP ${w.backend}/${w.server ?? '-'}"`;
  const status = rec.http ? rec.status || '-' : tcpStatus(rec);
  return `${rec.client} - - [${date(rec.start, false)}] ${request} ${status} ${rec.bytesOut} "-" "-"`;
}
