// The config file: YAML and JSON text parsed for real into a ProxyPlan, and every kind of problem reported
// as `FILE:LINE: PATH: WHAT` at the right line, all of them in one pass, in document order. Names resolve
// through a stand-in resolver (localhost only), so no test depends on DNS.
import t, { type Test } from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, describePlan, loadConfigFile, parseConfig, planFromDocument } from '../../dist/control/config-file.js';
import { ProxyError } from '../../dist/sys/index.js';
import type { Address, AddressSpec } from '../../dist/sys/index.js';

const resolve = async (spec: AddressSpec, role: string): Promise<Address> => {
  if (spec.family !== 'name') return spec;
  if (spec.host === 'localhost') return { family: 'ipv4', host: '127.0.0.1', port: spec.port };
  throw new Error(`${role} ${spec.host}:${spec.port}: cannot resolve '${spec.host}' (ENOTFOUND)`);
};
const opts = { resolve };

/** The problems parsing `text` reports (and that it is a ConfigError whose message is the first). */
async function problems(t: Test, text: string, file = 'ffi-proxy.yaml'): Promise<string[]> {
  const e = await parseConfig(text, file, opts).then(
    () => null,
    (err: unknown) => err,
  );
  t.ok(e instanceof ConfigError, 'a ConfigError');
  const c = e as ConfigError;
  t.equal(c.message, c.problems[0], 'its message is the first problem');
  return c.problems;
}

const EXAMPLE = {
  frontends: [
    {
      name: 'web',
      listen: '127.0.0.1:8080',
      mode: 'http',
      backend: 'app',
      routes: [{ host: 'api.example.com', path: '/v2/', backend: 'api' }],
    },
    { name: 'db', listen: '127.0.0.1:6432', mode: 'tcp', backend: 'pg' },
  ],
  backends: [
    {
      name: 'app',
      balance: 'round-robin',
      servers: ['127.0.0.1:9001', { address: '127.0.0.1:9002', weight: 2 }, { address: 'unix:/run/app.sock', backup: true }],
      health: { http: '/health', interval: '2s', rise: 2, fall: 3 },
    },
    { name: 'api', servers: ['127.0.0.1:9100'] },
    { name: 'pg', balance: 'least-conn', servers: ['127.0.0.1:5432', '127.0.0.1:5433'], health: { tcp: true } },
  ],
};

const EXAMPLE_YAML = `# the issue's example, as YAML
frontends:
  - name: web
    listen: 127.0.0.1:8080
    mode: http
    backend: app
    routes:
      - { host: api.example.com, path: /v2/, backend: api }
  - name: db
    listen: 127.0.0.1:6432
    mode: tcp
    backend: pg
backends:
  - name: app
    balance: round-robin
    servers:
      - 127.0.0.1:9001
      - address: 127.0.0.1:9002
        weight: 2
      - address: unix:/run/app.sock
        backup: true
    health: { http: /health, interval: 2s, rise: 2, fall: 3 }
  - name: api
    servers: [127.0.0.1:9100]
  - name: pg
    balance: least-conn
    servers: [127.0.0.1:5432, 127.0.0.1:5433]
    health:
      tcp: true
`;

const ip = (host: string, port: number) => ({ family: 'ipv4', host, port });
const FRONTEND_DEFAULTS = {
  splice: 'auto',
  acceptProxy: false,
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  backendTimeoutMs: 30_000,
  tunnelTimeoutMs: 600_000,
  maxHeaderSize: 16384,
  maxBodySize: 0,
  forwardedHeaders: true,
  accessLog: null,
  accessLogFormat: 'haproxy',
  toxics: [],
};
const EXAMPLE_PLAN = {
  frontends: [
    {
      name: 'web',
      listen: ip('127.0.0.1', 8080),
      mode: 'http',
      backend: 0,
      routes: [{ host: 'api.example.com', path: '/v2/', backend: 1, stripPrefix: false }],
      ...FRONTEND_DEFAULTS,
    },
    { name: 'db', listen: ip('127.0.0.1', 6432), mode: 'tcp', backend: 2, routes: [], ...FRONTEND_DEFAULTS },
  ],
  backends: [
    {
      name: 'app',
      balance: 'round-robin',
      servers: [
        { id: 0, name: '127.0.0.1:9001', address: ip('127.0.0.1', 9001), weight: 1, backup: false },
        { id: 1, name: '127.0.0.1:9002', address: ip('127.0.0.1', 9002), weight: 2, backup: false },
        { id: 2, name: 'unix:/run/app.sock', address: { family: 'unix', path: '/run/app.sock' }, weight: 1, backup: true },
      ],
      health: { kind: 'http', path: '/health', intervalMs: 2000, timeoutMs: 2000, rise: 2, fall: 3 },
      sendProxy: 0,
      retries: 3,
    },
    {
      name: 'api',
      balance: 'round-robin',
      servers: [{ id: 3, name: '127.0.0.1:9100', address: ip('127.0.0.1', 9100), weight: 1, backup: false }],
      health: null,
      sendProxy: 0,
      retries: 3,
    },
    {
      name: 'pg',
      balance: 'least-conn',
      servers: [
        { id: 4, name: '127.0.0.1:5432', address: ip('127.0.0.1', 5432), weight: 1, backup: false },
        { id: 5, name: '127.0.0.1:5433', address: ip('127.0.0.1', 5433), weight: 1, backup: false },
      ],
      health: { kind: 'tcp', path: '', intervalMs: 2000, timeoutMs: 2000, rise: 2, fall: 3 },
      sendProxy: 0,
      retries: 3,
    },
  ],
  workers: availableParallelism(),
  processes: 1,
  drainTimeoutMs: 10_000,
  logLevel: 'info',
  maxConnections: null,
  join: false,
  admin: null,
  adminToken: null,
};

