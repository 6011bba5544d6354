#!/usr/bin/env node
// Checks the admin endpoint's GET /metrics against Prometheus' tools and conventions:
//
//   npm run build && node scripts/check-metrics.mjs [--skip-promtool] [--strict] [--save DIR]
//
// Starts the proxy (the library, from dist/) with two frontends (http and tcp) and two backends, one of
// whose servers is a closed port, sends traffic (200s, 4xx, 5xx, a malformed request, refused connects),
// scrapes /metrics as text 0.0.4 and as OpenMetrics 1.0, then:
//   - runs `promtool check metrics` on each (promtool parses only the text format: on OpenMetrics it
//     reports every counter's `X_total` sample as a metric without help, because OpenMetrics names a
//     counter family without `_total`; those lines are reported as expected, anything else fails);
//   - parses the OpenMetrics scrape with Prometheus' own OpenMetrics parser
//     (`promtool tsdb create-blocks-from openmetrics`, on a copy with a timestamp added to each sample);
//   - checks itself: every family has HELP and TYPE, counters end in _total (text) or have _total samples
//     (OpenMetrics), no series twice, no label value holds a client's address, every histogram's buckets
//     are cumulative and end in +Inf equal to _count, no family's sample names clash with another's,
//     both formats hold the same series, and the traffic sent shows in the counters.
// Some checks only warn (WARN): what a spec recommends and Prometheus' parsers accept, as OpenMetrics'
// canonical `le` values ("1.0", not "1"), or every frontend exposing the same label sets (a series that
// appears only when its first event happens loses that event to rate()). --strict makes them fail.
// Prints a PASS, WARN or FAIL line per check; exits 0 when none fails, 1 when one does, 2 when promtool
// is missing (apt-get update && apt-get install -y --no-install-recommends prometheus).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const skipPromtool = args.includes('--skip-promtool');
const strict = args.includes('--strict');
const saveAt = args.includes('--save') ? args[args.indexOf('--save') + 1] : null;
const PROMTOOL = process.env.PROMTOOL || 'promtool';
const INSTALL = 'apt-get update && apt-get install -y --no-install-recommends prometheus';

// ---- promtool first: no point starting anything without it.
if (!skipPromtool) {
  const v = spawnSync(PROMTOOL, ['--version'], { encoding: 'utf8' });
  if (v.error || v.status !== 0) {
    console.error(`promtool not found (${v.error?.code ?? `exit ${v.status}`}).`);
    console.error(`Install it: ${INSTALL}   (Debian/Ubuntu, as root)`);
    console.error('or put the promtool of a Prometheus release on PATH, or set PROMTOOL=/path/to/promtool;');
    console.error('or run with --skip-promtool for the script\'s own checks only.');
    process.exit(2);
  }
  console.log(`using ${(v.stdout || v.stderr).split('\n')[0]}`);
}

const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
if (!existsSync(dist)) {
  console.error(`${dist} is missing: run npm run build first`);
  process.exit(1);
}
const { start } = await import(dist);

// ---- Results
let passed = 0;
let failed = 0;
let warned = 0;
function check(name, ok, detail = [], onlyWarn = false) {
  const lines = Array.isArray(detail) ? detail : [detail];
  const warn = !ok && onlyWarn && !strict;
  if (ok) passed++;
  else if (warn) warned++;
  else failed++;
  console.log(`${ok ? 'PASS' : warn ? 'WARN' : 'FAIL'} ${name}`);
  if (ok) return;
  for (const l of lines.slice(0, 20)) console.log(`     ${l}`);
  if (lines.length > 20) console.log(`     ... and ${lines.length - 20} more`);
}
const warnCheck = (name, ok, detail) => check(name, ok, detail, true);
const info = (line) => console.log(`     ${line}`);

