// docs/grafana-dashboard.json: an importable Grafana dashboard (title, uid, a Prometheus data source to
// choose, the frontend/backend/server variables, panels with queries), whose every metric is one the proxy
// really exports: each ffi_proxy_... and process_... name in its PromQL is checked against the families of
// a live scrape of /metrics, with its type (rate() of counters and histogram parts, never of gauges) and
// the labels its selectors, `by` clauses and legends use. Needs neither Grafana nor promtool.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { start } from '../../dist/index.js';

type Target = { expr?: string; refId?: string; format?: string; legendFormat?: string; datasource?: { type?: string; uid?: string } };
type Panel = {
  id?: number;
  type: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  panels?: Panel[];
};
type Variable = { name: string; type: string; query?: unknown; definition?: string; datasource?: { uid?: string } };
type Dashboard = {
  title?: string;
  uid?: string;
  schemaVersion?: number;
  __inputs?: { name: string; type: string; pluginId: string }[];
  panels?: Panel[];
  templating?: { list?: Variable[] };
};

const file = fileURLToPath(new URL('../../docs/grafana-dashboard.json', import.meta.url));
const dash = JSON.parse(readFileSync(file, 'utf8')) as Dashboard;

/** Every panel, rows' nested panels included. */
const allPanels = (dash.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
const queryPanels = allPanels.filter((p) => p.type !== 'row');
const variables = dash.templating?.list ?? [];
const variableQuery = (v: Variable) => (typeof v.query === 'string' ? v.query : ((v.query as { query?: string } | undefined)?.query ?? v.definition ?? ''));

/** The PromQL of the dashboard: each panel target's, and each query variable's, with where it is. */
const exprs: { where: string; expr: string; legend?: string }[] = [
  ...queryPanels.flatMap((p) => (p.targets ?? []).map((x) => ({ where: `panel "${p.title}" ${x.refId}`, expr: x.expr ?? '', legend: x.legendFormat }))),
  ...variables.filter((v) => v.type === 'query').map((v) => ({ where: `variable ${v.name}`, expr: variableQuery(v) })),
];

/** The data sources the dashboard may name: its datasource variable, its import inputs. */
function dataSourceRefs(): Set<string> {
  const refs = new Set<string>();
  for (const v of variables) if (v.type === 'datasource' && v.query === 'prometheus') refs.add(`\${${v.name}}`).add(`$${v.name}`);
  for (const i of dash.__inputs ?? []) if (i.type === 'datasource' && i.pluginId === 'prometheus') refs.add(`\${${i.name}}`);
  return refs;
}

t.test('it is a Grafana dashboard that asks for its Prometheus data source', async (t) => {
  t.type(dash.title, 'string');
  t.ok(dash.title, 'a title');
  t.match(dash.uid, /^[A-Za-z0-9_-]{1,40}$/, 'a uid Grafana accepts');
  t.ok(typeof dash.schemaVersion === 'number' && dash.schemaVersion >= 36 && dash.schemaVersion <= 41, `schemaVersion ${dash.schemaVersion}`);
  const refs = dataSourceRefs();
  t.ok(refs.size > 0, 'a ${DS_...} import input or a datasource variable of type prometheus');
  const dsInput = (dash.__inputs ?? []).find((i) => i.type === 'datasource');
  if (dsInput) t.equal(dsInput.pluginId, 'prometheus', 'the import input is a Prometheus data source');

  t.ok(queryPanels.length >= 10, `${queryPanels.length} panels`);
  const ids = allPanels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of queryPanels) {
    t.ok(p.title, `panel ${p.id} has a title`);
    t.ok(p.targets && p.targets.length > 0 && p.targets.every((x) => typeof x.expr === 'string' && x.expr.length > 0), `"${p.title}" has queries`);
    t.ok(p.datasource?.uid && refs.has(p.datasource.uid), `"${p.title}" uses the chosen data source (${p.datasource?.uid})`);
    for (const x of p.targets ?? []) if (x.datasource) t.ok(x.datasource.uid && refs.has(x.datasource.uid), `"${p.title}" ${x.refId}: the chosen data source`);
    const g = p.gridPos;
    t.ok(g && g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0, `"${p.title}" fits the 24-column grid`);
    t.equal(new Set((p.targets ?? []).map((x) => x.refId)).size, (p.targets ?? []).length, `"${p.title}": refIds unique`);
  }

  for (const name of ['frontend', 'backend', 'server']) {
    const v = variables.find((x) => x.name === name);
    t.ok(v, `a ${name} variable`);
    if (!v) continue;
    t.equal(v.type, 'query');
    t.match(variableQuery(v), new RegExp(`^label_values\\((ffi_proxy_\\w+)(\\{.*\\})?,\\s*${name}\\)$`), `${name}: label_values of an ffi_proxy metric`);
    t.ok(v.datasource?.uid && refs.has(v.datasource.uid), `${name}: the chosen data source`);
    t.ok(exprs.some((e) => e.expr.includes(`$${name}`)), `$${name} is used`);
  }

  const heatmaps = queryPanels.filter((p) => p.type === 'heatmap');
  t.ok(heatmaps.length > 0, 'a heatmap');
  for (const p of heatmaps) t.ok(p.targets?.every((x) => x.format === 'heatmap' && /_bucket\b/.test(x.expr ?? '')), `"${p.title}": _bucket series, format heatmap`);
  t.ok(exprs.some((e) => /histogram_quantile\(/.test(e.expr) && /ffi_proxy_frontend_request_duration_seconds_bucket/.test(e.expr)), 'request-duration percentiles');
  t.ok(exprs.some((e) => /histogram_quantile\(/.test(e.expr) && /ffi_proxy_server_first_byte_seconds_bucket/.test(e.expr)), 'first-byte percentiles');
  for (const e of exprs) t.notMatch(e.expr, /\[\d+[smh]\]/, `${e.where}: ranges are $__rate_interval, not fixed`);
});

type Family = { type: string; labels: Set<string> };

/** The families of a text-format (0.0.4) scrape: name -> type and the label names its samples carry. */
function families(text: string): Map<string, Family> {
  const out = new Map<string, Family>();
  for (const line of text.split('\n')) {
    const m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m) out.set(m[1], { type: m[2], labels: new Set() });
  }
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (!m) continue;
    const name = m[1];
    const fam = out.get(name) ?? out.get(name.replace(/_(bucket|sum|count)$/, ''));
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) fam?.labels.add(l[1]);
  }
  return out;
}

