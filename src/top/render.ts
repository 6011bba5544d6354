// One frame of `ffi-proxy top`, as lines: a pure function of what the admin endpoint last said (a View),
// the terminal's width and height. No terminal, no clock, no I/O here, so tests render real answers at any
// size. The frame, top to bottom:
//
//   header        uptime; conn/s, req/s, bytes/s in and out, active, 5xx/s, CPU, RSS (wrapped to the width)
//   error         why the last poll failed, over the last good data
//   frontends     one row each
//   servers       one row each (backend/server)
//   connections   a title with the sort, then as many rows as the height leaves
//
// Too many frontends or servers for the height: the last row shown says how many more there are.

import { age, bytes, clean, latency, num, percent } from './format.js';
import { type Column, fixed, flex, table } from './table.js';
import type { Connection, FrontendStats, Line, LineStyle, ServerStats, Sort, Stats, View } from './types.js';

const SORT_WORDS: Record<Sort, string> = { age: 'age (oldest first)', bytes: 'bytes (most first)', idle: 'idle (longest first)' };
const KEYS_HINT = 'a/b/i/s sort  h help  q quit';

/** The frame: at most `height` lines, none longer than `width`. */
export function frame(view: View, width: number, height: number): Line[] {
  const w = Math.max(20, Math.floor(width));
  const h = Math.max(1, Math.floor(height));
  const out: Line[] = [...header(view, w)];
  if (view.error !== null) for (const t of wrap(view.error, w, 3)) out.push({ text: t, style: 'error' });
  if (view.help) return [...out, blank(), ...help(w)].slice(0, h);
  if (view.stats === null) {
    if (view.error === null) out.push({ text: `waiting for the first answer from ${view.target}`.slice(0, w), style: 'dim' });
    return out.slice(0, h);
  }
  out.push(blank());
  const s = view.stats;
  const servers = s.backends.flatMap((b) => b.servers.map((sv) => ({ backend: b.name, sv })));
  // What is left once the header, the blank lines, the three table heads and the connections' title are in.
  const avail = h - out.length - 6;
  const feRows = Math.min(s.frontends.length, Math.max(1, Math.floor(avail / 4)));
  const svRows = Math.min(servers.length, Math.max(1, Math.floor((avail - feRows) / 2)));
  out.push(...section(frontendTable(s.frontends, w), [], feRows, 'frontends'));
  out.push(blank());
  out.push(...section(serverTable(servers, w), servers.map(serverStyle), svRows, 'servers'));
  out.push(blank());
  out.push(...connectionLines(view, w, Math.max(0, h - out.length - 2)));
  return out.slice(0, h);
}

/** The frame as plain text (`top --once`, docs/top.txt): one string, lines joined with newlines. */
export function text(lines: Line[]): string {
  return lines.map((l) => l.text.trimEnd()).join('\n') + '\n';
}

/** The proxy's CPU use between two answers, in percent of one core; null without an earlier answer. */
export function cpuPercent(prev: Stats | null, cur: Stats): number | null {
  if (prev === null) return sinceStart(cur);
  const dt = (Date.parse(cur.time) - Date.parse(prev.time)) / 1000;
  const used = cur.process.cpuSeconds - prev.process.cpuSeconds;
  if (!(dt > 0) || used < 0) return sinceStart(cur);
  return (used / dt) * 100;
}

/** The first answer's CPU figure: the average since the process started, when the endpoint says when. */
function sinceStart(cur: Stats): number | null {
  const started = cur.process.startTimeSeconds;
  if (started === undefined) return null;
  const lived = Date.parse(cur.time) / 1000 - started;
  return lived > 0 ? (cur.process.cpuSeconds / lived) * 100 : null;
}