// ---- Backends: an HTTP server (200, 404 on /missing, 500 on /fail), a TCP echo server, a closed port.
const httpServer = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.statusCode = req.url === '/fail' ? 500 : req.url === '/missing' ? 404 : 200;
    res.end(`${res.statusCode} ${req.url}\n`);
  });
});
const echoServer = net.createServer((s) => {
  s.on('error', () => {});
  s.pipe(s);
});
const listen = (srv) => new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv.address().port)));
const httpPort = await listen(httpServer);
const echoPort = await listen(echoServer);
const closedPort = await (async () => {
  const s = net.createServer();
  const port = await listen(s);
  await new Promise((resolve) => s.close(resolve));
  return port;
})();
const serverAddresses = [`127.0.0.1:${httpPort}`, `127.0.0.1:${echoPort}`, `127.0.0.1:${closedPort}`];

const proxy = await start({
  admin: '127.0.0.1:0',
  workers: 2,
  logLevel: 'silent',
  config: {
    frontends: [
      { name: 'web', listen: '127.0.0.1:0', mode: 'http', backend: 'app' },
      { name: 'raw', listen: '127.0.0.1:0', mode: 'tcp', backend: 'echo' },
    ],
    backends: [
      // The closed port keeps its default name (its address as written): a server's address is an
      // allowed label value; a client's is not.
      { name: 'app', servers: [{ name: 'app1', address: `127.0.0.1:${httpPort}` }, `127.0.0.1:${closedPort}`] },
      { name: 'echo', servers: [{ name: 'echo1', address: `127.0.0.1:${echoPort}` }] },
    ],
  },
});
const port = (name) => proxy.listening().find((l) => l.name === name).address.port;

// ---- Traffic. Every client socket's own address is kept: none may show in a label.
const clientAddresses = new Set();
const FAKE_CLIENT = '203.0.113.77'; // sent as X-Forwarded-For: must not show either
const FAKE_HOST = 'client-host.invalid';

/** One HTTP/1.1 request on its own connection; resolves with the status code (0 when none came). */
function request(p, raw) {
  return new Promise((resolve) => {
    const c = net.connect(p, '127.0.0.1', () => {
      clientAddresses.add(`${c.localAddress}:${c.localPort}`);
      c.write(raw);
    });
    const chunks = [];
    c.on('data', (d) => chunks.push(d));
    c.on('error', () => {});
    c.on('close', () => resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(Buffer.concat(chunks).toString('latin1'))?.[1] ?? 0)));
    c.setTimeout(5000, () => c.destroy());
  });
}
const get = (path) => request(port('web'), `GET ${path} HTTP/1.1\r\nHost: ${FAKE_HOST}\r\nX-Forwarded-For: ${FAKE_CLIENT}\r\nConnection: close\r\n\r\n`);

/** A TCP connection through `raw` that sends `text` and reads it back. */
function echo(text) {
  return new Promise((resolve) => {
    const c = net.connect(port('raw'), '127.0.0.1', () => {
      clientAddresses.add(`${c.localAddress}:${c.localPort}`);
      c.write(text);
    });
    let got = '';
    c.on('data', (d) => {
      got += d;
      if (got.length >= text.length) c.end();
    });
    c.on('error', () => {});
    c.on('close', () => resolve(got === text));
    c.setTimeout(5000, () => c.destroy());
  });
}

const statuses = [];
for (let i = 0; i < 20; i++) statuses.push(await get(`/ok/${i}`));
for (let i = 0; i < 4; i++) statuses.push(await get('/fail'));
for (let i = 0; i < 3; i++) statuses.push(await get('/missing'));
statuses.push(await request(port('web'), 'NOT A REQUEST\r\n\r\n'));
const echoes = await Promise.all(Array.from({ length: 6 }, (_, i) => echo(`hello ${i} `.repeat(50))));
const count = (s) => statuses.filter((x) => x === s).length;
check('traffic: HTTP answers as expected', count(200) === 20 && count(500) === 4 && count(404) === 3 && count(400) === 1, `statuses: ${JSON.stringify(statuses)}`);
check('traffic: TCP echoes came back', echoes.every(Boolean), `echoes: ${JSON.stringify(echoes)}`);