t.test("the issue's example (JSON) becomes the expected plan: indices, weights, backup, health defaults, times in ms", async (t) => {
  const plan = await parseConfig(JSON.stringify(EXAMPLE, null, 2), 'ffi-proxy.json', opts);
  t.strictSame(plan, EXAMPLE_PLAN);
});

t.test('the same document as YAML, as one-line JSON and as an object gives the same plan', async (t) => {
  t.strictSame(await parseConfig(EXAMPLE_YAML, 'ffi-proxy.yaml', opts), EXAMPLE_PLAN, 'YAML');
  t.strictSame(await parseConfig(JSON.stringify(EXAMPLE), 'x.json', opts), EXAMPLE_PLAN, 'JSON on one line');
  t.strictSame(await planFromDocument(EXAMPLE, 'config', opts), EXAMPLE_PLAN, 'object');
});

t.test('top-level defaults are inherited, and a frontend or backend key overrides them', async (t) => {
  const plan = await parseConfig(
    `workers: 3
processes: 2
drain-timeout: 0
log-level: debug
max-connections: 1000
splice: off
accept-proxy: true
header-timeout: 5s
idle-timeout: 2m
backend-timeout: 1.5
tunnel-timeout: 0
max-header-size: 8kb
max-body-size: 1m
forwarded-headers: false
balance: least-conn
send-proxy: v2
retries: 1
frontends:
  - { name: a, listen: "localhost:8000", mode: http, backend: one }
  - name: b
    listen: "[::1]:8001"
    mode: http
    backend: two
    splice: on
    accept-proxy: false
    header-timeout: 500ms
    idle-timeout: 1h
    backend-timeout: 30
    tunnel-timeout: 10m
    max-header-size: 2048
    max-body-size: 0
    forwarded-headers: true
backends:
  - { name: one, servers: ["localhost:9001"] }
  - name: two
    balance: random-two
    send-proxy: false
    retries: 0
    servers:
      - { address: "127.0.0.1:9002", name: main, weight: 0 }
    health: { http: /ping, interval: 0.5, timeout: 250ms, rise: 1, fall: 100 }
`,
    'x.yaml',
    opts,
  );
  t.strictSame(
    { ...plan, frontends: [], backends: [] },
    { frontends: [], backends: [], workers: 3, processes: 2, drainTimeoutMs: 0, logLevel: 'debug', maxConnections: 1000, join: false, admin: null, adminToken: null },
    'process-wide settings',
  );
  const [a, b] = plan.frontends;
  t.strictSame(
    a,
    {
      name: 'a',
      listen: ip('127.0.0.1', 8000),
      mode: 'http',
      backend: 0,
      routes: [],
      toxics: [],
      splice: 'off',
      acceptProxy: true,
      headerTimeoutMs: 5000,
      idleTimeoutMs: 120_000,
      backendTimeoutMs: 1500,
      tunnelTimeoutMs: 0,
      maxHeaderSize: 8192,
      maxBodySize: 1024 * 1024,
      forwardedHeaders: false,
      accessLog: null,
      accessLogFormat: 'haproxy',
    },
    'frontend a takes every top-level default',
  );
  t.strictSame(
    b,
    {
      name: 'b',
      listen: { family: 'ipv6', host: '::1', port: 8001 },
      mode: 'http',
      backend: 1,
      routes: [],
      toxics: [],
      splice: 'on',
      acceptProxy: false,
      headerTimeoutMs: 500,
      idleTimeoutMs: 3_600_000,
      backendTimeoutMs: 30_000,
      tunnelTimeoutMs: 600_000,
      maxHeaderSize: 2048,
      maxBodySize: 0,
      forwardedHeaders: true,
      accessLog: null,
      accessLogFormat: 'haproxy',
    },
    'frontend b overrides every one',
  );
  t.strictSame(
    plan.backends,
    [
      {
        name: 'one',
        balance: 'least-conn',
        servers: [{ id: 0, name: 'localhost:9001', address: ip('127.0.0.1', 9001), weight: 1, backup: false }],
        health: null,
        sendProxy: 2,
        retries: 1,
      },
      {
        name: 'two',
        balance: 'random-two',
        servers: [{ id: 1, name: 'main', address: ip('127.0.0.1', 9002), weight: 0, backup: false }],
        health: { kind: 'http', path: '/ping', intervalMs: 500, timeoutMs: 250, rise: 1, fall: 100 },
        sendProxy: 0,
        retries: 0,
      },
    ],
    'backend one inherits balance, send-proxy and retries; two overrides them',
  );
});