function header(view: View, w: number): Line[] {
  const s = view.stats;
  const title = ['ffi-proxy top', view.target];
  if (s !== null) title.push(`up ${age(s.uptimeSeconds)}`, clock(s.time));
  const lines = [...wrapWords(title, w, 2).map((t) => ({ text: t, style: 'title' as LineStyle }))];
  if (s === null) return lines;
  const r = s.rates;
  const rate = (n: number | undefined) => (r === null || n === undefined ? '-' : num(n));
  const perSec = (n: number | undefined) => (r === null || n === undefined ? '-' : `${bytes(n)}/s`);
  const words = [
    `conn/s ${rate(r?.connections)}`,
    `req/s ${rate(r?.requests)}`,
    `in ${perSec(r?.bytesIn)}`,
    `out ${perSec(r?.bytesOut)}`,
    `active ${num(s.totals.active)}`,
    `5xx/s ${rate(r?.errors)}`,
    `cpu ${percent(view.cpuPercent)}`,
    `rss ${bytes(s.process.residentBytes)}`,
  ];
  // Open fds only where they fit without a line of their own.
  const fds = [...words, `fds ${s.process.openFds}/${s.process.maxFds}`];
  const fit = wrapWords(fds, w, 3).length <= wrapWords(words, w, 3).length ? fds : words;
  return [...lines, ...wrapWords(fit, w, 2).map((t) => ({ text: t, style: 'plain' as LineStyle }))];
}

/** `HH:MM:SS` of an ISO time, in UTC (the endpoint's clock, so that a frame is the same wherever it is drawn). */
function clock(iso: string): string {
  const m = /T(\d\d:\d\d:\d\d)/.exec(iso);
  return m ? `${m[1]} UTC` : '';
}

function frontendTable(fes: FrontendStats[], w: number): { head: string; lines: string[] } {
  const rt = (f: FrontendStats, k: 'connections' | 'requests') => (f.rates === null ? '-' : num(f.rates[k]));
  const cols: Column<FrontendStats>[] = [
    flex('FRONTEND', 8, 24, 10, (f) => clean(f.name)),
    fixed('MODE', 4, 2, (f) => f.mode, 'left'),
    fixed('ACTIVE', 6, 8, (f) => num(f.active)),
    fixed('CONN/S', 6, 6, (f) => rt(f, 'connections')),
    fixed('REQ/S', 6, 9, (f) => rt(f, 'requests')),
    fixed('2XX', 6, 5, (f) => num(f.responses['2xx'] ?? 0)),
    fixed('4XX', 6, 4, (f) => num(f.responses['4xx'] ?? 0)),
    fixed('5XX', 6, 7, (f) => num(f.responses['5xx'] ?? 0)),
    fixed('P50', 7, 3, (f) => latency(f.rates?.latency.p50)),
    fixed('P99', 7, 5, (f) => latency(f.rates?.latency.p99)),
  ];
  return table(cols, fes, w);
}

type ServerRow = { backend: string; sv: ServerStats };

function serverTable(rows: ServerRow[], w: number): { head: string; lines: string[] } {
  const rt = (r: ServerRow, k: 'requests' | 'errors') => (r.sv.rates === null ? '-' : num(r.sv.rates[k]));
  const cols: Column<ServerRow>[] = [
    flex('BACKEND/SERVER', 12, 40, 10, (r) => clean(`${r.backend}/${r.sv.name}`)),
    fixed('STATE', 5, 9, (r) => r.sv.state + (r.sv.backup ? '*' : ''), 'left'),
    fixed('WEIGHT', 6, 3, (r) => String(r.sv.weight)),
    fixed('ACTIVE', 6, 8, (r) => num(r.sv.active)),
    fixed('REQ/S', 6, 7, (r) => rt(r, 'requests')),
    fixed('ERR/S', 6, 6, (r) => rt(r, 'errors')),
    fixed('TTFB50', 7, 4, (r) => latency(r.sv.rates?.firstByte.p50)),
    fixed('TTFB99', 7, 5, (r) => latency(r.sv.rates?.firstByte.p99)),
    flex('ADDRESS', 10, 47, 1, (r) => clean(r.sv.address)),
  ];
  return table(cols, rows, w);
}

/** A table's head and up to `rows` of its lines; when some do not fit, the last says how many more. */
function section(t: { head: string; lines: string[] }, styles: LineStyle[], rows: number, what: string): Line[] {
  const out: Line[] = [{ text: t.head, style: 'head' }];
  const n = t.lines.length > rows ? Math.max(0, rows - 1) : t.lines.length;
  for (let k = 0; k < n; k++) out.push({ text: t.lines[k], style: styles[k] ?? 'plain' });
  if (n < t.lines.length) out.push({ text: `  ... ${t.lines.length - n} more ${what}`, style: 'dim' });
  return out;
}

/** A server's row is red when it is down, yellow when an operator drains it or holds it in maintenance. */
function serverStyle(r: ServerRow): LineStyle {
  return r.sv.state === 'down' ? 'bad' : r.sv.state === 'up' ? 'plain' : 'warn';
}