// ---- Scrapes
async function scrape(accept) {
  const r = await fetch(`http://127.0.0.1:${proxy.admin.port}/metrics`, { headers: accept ? { accept } : {} });
  return { status: r.status, type: r.headers.get('content-type') ?? '', body: await r.text() };
}
const text = await scrape(null);
const open = await scrape('application/openmetrics-text; version=1.0.0; charset=utf-8, text/plain; version=0.0.4; q=0.5');
await proxy.close(0);
await new Promise((resolve) => httpServer.close(resolve));
await new Promise((resolve) => echoServer.close(resolve));

check('text: 200, Content-Type text/plain; version=0.0.4', text.status === 200 && /^text\/plain; version=0\.0\.4/.test(text.type), `got ${text.status} ${text.type}`);
check('OpenMetrics: 200, Content-Type application/openmetrics-text; version=1.0.0', open.status === 200 && /^application\/openmetrics-text; version=1\.0\.0/.test(open.type), `got ${open.status} ${open.type}`);

const work = mkdtempSync(join(tmpdir(), 'check-metrics-'));
const textFile = join(work, 'metrics.txt');
const openFile = join(work, 'metrics.om.txt');
writeFileSync(textFile, text.body);
writeFileSync(openFile, open.body);
if (saveAt) {
  mkdirSync(saveAt, { recursive: true });
  writeFileSync(join(saveAt, 'metrics.txt'), text.body);
  writeFileSync(join(saveAt, 'metrics.om.txt'), open.body);
  console.log(`scrapes saved in ${saveAt}`);
}

// ---- Parsing (both formats; OpenMetrics adds # EOF, # UNIT, counter families without _total)
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function parse(body, om) {
  const families = new Map(); // name -> { help, type, samples: [] }
  const problems = [];
  const samples = [];
  const lines = body.split('\n');
  if (lines.at(-1) === '') lines.pop();
  else problems.push('the body does not end with a newline');
  let eof = false;
  lines.forEach((line, i) => {
    const at = `line ${i + 1}`;
    if (eof) return problems.push(`${at}: after # EOF: ${line}`);
    if (line === '# EOF') {
      if (!om) problems.push(`${at}: # EOF in the text format`);
      eof = true;
      return;
    }
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE|UNIT) (\S+) ?(.*)$/.exec(line);
      if (!m) return om ? problems.push(`${at}: a comment OpenMetrics does not allow: ${line}`) : undefined;
      const [, what, name, rest] = m;
      if (!NAME.test(name)) problems.push(`${at}: bad metric name ${name}`);
      const f = families.get(name) ?? { help: null, type: null, samples: [] };
      families.set(name, f);
      if (f.samples.length > 0) problems.push(`${at}: ${what} of ${name} after its samples`);
      if (what === 'HELP') {
        if (f.help !== null) problems.push(`${at}: second HELP for ${name}`);
        f.help = rest;
      } else if (what === 'TYPE') {
        if (f.type !== null) problems.push(`${at}: second TYPE for ${name}`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped', 'unknown', 'info', 'stateset', 'gaugehistogram'].includes(rest)) problems.push(`${at}: unknown type ${rest}`);
        f.type = rest;
      }
      return;
    }
    if (line.trim() === '') return problems.push(`${at}: an empty line`);
    const s = parseSample(line);
    if (typeof s === 'string') return problems.push(`${at}: ${s}: ${line}`);
    s.line = i + 1;
    samples.push(s);
  });
  if (om && !eof) problems.push('no # EOF at the end');
  // Give each sample to its family.
  for (const s of samples) {
    const fam = familyOf(families, s.name, om);
    if (!fam) {
      problems.push(`line ${s.line}: sample ${s.name} belongs to no family with a TYPE`);
      continue;
    }
    s.family = fam;
    families.get(fam).samples.push(s);
  }
  return { families, samples, problems };
}