t.test('routes: document order, host lower-cased, wildcard, path only, strip-prefix', async (t) => {
  const plan = await planFromDocument(
    {
      frontends: [
        {
          name: 'web',
          listen: '127.0.0.1:0',
          mode: 'http',
          backend: 'app',
          routes: [
            { host: 'API.Example.com', backend: 'api' },
            { host: '*.example.com', path: '/static/', backend: 'app', 'strip-prefix': true },
            { path: '/v2/', backend: 'api', 'strip-prefix': false },
          ],
        },
        // Port 0 twice is fine: each gets its own free port.
        { name: 'web2', listen: '127.0.0.1:0', backend: 'app' },
      ],
      backends: [
        { name: 'app', servers: ['127.0.0.1:1'] },
        { name: 'api', servers: ['127.0.0.1:2'] },
      ],
    },
    'config',
    opts,
  );
  t.strictSame(plan.frontends[0].routes, [
    { host: 'api.example.com', path: null, backend: 1, stripPrefix: false },
    { host: '*.example.com', path: '/static/', backend: 0, stripPrefix: true },
    { host: null, path: '/v2/', backend: 1, stripPrefix: false },
  ]);
  t.equal(plan.frontends[1].mode, 'tcp', 'mode defaults to tcp');
});

t.test('names may be address texts (as a plan made from flags names them); times keep fractions of a ms', async (t) => {
  const plan = await planFromDocument(
    {
      'drain-timeout': '1500.5ms',
      frontends: [{ name: 'default', listen: '[::1]:0', backend: 'unix:/run/app.sock', 'header-timeout': 1.1 }],
      backends: [{ name: 'unix:/run/app.sock', servers: [{ name: '[::1]:9000', address: 'unix:/run/app.sock' }] }],
    },
    'config',
    opts,
  );
  t.equal(plan.drainTimeoutMs, 1500.5);
  t.equal(plan.frontends[0].headerTimeoutMs, 1100, '1.1 s is 1100 ms, not 1100.0000000000002');
  t.equal(plan.frontends[0].backend, 0);
  t.strictSame(plan.backends[0].servers, [{ id: 0, name: '[::1]:9000', address: { family: 'unix', path: '/run/app.sock' }, weight: 1, backup: false }]);
});

