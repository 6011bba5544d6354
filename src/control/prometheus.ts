// The Prometheus text exposition of a snapshot (metrics.ts), version 0.0.4, or OpenMetrics 1.0 when the
// scraper asks for it. Written by hand: the format is a few lines of rules, and a client library would
// want to own the counters, which here live in the workers' shared memory.
//
// Names follow Prometheus' conventions: `ffi_proxy_` then the scope (frontend, backend, server), a counter
// ends in `_total`, units are base units (`_seconds`, `_bytes`); labels are bounded (a frontend's, a
// backend's and a server's names, a status class, a termination code; never a client).

import { BUCKETS } from '../core/counters.js';
import { type Histogram, SERVER_STATES, type Snapshot } from './metrics.js';

export type ProcessMetrics = { cpuSeconds: number; residentBytes: number; openFds: number; maxFds: number; startTimeSeconds: number };

type Labels = Record<string, string>;
type Kind = 'counter' | 'gauge' | 'histogram';

class Writer {
  private readonly out: string[] = [];
  constructor(private readonly open: boolean) {}

  /** A family: its HELP and TYPE, then each sample (value, or a histogram). */
  family(name: string, kind: Kind, help: string, samples: [Labels, number | Histogram][]): void {
    // OpenMetrics names a counter family without its _total; its samples keep it.
    const family = this.open && kind === 'counter' ? name.replace(/_total$/, '') : name;
    this.out.push(`# HELP ${family} ${help}`, `# TYPE ${family} ${kind}`);
    for (const [labels, v] of samples) {
      if (typeof v === 'number') this.out.push(`${name}${labelText(labels)} ${num(v)}`);
      else this.histogram(name, labels, v);
    }
  }

  private histogram(name: string, labels: Labels, h: Histogram): void {
    let cumulative = 0;
    // OpenMetrics writes a bound in its canonical form: 1.0, not 1.
    const text = (le: number) => (this.open && Number.isInteger(le) ? `${le}.0` : String(le));
    BUCKETS.forEach((le, k) => {
      cumulative += h.buckets[k];
      this.out.push(`${name}_bucket${labelText({ ...labels, le: text(le) })} ${num(cumulative)}`);
    });
    this.out.push(`${name}_bucket${labelText({ ...labels, le: '+Inf' })} ${num(h.count)}`);
    this.out.push(`${name}_sum${labelText(labels)} ${num(h.sum)}`, `${name}_count${labelText(labels)} ${num(h.count)}`);
  }

  text(): string {
    if (this.open) this.out.push('# EOF');
    return this.out.join('\n') + '\n';
  }
}

function labelText(labels: Labels): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return '';
  return `{${keys.map((k) => `${k}="${labels[k].replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}`;
}

function num(v: number): string {
  return Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN';
}

/** Content types of the two formats. */
export const TEXT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
export const OPENMETRICS_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/** The exposition of `snap` and the process's own metrics; OpenMetrics when `open`. */
export function exposition(snap: Snapshot, proc: ProcessMetrics, open: boolean, accessLog: { written: number; dropped: number } | null = null): string {
  const w = new Writer(open);
  processFamilies(w, snap, proc, accessLog);
  frontendFamilies(w, snap);
  serverFamilies(w, snap);
  backendFamilies(w, snap);
  return w.text();
}

function processFamilies(w: Writer, snap: Snapshot, proc: ProcessMetrics, accessLog: { written: number; dropped: number } | null): void {
  w.family('process_cpu_seconds_total', 'counter', 'User and system CPU time spent, in seconds.', [[{}, proc.cpuSeconds]]);
  w.family('process_resident_memory_bytes', 'gauge', 'Resident memory size, in bytes.', [[{}, proc.residentBytes]]);
  w.family('process_open_fds', 'gauge', 'Open file descriptors.', [[{}, proc.openFds]]);
  w.family('process_max_fds', 'gauge', 'The most file descriptors the process may open.', [[{}, proc.maxFds]]);
  w.family('process_start_time_seconds', 'gauge', 'When the process started, in seconds since the epoch.', [[{}, proc.startTimeSeconds]]);

  const t = snap.totals;
  const g = (name: string, kind: Kind, help: string, v: number) => w.family(`ffi_proxy_${name}`, kind, help, [[{}, v]]);
  g('buffers_in_use', 'gauge', 'Pool buffers holding bytes now.', t.buffers);
  g('pipes_in_use', 'gauge', 'Splice pipes holding bytes now.', t.pipes);
  g('pipes_open', 'gauge', 'Splice pipes open, held or idle.', t.pipesOpen);
  g('io_errors_total', 'counter', 'Connections closed abortively: a reset passed on, a response cut off.', t.ioErrors);
  g('reused_connections_total', 'counter', 'HTTP requests sent on a pooled backend connection.', t.reused);
  g('generated_responses_total', 'counter', 'HTTP responses the proxy wrote itself.', t.generated);
  g('proxy_header_refused_total', 'counter', 'Clients closed for a missing, malformed or late PROXY header.', t.proxyRefused);
  if (accessLog !== null) {
    g('access_log_lines_total', 'counter', 'Access log lines written.', accessLog.written);
    g('access_log_dropped_total', 'counter', "Access log records dropped: a worker's ring was full.", accessLog.dropped);
  }
  w.family(
    'ffi_proxy_terminations_total',
    'counter',
    'Client connections ended, by termination code (docs/observability.md).',
    Object.entries(t.terminations).map(([code, n]): [Labels, number] => [{ code }, n]),
  );
}