function familyOf(families, name, om) {
  const suffixes = { counter: om ? ['_total', '_created'] : [''], histogram: ['_bucket', '_sum', '_count', '_created'], gauge: [''], summary: ['', '_sum', '_count'], untyped: [''], unknown: [''] };
  for (const [fam, f] of families) {
    for (const suf of suffixes[f.type] ?? ['']) if (fam + suf === name) return fam;
  }
  return null;
}

function parseSample(line) {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( \S+)?$/.exec(line);
  if (!m) return 'not a sample line';
  const labels = {};
  if (m[3] !== undefined && m[3] !== '') {
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
    let k = 0;
    while (k < m[3].length) {
      re.lastIndex = k;
      const l = re.exec(m[3]);
      if (!l) return `bad labels at "${m[3].slice(k)}"`;
      if (l[1] in labels) return `label ${l[1]} twice`;
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      k = re.lastIndex;
    }
  }
  const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
  if (m[4] !== 'NaN' && Number.isNaN(value)) return `bad value ${m[4]}`;
  return { name: m[1], labels, value, key: `${m[1]}${JSON.stringify(Object.entries(labels).sort())}` };
}

/** OpenMetrics' canonical rendering of an le or quantile value: Go's %g, with .0 when it has no point or exponent. */
function canonical(v) {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (Number.isNaN(v)) return 'NaN';
  if (v === 0) return '0.0';
  const [m, e] = v.toExponential().split('e');
  const exp = Number(e);
  if (exp < -4 || exp >= 6) return `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  const s = String(v);
  return s.includes('.') ? s : `${s}.0`;
}

const T = parse(text.body, false);
const O = parse(open.body, true);

// ---- promtool
function promtool(argv, input) {
  const r = spawnSync(PROMTOOL, argv, { input, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').filter((l) => l.trim() !== '') };
}
if (!skipPromtool) {
  const t = promtool(['check', 'metrics'], text.body);
  check('promtool check metrics: text 0.0.4', t.status === 0 && t.out.length === 0, t.out.length ? t.out : [`exit ${t.status}`]);

  // promtool's parser is the text format's: on OpenMetrics it sees `X_total` samples of the counter family
  // X as an untyped metric without help (prometheus/prometheus#8932). Those lines are expected; not others.
  const o = promtool(['check', 'metrics'], open.body);
  const counters = new Set([...O.families].filter(([, f]) => f.type === 'counter').map(([n]) => n));
  const expected = [];
  const other = [];
  for (const l of o.out) {
    const m = /^(\S+)_total no help text$/.exec(l);
    (m && counters.has(m[1]) ? expected : other).push(l);
  }
  check('promtool check metrics: OpenMetrics (read as text 0.0.4)', (o.status === 0 || o.status === 3) && other.length === 0, other.length ? other : [`exit ${o.status}`]);
  if (expected.length) info(`${expected.length} lines "X_total no help text" for OpenMetrics counter families X: expected, promtool reads only the text format`);

  // Prometheus' own OpenMetrics parser, through the backfill command: it needs a timestamp on each sample.
  const now = Math.floor(Date.now() / 1000);
  const stamped = open.body.split('\n').map((l) => (l === '' || l.startsWith('#') ? l : `${l} ${now}`)).join('\n');
  const stampedFile = join(work, 'metrics.om.stamped.txt');
  writeFileSync(stampedFile, stamped);
  const b = promtool(['tsdb', 'create-blocks-from', 'openmetrics', '--quiet', stampedFile, join(work, 'blocks')]);
  check("OpenMetrics parsed by Prometheus' OpenMetrics parser (promtool tsdb create-blocks-from openmetrics)", b.status === 0, b.out.length ? b.out : [`exit ${b.status}`]);
}

// ---- The script's own checks, on both formats
for (const [fmt, P, om] of [['text', T, false], ['OpenMetrics', O, true]]) {
  check(`${fmt}: parses (syntax, families, sample names)`, P.problems.length === 0, P.problems);

  const noHelp = [...P.families].filter(([, f]) => f.help === null || f.help.trim() === '').map(([n]) => n);
  const noType = [...P.families].filter(([, f]) => f.type === null).map(([n]) => n);
  check(`${fmt}: every family has HELP and TYPE`, noHelp.length === 0 && noType.length === 0, [...noHelp.map((n) => `${n}: no HELP`), ...noType.map((n) => `${n}: no TYPE`)]);

  const badCounters = [];
  for (const [n, f] of P.families) {
    if (f.type !== 'counter') {
      if (/_total$/.test(n)) badCounters.push(`${n}: a ${f.type} named _total`);
      continue;
    }
    if (!om && !n.endsWith('_total')) badCounters.push(`${n}: a counter without _total`);
    if (om && n.endsWith('_total')) badCounters.push(`${n}: OpenMetrics names a counter family without _total`);
    for (const s of f.samples) {
      if (om && !s.name.endsWith('_total') && !s.name.endsWith('_created')) badCounters.push(`${s.name}: a counter sample without _total`);
      if (!(s.value >= 0)) badCounters.push(`${s.name}: counter value ${s.value}`);
    }
  }
  check(`${fmt}: counters end in _total${om ? ' (samples; families without)' : ''}, only counters do, none negative`, badCounters.length === 0, badCounters);

  const seen = new Map();
  const dups = [];
  for (const s of P.samples) {
    if (seen.has(s.key)) dups.push(`line ${s.line}: the series of line ${seen.get(s.key)} again`);
    else seen.set(s.key, s.line);
  }
  check(`${fmt}: no series twice`, dups.length === 0, dups);

  const badLabels = [];
  for (const s of P.samples) {
    for (const [k, v] of Object.entries(s.labels)) {
      if (!LABEL.test(k) || k.startsWith('__')) badLabels.push(`${s.name}: label name ${k}`);
      if (clientAddresses.has(v) || v.includes(FAKE_CLIENT) || v.includes(FAKE_HOST)) badLabels.push(`${s.name}{${k}="${v}"}: a client's address or Host`);
      else if (/\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\]/i.test(v) && !serverAddresses.includes(v)) badLabels.push(`${s.name}{${k}="${v}"}: an address that is no server's`);
    }
  }
  // Also no client port as a bare label value (a client's port alone is as unbounded as its address).
  const clientPorts = new Set([...clientAddresses].map((a) => a.split(':').at(-1)));
  for (const s of P.samples) for (const [k, v] of Object.entries(s.labels)) if (clientPorts.has(v)) badLabels.push(`${s.name}{${k}="${v}"}: a client's port`);
  check(`${fmt}: label names valid; no label value holds a client address (${clientAddresses.size} clients)`, badLabels.length === 0, badLabels);

  // No family's sample names may be another's (OpenMetrics: a gauge foo_created beside a counter foo).
  const sampleNames = (n, type) =>
    ({
      counter: om ? [`${n}_total`, `${n}_created`] : [n],
      histogram: [`${n}_bucket`, `${n}_sum`, `${n}_count`, `${n}_created`],
      gaugehistogram: [`${n}_bucket`, `${n}_gsum`, `${n}_gcount`],
      summary: [n, `${n}_sum`, `${n}_count`, `${n}_created`],
      info: [`${n}_info`],
    })[type] ?? [n];
  const owner = new Map();
  const clashes = [];
  for (const [n, f] of P.families) {
    for (const sn of sampleNames(n, f.type)) {
      if (owner.has(sn)) clashes.push(`${sn}: a sample name of both ${owner.get(sn)} and ${n}`);
      else owner.set(sn, n);
    }
  }
  check(`${fmt}: no family's sample names clash with another family's`, clashes.length === 0, clashes);

  // Every frontend (server, backend) exposes the same label sets in a family: a series that appears only
  // at its first event loses that event to rate() and increase().
  const uneven = [];
  for (const [n, f] of P.families) {
    const scopes = new Map();
    for (const s of f.samples) {
      const { frontend, backend, server, le, ...rest } = s.labels;
      if (frontend === undefined && backend === undefined) continue;
      const scope = frontend !== undefined ? `frontend=${frontend}` : server !== undefined ? `server=${backend}/${server}` : `backend=${backend}`;
      const set = scopes.get(scope) ?? new Set();
      scopes.set(scope, set);
      set.add(`${s.name}${JSON.stringify(Object.entries(rest).sort())}`);
    }
    const all = new Set([...scopes.values()].flatMap((x) => [...x]));
    for (const [scope, set] of scopes) {
      const missing = [...all].filter((k) => !set.has(k));
      if (missing.length) uneven.push(`${n}: ${scope} lacks ${missing.map((k) => k.replace(/^[^[]*/, '')).join(' ')}`);
    }
  }
  warnCheck(`${fmt}: every frontend, backend and server exposes the same label sets in each family`, uneven.length === 0, uneven);

  if (om) {
    // OpenMetrics: le values in the canonical rendering (Go's %g, with .0 when it has no point or exponent).
    const odd = new Set();
    for (const s of P.samples) {
      const le = s.labels.le;
      if (!s.name.endsWith('_bucket') || le === undefined) continue;
      const want = canonical(le === '+Inf' ? Infinity : Number(le));
      if (le !== want) odd.add(`le="${le}" should be le="${want}"`);
    }
    warnCheck(`${fmt}: histogram le values in the canonical rendering (spec: "Canonical Numbers")`, odd.size === 0, [...odd]);
  }

  const histProblems = [];
  let histSeries = 0;
  for (const [n, f] of P.families) {
    if (f.type !== 'histogram') continue;
    const groups = new Map();
    for (const s of f.samples) {
      const { le, ...rest } = s.labels;
      const key = JSON.stringify(Object.entries(rest).sort());
      const g = groups.get(key) ?? { labels: rest, buckets: [], sum: null, count: null };
      groups.set(key, g);
      if (s.name === `${n}_bucket`) {
        if (le === undefined) histProblems.push(`line ${s.line}: a bucket without le`);
        else g.buckets.push({ le: le === '+Inf' ? Infinity : Number(le), raw: le, value: s.value, line: s.line });
      } else if (s.name === `${n}_sum`) g.sum = s.value;
      else if (s.name === `${n}_count`) g.count = s.value;
    }
    for (const g of groups.values()) {
      histSeries++;
      const at = `${n}${JSON.stringify(g.labels)}`;
      if (g.buckets.length === 0) histProblems.push(`${at}: no buckets`);
      if (g.count === null) histProblems.push(`${at}: no _count`);
      if (g.sum === null) histProblems.push(`${at}: no _sum`);
      for (let k = 0; k < g.buckets.length; k++) {
        const b = g.buckets[k];
        if (Number.isNaN(b.le)) histProblems.push(`line ${b.line}: le="${b.raw}" is not a number`);
        if (k > 0 && !(b.le > g.buckets[k - 1].le)) histProblems.push(`line ${b.line}: le ${b.raw} not above the bucket before`);
        if (k > 0 && b.value < g.buckets[k - 1].value) histProblems.push(`line ${b.line}: ${b.value} below the bucket before (${g.buckets[k - 1].value}): not cumulative`);
      }
      const last = g.buckets.at(-1);
      if (last && last.le !== Infinity) histProblems.push(`${at}: the last bucket is le="${last.raw}", not +Inf`);
      if (last && g.count !== null && last.value !== g.count) histProblems.push(`${at}: +Inf bucket ${last.value} != _count ${g.count}`);
      if (g.count === 0 && g.sum !== 0) histProblems.push(`${at}: _count 0 but _sum ${g.sum}`);
    }
  }
  check(`${fmt}: histograms cumulative, end in +Inf equal to _count (${histSeries} series)`, histSeries > 0 && histProblems.length === 0, histProblems);
}