t.test('every kind of problem in one file, each at its line, in document order', async (t) => {
  const text = `frontends:
  - name: web
    lisen: 127.0.0.1:8080
    mode: htp
    backend: ap
  - name: web
    listen: 127.0.0.1:99999
    backend: app
    routes:
      - host: api.example.com
        backend: app
  - name: edge
    listen: localhost:8080
    mode: http
    backend: app
    header-timeout: 2x
    routes:
      - backend: app
      - host: API.example.com:8080
        backend: app
      - path: v2
        backend: app
      - host: "*.example.com"
        backend: app
      - host: "*.Example.com"
        backend: app
      - host: a.example.com
        strip-prefix: true
        backend: nope
  - name: other
    listen: 127.0.0.1:8080
    backend: app
backends:
  - name: app
    balance: roundrobin
    send-proxy: true
    retries: 11
    servers:
      - 127.0.0.1:0
      - address: unix:/run/app.sock
        weight: 300
        backup: "yes"
      - 127.0.0.1:9001
      - 127.0.0.1:9001
      - db.internal:5432
      - 42
    health:
      http: health
      interval: 0
      rise: 0
      fal: 3
  - name: empty
    servers: []
    health: { tcp: true, http: /health }
workers: 0
drainTimeoutMs: 5
max-header-size: 64k
splice: true
`;
  const time = 'seconds (10, 0.5) or a string with a unit (500ms, 10s, 2m, 1h)';
  t.strictSame(await problems(t, text), [
    'ffi-proxy.yaml:3: frontends[0].lisen: unknown key (did you mean "listen"?)',
    'ffi-proxy.yaml:4: frontends[0].mode: must be one of tcp, http, not "htp" (did you mean "http"?)',
    'ffi-proxy.yaml:5: frontends[0].backend: no backend named "ap" (did you mean "app"?)',
    'ffi-proxy.yaml:6: frontends[1].name: "web" is already the name of frontends[0]',
    'ffi-proxy.yaml:7: frontends[1].listen: "127.0.0.1:99999" is not a valid address: the port must be a number from 0 to 65535',
    'ffi-proxy.yaml:10: frontends[1].routes: routes need mode: http; this frontend is tcp (the default)',
    `ffi-proxy.yaml:16: frontends[2].header-timeout: must be a time above 0: ${time}; not "2x"`,
    'ffi-proxy.yaml:18: frontends[2].routes[0]: a route needs a host, a path or both',
    'ffi-proxy.yaml:19: frontends[2].routes[1].host: "API.example.com:8080": a route\'s host is matched without its port; write "api.example.com"',
    'ffi-proxy.yaml:21: frontends[2].routes[2].path: must be a path prefix starting with / and without spaces ("/v2/"), not "v2"',
    'ffi-proxy.yaml:25: frontends[2].routes[4]: same host and path as routes[3]: it would never be used',
    'ffi-proxy.yaml:28: frontends[2].routes[5].strip-prefix: needs a path: it removes the matched path prefix',
    'ffi-proxy.yaml:29: frontends[2].routes[5].backend: no backend named "nope"; the backends are app, empty',
    'ffi-proxy.yaml:31: frontends[3].listen: 127.0.0.1:8080 is already where frontends[2] (edge) listens',
    'ffi-proxy.yaml:35: backends[0].balance: must be one of round-robin, least-conn, random-two, hash, not "roundrobin" (did you mean "round-robin"?)',
    'ffi-proxy.yaml:36: backends[0].send-proxy: must be one of v1, v2, or false for none, not true',
    'ffi-proxy.yaml:37: backends[0].retries: must be a whole number from 0 to 10, not 11',
    'ffi-proxy.yaml:39: backends[0].servers[0]: "127.0.0.1:0": a server\'s port must not be 0',
    'ffi-proxy.yaml:41: backends[0].servers[1].weight: must be a whole number from 0 to 256, not 300',
    'ffi-proxy.yaml:42: backends[0].servers[1].backup: must be true or false, not "yes"',
    'ffi-proxy.yaml:44: backends[0].servers[3]: "127.0.0.1:9001" is already the name of servers[2]; give each server its own name',
    "ffi-proxy.yaml:45: backends[0].servers[4]: db.internal:5432: cannot resolve 'db.internal' (ENOTFOUND)",
    'ffi-proxy.yaml:46: backends[0].servers[5]: must be an address (HOST:PORT, [IPv6]:PORT or unix:/path) or a map with address and weight, backup or name; not 42',
    'ffi-proxy.yaml:48: backends[0].health.http: must be the path the check GETs, starting with / and without spaces ("/health"), not "health"',
    `ffi-proxy.yaml:49: backends[0].health.interval: must be a time above 0: ${time}; not 0`,
    'ffi-proxy.yaml:50: backends[0].health.rise: must be a whole number from 1 to 100, not 0',
    'ffi-proxy.yaml:51: backends[0].health.fal: unknown key (did you mean "fall"?)',
    'ffi-proxy.yaml:53: backends[1].servers: must be a non-empty list of servers, not an empty list',
    'ffi-proxy.yaml:54: backends[1].health: takes one of tcp and http, not both',
    'ffi-proxy.yaml:55: workers: must be a whole number from 1 to 256, not 0',
    'ffi-proxy.yaml:56: drainTimeoutMs: unknown key (did you mean "drain-timeout"?)',
    'ffi-proxy.yaml:57: max-header-size: must be a size from 1024 to 32768: bytes, or a string with a unit (16k, 16kb, 1m); not "64k"',
    'ffi-proxy.yaml:58: splice: must be one of on, off, auto, not true',
  ]);
});

t.test('the document itself: missing, empty, or the wrong shape', async (t) => {
  t.strictSame(await problems(t, 'workers: 2\n'), [
    'ffi-proxy.yaml:1: (top): "frontends" is required',
    'ffi-proxy.yaml:1: (top): "backends" is required',
  ]);
  t.strictSame(await problems(t, '# nothing yet\n'), ['ffi-proxy.yaml: (top): the document is empty; it needs frontends and backends']);
  t.strictSame(await problems(t, '- a\n- b\n'), ['ffi-proxy.yaml:1: (top): must be a map with frontends and backends, not a list']);
  t.strictSame(await problems(t, 'frontends:\n  name: web\nbackends: []\n'), [
    'ffi-proxy.yaml:2: frontends: must be a list of frontends, not a map',
    'ffi-proxy.yaml:3: backends: must be a non-empty list of backends, not an empty list',
  ]);
});