function frontendFamilies(w: Writer, snap: Snapshot): void {
  const fe = snap.frontends;
  const fl = (f: { name: string }) => ({ frontend: f.name });
  const front = (name: string, kind: Kind, help: string, pick: (f: (typeof fe)[number]) => number | Histogram) =>
    w.family(`ffi_proxy_frontend_${name}`, kind, help, fe.map((f): [Labels, number | Histogram] => [fl(f), pick(f)]));
  front('connections_total', 'counter', 'Client connections accepted.', (f) => f.accepted);
  front('connections_active', 'gauge', 'Client connections open now.', (f) => f.active);
  front('connections_refused_total', 'counter', 'Client connections closed at accept: the table was full.', (f) => f.refused);
  front('requests_total', 'counter', 'HTTP requests with a valid head.', (f) => f.requests);
  front('bytes_in_total', 'counter', 'Bytes from clients, forwarded to servers.', (f) => f.bytesIn);
  front('bytes_out_total', 'counter', 'Bytes from servers, forwarded to clients.', (f) => f.bytesOut);
  w.family('ffi_proxy_frontend_responses_total', 'counter', 'HTTP responses sent, relayed or generated, by status class.', fe.flatMap((f) => classSamples(fl(f), f.responses)));
  w.family(
    'ffi_proxy_frontend_terminations_total',
    'counter',
    'Client connections ended, by termination code.',
    fe.flatMap((f) => Object.entries(f.terminations).map(([code, n]): [Labels, number] => [{ ...fl(f), code }, n])),
  );
  front('request_duration_seconds', 'histogram', 'An HTTP request, from its head to the end of its response; a TCP connection, from accept to close.', (f) => f.duration);
}

type ServerOf = Snapshot['backends'][number]['servers'][number];

function serverFamilies(w: Writer, snap: Snapshot): void {
  const servers = snap.backends.flatMap((b) => b.servers.map((s) => ({ b, s })));
  const sl = ({ b, s }: (typeof servers)[number]) => ({ backend: b.name, server: s.name });
  const srv = (name: string, kind: Kind, help: string, pick: (s: (typeof servers)[number]['s']) => number | Histogram) =>
    w.family(`ffi_proxy_server_${name}`, kind, help, servers.map((x): [Labels, number | Histogram] => [sl(x), pick(x.s)]));
  srv('up', 'gauge', '1 when the server takes new connections (up by its checks or without any, and not drained or in maintenance), else 0.', (s) => (s.up ? 1 : 0));
  w.family(
    'ffi_proxy_server_state',
    'gauge',
    "1 for the server's current state (an operator's maint or drain, else its health's up or down), 0 for the others.",
    servers.flatMap((x) => SERVER_STATES.map((state): [Labels, number] => [{ ...sl(x), state }, x.s.state === state ? 1 : 0])),
  );
  srv('weight', 'gauge', 'Its weight in its backend.', (s) => s.weight);
  srv('health_transitions_total', 'counter', 'Times it went down or came back up.', (s) => s.transitions);
  srv('connections_total', 'counter', 'New connections opened to it.', (s) => s.connects);
  srv('connections_active', 'gauge', 'Its connections carrying a client now.', (s) => s.active);
  srv('connect_errors_total', 'counter', 'Connects to it that failed: refused, unreachable, too slow.', (s) => s.connectErrors);
  srv('retries_total', 'counter', 'Connects tried again on another server after one to it failed.', (s) => s.retries);
  srv('requests_total', 'counter', 'HTTP requests sent to it.', (s) => s.requests);
  srv('bytes_in_total', 'counter', 'Bytes sent to it.', (s) => s.bytesIn);
  srv('bytes_out_total', 'counter', 'Bytes received from it.', (s) => s.bytesOut);
  w.family('ffi_proxy_server_responses_total', 'counter', 'Its HTTP responses, by status class.', servers.flatMap((x) => classSamples(sl(x), x.s.responses)));
  srv('connect_duration_seconds', 'histogram', 'From connect() to the connection established.', (s) => s.connectTime);
  srv('first_byte_seconds', 'histogram', "From a request's head to the first byte of its response.", (s) => s.firstByte);
}

function backendFamilies(w: Writer, snap: Snapshot): void {
  const bl = (b: (typeof snap.backends)[number]) => ({ backend: b.name });
  const total = (b: (typeof snap.backends)[number], pick: (s: ServerOf) => number) => b.servers.reduce((a, s) => a + pick(s), 0);
  const back = (name: string, kind: Kind, help: string, pick: (s: ServerOf) => number) =>
    w.family(`ffi_proxy_backend_${name}`, kind, help, snap.backends.map((b): [Labels, number] => [bl(b), total(b, pick)]));
  w.family('ffi_proxy_backend_servers_up', 'gauge', 'Its servers that take connections.', snap.backends.map((b): [Labels, number] => [bl(b), b.serversUp]));
  back('connections_total', 'counter', 'New connections opened to its servers.', (s) => s.connects);
  back('connections_active', 'gauge', 'Connections to its servers carrying a client now.', (s) => s.active);
  back('connect_errors_total', 'counter', 'Connects to its servers that failed.', (s) => s.connectErrors);
  back('retries_total', 'counter', 'Connects tried again on another of its servers.', (s) => s.retries);
  back('requests_total', 'counter', 'HTTP requests sent to its servers.', (s) => s.requests);
  back('bytes_in_total', 'counter', 'Bytes sent to its servers.', (s) => s.bytesIn);
  back('bytes_out_total', 'counter', 'Bytes received from its servers.', (s) => s.bytesOut);
}

function classSamples(labels: Labels, responses: Record<string, number>): [Labels, number][] {
  return Object.entries(responses).map(([code, n]): [Labels, number] => [{ ...labels, code }, n]);
}