t.test("every metric the dashboard queries is one a live proxy exports, used as its type allows", async (t) => {
  const proxy = await start({ listen: '127.0.0.1:0', mode: 'http', admin: '127.0.0.1:0', workers: 1, logLevel: 'silent' });
  t.teardown(() => proxy.close(0));
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`http://127.0.0.1:${proxy.port}/dashboard-test/${i}`, { headers: { connection: 'close' } });
    await r.arrayBuffer();
  }
  const a = proxy.admin;
  if (!a || a.family === 'unix') throw new Error('no admin endpoint');
  const res = await fetch(`http://${a.host}:${a.port}/metrics`);
  t.equal(res.status, 200);
  const fams = families(await res.text());
  t.ok(fams.has('ffi_proxy_frontend_request_duration_seconds'), 'the scrape has the histograms');

  // Labels any series has once Prometheus scraped it, beside its own.
  const targetLabels = ['job', 'instance'];
  const used = new Set<string>();
  for (const { where, expr, legend } of exprs) {
    const names = [...expr.matchAll(/\b((?:ffi_proxy|process)_[a-zA-Z0-9_]+)/g)];
    t.ok(names.length > 0, `${where} queries an ffi_proxy or process metric`);
    const exprLabels = new Set(targetLabels);
    for (const m of names) {
      const name = m[1];
      const base = name.replace(/_(bucket|sum|count)$/, '');
      const fam = fams.get(name) ?? (base !== name && fams.get(base)?.type === 'histogram' ? fams.get(base) : undefined);
      const family = fams.has(name) ? name : base;
      used.add(family);
      if (!t.ok(fam, `${where}: ${name} is exported`)) continue;
      for (const l of fam!.labels) exprLabels.add(l);
      if (name.endsWith('_bucket')) exprLabels.add('le');

      // rate()/increase() of counters and histogram parts only; counters and buckets only through them.
      // A variable's label_values() reads labels, not values: it may name any family.
      const inRate = /\b(rate|irate|increase)\(\s*$/.test(expr.slice(0, m.index));
      const cumulative = fam!.type === 'counter' || (fam!.type === 'histogram' && name !== family);
      if (inRate) t.ok(cumulative, `${where}: rate/increase of ${name}, a ${fam!.type}`);
      else if (!/^label_values\(/.test(expr)) t.ok(!cumulative, `${where}: ${name}, a ${fam!.type}, read without rate/increase`);

      // The labels its selector matches on exist.
      const sel = /^\{([^}]*)\}/.exec(expr.slice(m.index! + name.length));
      for (const mm of (sel?.[1] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) {
        const label = mm[1];
        const known = fam!.labels.has(label) || targetLabels.includes(label) || (label === 'le' && name.endsWith('_bucket'));
        t.ok(known, `${where}: ${name} has a label ${label}`);
      }
    }
    // by (...) / on (...) clauses and {{legend}} fields name labels some metric of the expression has.
    for (const clause of expr.matchAll(/\b(?:by|on|without|ignoring)\s*\(([^)]*)\)/g)) {
      for (const label of clause[1].split(',').map((s) => s.trim()).filter(Boolean)) t.ok(exprLabels.has(label), `${where}: grouping label ${label} exists`);
    }
    const lv = /^label_values\(.*,\s*(\w+)\)$/.exec(expr);
    if (lv) t.ok(exprLabels.has(lv[1]), `${where}: lists label ${lv[1]}, which exists`);
    for (const f of (legend ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)) t.ok(exprLabels.has(f[1]), `${where}: legend label ${f[1]} exists`);
  }
  // The panels the brief asks for are there.
  for (const family of [
    'ffi_proxy_frontend_requests_total',
    'ffi_proxy_frontend_connections_total',
    'ffi_proxy_frontend_responses_total',
    'ffi_proxy_frontend_terminations_total',
    'ffi_proxy_frontend_request_duration_seconds',
    'ffi_proxy_server_first_byte_seconds',
    'ffi_proxy_frontend_connections_active',
    'ffi_proxy_frontend_bytes_in_total',
    'ffi_proxy_frontend_bytes_out_total',
    'ffi_proxy_server_up',
    'ffi_proxy_server_state',
    'ffi_proxy_server_health_transitions_total',
    'ffi_proxy_server_connect_errors_total',
    'ffi_proxy_server_retries_total',
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
    'process_open_fds',
  ]) {
    t.ok(used.has(family), `the dashboard shows ${family}`);
  }
});