t.test('required keys, names, and values of the wrong type', async (t) => {
  const text = `frontends:
  - name: my web
    mode: http
  - name: api
    listen: unix:/run/api.sock
    backend: 7
    routes: { host: a.example.com }
  - name: x
    listen: 127.0.0.1:1
    backend: api
    mode: http
    routes:
      - host: "a b"
        path: /x
        backend: [app]
backends:
  - name: app
    servers:
      - { weight: 2 }
      - { address: 127.0.0.1:1, name: main }
      - { address: 127.0.0.1:2, name: main }
  - servers: [127.0.0.1:3]
    health: { interval: 1e7 }
`;
  t.strictSame(await problems(t, text), [
    'ffi-proxy.yaml:2: frontends[0]: "listen" is required',
    'ffi-proxy.yaml:2: frontends[0]: "backend" is required',
    'ffi-proxy.yaml:2: frontends[0].name: must be a name: a string without spaces, not "my web"',
    'ffi-proxy.yaml:5: frontends[1].listen: must be HOST:PORT or [IPv6]:PORT, not "unix:/run/api.sock": a frontend listens on TCP (unix: is for servers)',
    'ffi-proxy.yaml:6: frontends[1].backend: must be the name of a backend, not 7',
    'ffi-proxy.yaml:7: frontends[1].routes: must be a list of routes, not a map',
    'ffi-proxy.yaml:13: frontends[2].routes[0].host: must be a host name ("api.example.com") or "*.example.com", not "a b"',
    'ffi-proxy.yaml:15: frontends[2].routes[0].backend: must be the name of a backend, not a list',
    'ffi-proxy.yaml:19: backends[0].servers[0]: "address" is required',
    'ffi-proxy.yaml:21: backends[0].servers[2].name: "main" is already the name of servers[1]; give each server its own name',
    // A backend without a name: `x`'s "api" might be that one, so no "no backend named" is reported.
    'ffi-proxy.yaml:22: backends[1]: "name" is required',
    'ffi-proxy.yaml:23: backends[1].health: needs tcp: true or http: "/path"',
    'ffi-proxy.yaml:23: backends[1].health.interval: must be a time of at most 2147483.647s (about 24 days), not 10000000',
  ]);
});

t.test('unknown keys: a suggestion when one is close, else where the key belongs, else the keys accepted', async (t) => {
  const text = `frontends:
  - name: web
    listen: 127.0.0.1:8080
    backends: app
    balance: hash
    colour: blue
backends:
  - name: app
    servers: [127.0.0.1:1]
    listen: 127.0.0.1:2
    health: { tcp: true, intervall: 2s }
servers: []
headerTimeoutMs: 1000
`;
  t.strictSame(await problems(t, text), [
    'ffi-proxy.yaml:4: frontends[0].backends: unknown key (did you mean "backend"?)',
    'ffi-proxy.yaml:5: frontends[0].balance: unknown key here: "balance" belongs at the top level or in a backend',
    'ffi-proxy.yaml:6: frontends[0].colour: unknown key; a frontend takes name, listen, mode, backend, routes, toxics, tls, splice, accept-proxy, header-timeout, idle-timeout, backend-timeout, tunnel-timeout, max-header-size, max-body-size, forwarded-headers, access-log, access-log-format',
    'ffi-proxy.yaml:10: backends[0].listen: unknown key here: "listen" belongs in a frontend',
    'ffi-proxy.yaml:11: backends[0].health.intervall: unknown key (did you mean "interval"?)',
    'ffi-proxy.yaml:12: servers: unknown key here: "servers" belongs in a backend',
    'ffi-proxy.yaml:13: headerTimeoutMs: unknown key (did you mean "header-timeout"?)',
  ]);
});

t.test('process-wide values and health values out of range', async (t) => {
  const text = `processes: 65
log-level: verbose
max-connections: 16777217
drain-timeout: "-1s"
tunnel-timeout: 1d
frontends: [{ name: a, listen: "127.0.0.1:1", backend: b, idle-timeout: 0, max-body-size: "1.5m" }]
backends:
  - name: b
    servers: [127.0.0.1:2]
    health: { tcp: false, timeout: 0s, fall: 101 }
`;
  const time = 'seconds (10, 0.5) or a string with a unit (500ms, 10s, 2m, 1h)';
  t.strictSame(await problems(t, text), [
    'ffi-proxy.yaml:1: processes: must be a whole number from 1 to 64, not 65',
    'ffi-proxy.yaml:2: log-level: must be one of silent, error, warn, info, debug, not "verbose"',
    'ffi-proxy.yaml:3: max-connections: must be a whole number from 1 to 16777216, not 16777217',
    `ffi-proxy.yaml:4: drain-timeout: must be a time of 0 or more: ${time}; not "-1s"`,
    `ffi-proxy.yaml:5: tunnel-timeout: must be a time of 0 or more: ${time}; not "1d"`,
    `ffi-proxy.yaml:6: frontends[0].idle-timeout: must be a time above 0: ${time}; not 0`,
    'ffi-proxy.yaml:6: frontends[0].max-body-size: must be a size of 0 or more: bytes, or a string with a unit (16k, 16kb, 1m); not "1.5m"',
    'ffi-proxy.yaml:10: backends[0].health.tcp: must be true (a check is a connect that succeeds), not false; without checks, leave health out',
    `ffi-proxy.yaml:10: backends[0].health.timeout: must be a time above 0: ${time}; not "0s"`,
    'ffi-proxy.yaml:10: backends[0].health.fall: must be a whole number from 1 to 100, not 101',
  ]);
});