// Both formats hold the same series (OpenMetrics names counter families without _total, samples alike).
{
  // A bucket bound is the same series however it is written ("1" in text, "1.0" in OpenMetrics).
  const keys = (P) => new Set(P.samples.map((s) => s.key.replace(/\["le","([^"]+)"\]/, (_, le) => `["le","${le === '+Inf' ? le : Number(le)}"]`)));
  const a = keys(T);
  const b = keys(O);
  const onlyText = [...a].filter((k) => !b.has(k));
  const onlyOpen = [...b].filter((k) => !a.has(k));
  check('text and OpenMetrics hold the same series', onlyText.length === 0 && onlyOpen.length === 0, [...onlyText.map((k) => `only in text: ${k}`), ...onlyOpen.map((k) => `only in OpenMetrics: ${k}`)]);
  const typesDiffer = [...T.families].filter(([n, f]) => (O.families.get(f.type === 'counter' ? n.replace(/_total$/, '') : n)?.type ?? null) !== f.type).map(([n]) => n);
  check('text and OpenMetrics give each family the same TYPE', typesDiffer.length === 0, typesDiffer);
}

// The traffic shows.
{
  const v = (name, labels = {}) =>
    T.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, x]) => s.labels[k] === x)).reduce((a, s) => a + s.value, 0);
  const want = [
    ['ffi_proxy_frontend_requests_total{frontend="web"} >= 27', v('ffi_proxy_frontend_requests_total', { frontend: 'web' }) >= 27],
    ['ffi_proxy_frontend_responses_total{frontend="web",code="2xx"} == 20', v('ffi_proxy_frontend_responses_total', { frontend: 'web', code: '2xx' }) === 20],
    ['ffi_proxy_frontend_responses_total{frontend="web",code="5xx"} == 4', v('ffi_proxy_frontend_responses_total', { frontend: 'web', code: '5xx' }) === 4],
    ['ffi_proxy_frontend_responses_total{frontend="web",code="4xx"} >= 4 (3 404s, a 400)', v('ffi_proxy_frontend_responses_total', { frontend: 'web', code: '4xx' }) >= 4],
    ['ffi_proxy_frontend_connections_total{frontend="raw"} == 6', v('ffi_proxy_frontend_connections_total', { frontend: 'raw' }) === 6],
    ['ffi_proxy_frontend_bytes_in_total{frontend="raw"} > 0', v('ffi_proxy_frontend_bytes_in_total', { frontend: 'raw' }) > 0],
    [`ffi_proxy_server_connect_errors_total{server="127.0.0.1:${closedPort}"} > 0`, v('ffi_proxy_server_connect_errors_total', { server: `127.0.0.1:${closedPort}` }) > 0],
    ['ffi_proxy_backend_retries_total{backend="app"} > 0', v('ffi_proxy_backend_retries_total', { backend: 'app' }) > 0],
    ['ffi_proxy_frontend_request_duration_seconds_count{frontend="web"} >= 27', v('ffi_proxy_frontend_request_duration_seconds_count', { frontend: 'web' }) >= 27],
    ['ffi_proxy_server_first_byte_seconds_count{server="app1"} >= 27', v('ffi_proxy_server_first_byte_seconds_count', { server: 'app1' }) >= 27],
    ['ffi_proxy_server_up{server="app1"} == 1', v('ffi_proxy_server_up', { server: 'app1' }) === 1],
    ['process_resident_memory_bytes > 0', v('process_resident_memory_bytes') > 0],
  ];
  const missing = want.filter(([, ok]) => !ok).map(([what]) => `not so: ${what}`);
  check('the traffic sent shows in the counters', missing.length === 0, missing);
}

if (failed > 0) console.log(`scrapes kept in ${work}`);
else rmSync(work, { recursive: true, force: true });
if (warned > 0) console.log(`${warned} warning${warned === 1 ? '' : 's'} (--strict makes them failures)`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