function connectionLines(view: View, w: number, rows: number): Line[] {
  const list = view.connections;
  const conns = list?.connections ?? [];
  const open = list === null ? '-' : `${list.total} open`;
  const what = `connections: ${open}, sorted by ${SORT_WORDS[view.sort]}`;
  const gap = w - what.length - KEYS_HINT.length;
  // The keys' hint where there is room, else the whole sort, else its word alone.
  const title = gap >= 2 ? what + ' '.repeat(gap) + KEYS_HINT : what.length <= w ? what : `connections: ${open}, by ${view.sort}`.slice(0, w);
  const cols: Column<Connection>[] = [
    flex('CLIENT', 15, 47, 10, (c) => clean(c.client)),
    flex('FRONTEND', 8, 20, 2, (c) => clean(c.frontend)),
    flex('SERVER', 8, 30, 6, (c) => (c.server === null ? '-' : clean(`${c.backend}/${c.server}`))),
    fixed('STATE', 10, 5, (c) => c.state, 'left'),
    fixed('AGE', 6, 8, (c) => age(c.ageSeconds)),
    fixed('IDLE', 6, 4, (c) => age(c.idleSeconds)),
    fixed('IN', 5, 7, (c) => bytes(c.bytesIn)),
    fixed('OUT', 5, 7, (c) => bytes(c.bytesOut)),
    flex('REQUEST', 10, 4096, 3, requestCell, true),
  ];
  const shown = conns.slice(0, rows);
  const t = table(cols, shown, w);
  return [
    { text: title, style: 'title' },
    { text: t.head, style: 'head' },
    ...t.lines.map((l) => ({ text: l, style: 'plain' as LineStyle })),
  ];
}

/** The request being served and for how long, or why the connection is ending. */
function requestCell(c: Connection): string {
  if (c.request !== null) {
    // The version says little and costs 9 columns: only a version other than 1.1 is shown.
    const line = clean(c.request.line).replace(/ HTTP\/1\.1$/, '');
    return `${line}${c.request.truncated ? '...' : ''} (${age(c.request.seconds)})`;
  }
  return c.ending !== null ? `(${c.ending})` : '';
}

function help(w: number): Line[] {
  const keys = [
    ['a', 'sort connections by age, oldest first'],
    ['b', 'sort connections by bytes moved, most first'],
    ['i', 'sort connections by idle time, longest first'],
    ['s', 'the next sort order'],
    ['h, ?', 'this help; any key returns'],
    ['q, Ctrl-C', 'quit'],
  ];
  const notes = [
    'Rates are per second over the last second; P50/P99 (request time) and TTFB50/TTFB99 (time to a backend\'s first byte) are over the last 10 seconds; 2XX/4XX/5XX are counts since the start.',
    'A server\'s STATE is up or down (its health), or drain or maint (an operator\'s); * marks a backup.',
    'A connection\'s IN is bytes from its client, OUT bytes to it; REQUEST is the request being served, and for how long.',
  ];
  return [
    { text: 'keys', style: 'head' },
    ...keys.map(([k, d]) => ({ text: `  ${k.padEnd(10)} ${d}`.slice(0, w), style: 'plain' as LineStyle })),
    blank(),
    ...notes.flatMap((n) => wrap(n, w, 4)).map((t) => ({ text: t, style: 'dim' as LineStyle })),
  ];
}

function blank(): Line {
  return { text: '', style: 'plain' };
}

/** Words joined two spaces apart into at most `max` lines of `w` (a word longer than a line is cut). */
function wrapWords(words: string[], w: number, max: number): string[] {
  return wrapJoin(words.map(clean), '  ', w, max);
}

/** Prose wrapped at spaces into at most `max` lines of `w`. */
function wrap(prose: string, w: number, max: number): string[] {
  return wrapJoin(clean(prose).split(' '), ' ', w, max);
}

function wrapJoin(pieces: string[], sep: string, w: number, max: number): string[] {
  const lines: string[] = [];
  let cur = '';
  for (const p of pieces) {
    if (cur !== '' && cur.length + sep.length + p.length > w) {
      lines.push(cur);
      cur = '';
    }
    cur = cur === '' ? p : cur + sep + p;
  }
  if (cur !== '') lines.push(cur);
  return lines.slice(0, max).map((l) => l.slice(0, w));
}