t.test('two frontends on one address, written differently, are one problem; port 0 is not', async (t) => {
  const text = `frontends:
  - { name: a, listen: "[::1]:8080", backend: b }
  - { name: c, listen: "[0:0::1]:8080", backend: b }
  - { name: d, listen: "localhost:9000", backend: b }
  - { name: e, listen: "127.0.0.1:9000", backend: b }
  - { name: f, listen: "127.0.0.1:0", backend: b }
  - { name: g, listen: "127.0.0.1:0", backend: b }
  - { name: h, listen: "nowhere.test:9000", backend: b }
  - { name: i, listen: "[fe80::1%eth0]:9000", backend: b }
backends: [{ name: b, servers: ["127.0.0.1:1"] }]
`;
  t.strictSame(await problems(t, text), [
    'ffi-proxy.yaml:3: frontends[1].listen: [0:0::1]:8080 is already where frontends[0] (a) listens',
    'ffi-proxy.yaml:5: frontends[3].listen: 127.0.0.1:9000 is already where frontends[2] (d) listens',
    "ffi-proxy.yaml:8: frontends[6].listen: nowhere.test:9000: cannot resolve 'nowhere.test' (ENOTFOUND)",
    'ffi-proxy.yaml:9: frontends[7].listen: "[fe80::1%eth0]:9000" is not a valid address: IPv6 zone ids are not supported',
  ]);
});

t.test('a YAML syntax error names its line, and nothing else is reported', async (t) => {
  t.strictSame(await problems(t, 'frontends: []\nbackends: []\nfrontends: []\n'), [
    'ffi-proxy.yaml:3: not valid YAML: the key "frontends" is already in this map',
  ]);
  t.strictSame(await problems(t, 'frontends:\n  - name: web\n\tlisten: 127.0.0.1:1\nbackends: []\n'), [
    'ffi-proxy.yaml:3: not valid YAML: Tabs are not allowed as indentation',
  ]);
  t.strictSame(await problems(t, '{\n  "frontends": [],\n  "backends": [\n}\n', 'ffi-proxy.json'), [
    'ffi-proxy.json:4: not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
    'ffi-proxy.json:4: not valid YAML: Flow map must end with a }',
  ]);
  // A quoted string never closed runs to the end: the last line is named.
  t.strictSame(await problems(t, 'frontends:\n  - name: web\n    listen: "127.0.0.1:8080\nbackends: []\n\n'), [
    'ffi-proxy.yaml:4: not valid YAML: Missing closing "quote',
  ]);
  // An alias to nothing is one problem: its null is not also a missing "frontends", nor a bad workers.
  t.strictSame(await problems(t, 'x: &a [*a]\nfrontends: *nope\nworkers: *nope\n'), [
    'ffi-proxy.yaml:1: (top): "backends" is required',
    'ffi-proxy.yaml:1: x: unknown key; the top level takes frontends, backends, workers, processes, drain-timeout, log-level, max-connections, admin, admin-token, splice, accept-proxy, header-timeout, idle-timeout, backend-timeout, tunnel-timeout, max-header-size, max-body-size, forwarded-headers, access-log, access-log-format, balance, send-proxy, retries',
    'ffi-proxy.yaml:1: x[0]: *a refers to a map or list that contains it',
    'ffi-proxy.yaml:2: frontends: *nope refers to no anchor (&nope)',
    'ffi-proxy.yaml:3: workers: *nope refers to no anchor (&nope)',
  ]);
});

t.test('loadConfigFile reads a file; a missing one is one problem', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ffip-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'ffi-proxy.yaml');
  await writeFile(file, EXAMPLE_YAML);
  t.strictSame(await loadConfigFile(file, opts), EXAMPLE_PLAN);
  const missing = join(dir, 'nope.yaml');
  const e = await loadConfigFile(missing, opts).then(
    () => null,
    (err: unknown) => err,
  );
  t.ok(e instanceof ConfigError);
  t.ok(e instanceof ProxyError, 'a ProxyError');
  t.equal((e as ConfigError).code, 'FFIP_ERR_BAD_CONFIG');
  t.strictSame((e as ConfigError).problems, [`${missing}: cannot read: ENOENT (no such file)`]);
  t.equal((e as ConfigError).message, `${missing}: cannot read: ENOENT (no such file)`);
});

t.test('planFromDocument: problems name the document and no line', async (t) => {
  const doc = {
    backends: [{ name: 'app', servers: ['127.0.0.1:1', { address: 'unix:' }] }],
    frontends: [{ name: 'web', listen: '127.0.0.1:8080', backend: 'api', mode: undefined, splice: 'fast' }],
    drainTimeoutMs: 1000,
  };
  const e = await planFromDocument(doc, undefined, opts).then(
    () => null,
    (err: unknown) => err,
  );
  t.ok(e instanceof ConfigError);
  t.strictSame((e as ConfigError).problems, [
    'config: backends[0].servers[1].address: "unix:" is not a valid address: the unix socket path is empty',
    'config: frontends[0].backend: no backend named "api" (did you mean "app"?)',
    'config: frontends[0].splice: must be one of on, off, auto, not "fast"',
    'config: drainTimeoutMs: unknown key (did you mean "drain-timeout"?)',
  ]);
  const named = await planFromDocument({ frontends: [], backends: [] }, 'reload', opts).then(
    () => null,
    (err: unknown) => err,
  );
  t.strictSame((named as ConfigError).problems, [
    'reload: frontends: must be a non-empty list of frontends, not an empty list',
    'reload: backends: must be a non-empty list of backends, not an empty list',
  ]);
});

t.test("describePlan: what check prints for the issue's example", async (t) => {
  const plan = await parseConfig(EXAMPLE_YAML, 'ffi-proxy.yaml', opts);
  t.equal(
    describePlan(plan),
    [
      `global: workers ${availableParallelism()}, processes 1, drain-timeout 10s, log-level info, max-connections from the open-file limit`,
      'frontend web: listen 127.0.0.1:8080, http, backend app; routes: api.example.com/v2/ -> api',
      '  splice auto, header-timeout 10s, idle-timeout 1m, backend-timeout 30s, tunnel-timeout 10m, max-header-size 16k, max-body-size 0 (no limit), forwarded-headers on',
      'frontend db: listen 127.0.0.1:6432, tcp, backend pg',
      '  splice auto, backend-timeout 30s, tunnel-timeout 10m',
      'backend app: round-robin over 3 servers (1 backup), http health check GET /health every 2s, rise 2, fall 3; retries 3',
      '  server 127.0.0.1:9001',
      '  server 127.0.0.1:9002 weight 2',
      '  server unix:/run/app.sock backup',
      'backend api: round-robin over 1 server, no health check; retries 3',
      '  server 127.0.0.1:9100',
      'backend pg: least-conn over 2 servers, tcp health check every 2s, rise 2, fall 3; retries 3',
      '  server 127.0.0.1:5432',
      '  server 127.0.0.1:5433',
    ].join('\n'),
  );
});

t.test('describePlan: settings away from the defaults', async (t) => {
  const plan = await parseConfig(
    `workers: 2
drain-timeout: 1.5
max-connections: 5000
frontends:
  - name: edge
    listen: localhost:0
    accept-proxy: true
    header-timeout: 3s
    tunnel-timeout: 0
    backend: app
  - name: site
    listen: 127.0.0.1:80
    mode: http
    backend: app
    max-body-size: 10m
    forwarded-headers: false
    routes:
      - { host: "*.example.com", backend: app }
      - { path: /static/, strip-prefix: true, backend: static }
backends:
  - name: app
    balance: hash
    send-proxy: v1
    retries: 0
    servers:
      - { address: localhost:9001, backup: true }
      - { address: 127.0.0.1:9002, name: two, weight: 0 }
    health: { http: /up, interval: 1m, timeout: 500ms, rise: 1, fall: 1 }
  - name: static
    servers: [unix:/run/static.sock]
`,
    'x.yaml',
    opts,
  );
  t.equal(
    describePlan(plan),
    [
      'global: workers 2, processes 1, drain-timeout 1.5s, log-level info, max-connections 5000',
      'frontend edge: listen 127.0.0.1:0, tcp, backend app',
      '  splice auto, accept-proxy, header-timeout 3s, backend-timeout 30s, tunnel-timeout 0 (never)',
      'frontend site: listen 127.0.0.1:80, http, backend app; routes: *.example.com -> app, /static/ -> static (strip prefix)',
      '  splice auto, header-timeout 10s, idle-timeout 1m, backend-timeout 30s, tunnel-timeout 10m, max-header-size 16k, max-body-size 10m, forwarded-headers off',
      'backend app: hash over 2 servers (1 backup), http health check GET /up every 1m, timeout 500ms, rise 1, fall 1; retries 0; send-proxy v1',
      '  server localhost:9001 at 127.0.0.1:9001 backup',
      '  server two at 127.0.0.1:9002 weight 0',
      'backend static: round-robin over 1 server, no health check; retries 3',
      '  server unix:/run/static.sock',
    ].join('\n'),
  );
});

t.test("toxics: Toxiproxy's defaults (name TYPE_STREAM, downstream, toxicity 1, every attribute 0 or ''); HTTP ones with strings", async (t) => {
  const plan = await parseConfig(
    `frontends:
  - name: db
    listen: 127.0.0.1:0
    backend: app
    toxics:
      - { type: latency, attributes: { latency: 100 } }
      - { name: cut, type: limit_data, stream: upstream, toxicity: 0.5, attributes: { bytes: -1 } }
      - { type: slicer }
  - name: web
    listen: 127.0.0.1:0
    mode: http
    backend: app
    toxics:
      - { type: http_error, attributes: { status: 503, body: "down for a while", path: /api/ } }
      - { type: http_request_drop, toxicity: 0 }
backends:
  - name: app
    servers: [127.0.0.1:9001]
`,
    'x.yaml',
    opts,
  );
  t.strictSame(plan.frontends[0].toxics, [
    { id: -1, name: 'latency_downstream', type: 'latency', upstream: false, toxicity: 1, attributes: { latency: 100, jitter: 0 } },
    { id: -1, name: 'cut', type: 'limit_data', upstream: true, toxicity: 0.5, attributes: { bytes: -1 } },
    { id: -1, name: 'slicer_downstream', type: 'slicer', upstream: false, toxicity: 1, attributes: { average_size: 0, size_variation: 0, delay: 0 } },
  ]);
  t.strictSame(plan.frontends[1].toxics, [
    { id: -1, name: 'http_error_downstream', type: 'http_error', upstream: false, toxicity: 1, attributes: { status: 503, body: 'down for a while', path: '/api/' } },
    { id: -1, name: 'http_request_drop_downstream', type: 'http_request_drop', upstream: false, toxicity: 0, attributes: { path: '' } },
  ]);
});

t.test('toxics: every mistake is a problem at its line', async (t) => {
  const text = `frontends:
  - name: db
    listen: 127.0.0.1:8080
    mode: tcp
    backend: app
    toxics:
      - { type: latncy }
      - { type: latency, stream: sideways }
      - { type: latency, name: l, toxicity: 2 }
      - { type: latency, name: l, attributes: { latency: 1.5, jitter: "10" } }
      - { type: bandwidth, attributes: { rate: 10, burst: 2 } }
      - { type: timeout, name: t, colour: red }
      - { name: x }
  - name: web
    listen: 127.0.0.1:8081
    mode: http
    backend: app
    toxics:
      - { type: http_error, name: e, attributes: { status: 500, path: 5 } }
      - { type: latency }
backends:
  - name: app
    servers: [127.0.0.1:9001]
`;
  t.strictSame(await problems(t, text), [
    'ffi-proxy.yaml:7: frontends[0].toxics[0].type: must be one of latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data, noop, http_error, http_head_delay, http_body_limit, http_request_delay, http_request_drop, not "latncy" (did you mean "latency"?)',
    'ffi-proxy.yaml:8: frontends[0].toxics[1].stream: must be one of upstream, downstream, not "sideways"',
    'ffi-proxy.yaml:9: frontends[0].toxics[2].toxicity: must be a number from 0 to 1, not 2',
    'ffi-proxy.yaml:10: frontends[0].toxics[3].name: "l" is already the name of another toxic of this frontend',
    'ffi-proxy.yaml:10: frontends[0].toxics[3].attributes.latency: must be a whole number, not 1.5',
    'ffi-proxy.yaml:10: frontends[0].toxics[3].attributes.jitter: must be a whole number, not "10"',
    'ffi-proxy.yaml:11: frontends[0].toxics[4].attributes.burst: bandwidth has no attribute "burst"; it takes rate',
    'ffi-proxy.yaml:12: frontends[0].toxics[5].colour: unknown key; a toxic takes name, type, stream, toxicity, attributes',
    'ffi-proxy.yaml:13: frontends[0].toxics[6]: "type" is required',
    'ffi-proxy.yaml:19: frontends[1].toxics[0].attributes.path: must be a string, not 5',
    'ffi-proxy.yaml:20: frontends[1].toxics[1].type: toxic type latency acts on the bytes of a TCP proxy: in mode http use the http_* types (http_request_delay, http_head_delay, ...)',
  ]);
});

t.test('toxics: an HTTP toxic on a TCP frontend is refused (it acts on requests)', async (t) => {
  const { start } = await import('../../dist/index.js');
  const config = {
    frontends: [{ name: 'db', listen: '127.0.0.1:0', backend: 'app', toxics: [{ type: 'http_error', attributes: { status: 503 } }] }],
    backends: [{ name: 'app', servers: ['127.0.0.1:9001'] }],
  };
  await t.rejects(start({ config, workers: 1, logLevel: 'silent' }), { message: /http_error acts on HTTP requests: it needs mode http \(this is tcp\)/ });
});
