#!/usr/bin/env node
// `ffi-proxy start ...`: parses flags with yargs, starts the proxy, prints where it listens, and drains on
// SIGINT/SIGTERM. `ffi-proxy toxiproxy ...` runs the toxiproxy server instead (docs/toxiproxy.md), and takes
// toxiproxy-server's own single-dash flags (`-host 0.0.0.0 -port 8474 -config FILE -seed N`). Every failure
// is one line on stderr: exit 2 for a bad flag, address or config, 1 for the rest.

import { readFileSync } from 'node:fs';

const EXIT_USAGE = 2;
const EXIT_FAILURE = 1;

function fail(msg: string, code: number): never {
  process.stderr.write(`ffi-proxy: ${msg}\n`);
  process.exit(code);
}

if (process.platform !== 'linux') fail(`runs on Linux only (this is ${process.platform})`, EXIT_FAILURE);

const { default: yargs } = await import('yargs');
const { hideBin } = await import('yargs/helpers');
const { start, CODES, ProxyError, DEFAULTS, ConfigError, toxiproxy, TOXIPROXY_VERSION } = await import('./index.js');
const { loadConfigFile, describePlan } = await import('./control/config-file.js');
type ProxyPlan = import('./control/plan.js').ProxyPlan;
const { startFleet } = await import('./control/fleet.js');
const { makeSelfSigned, SELF_SIGNED_DAYS } = await import('./control/tls.js');
const { Logger, levelNumber } = await import('./core/log.js');
const { formatAddress } = await import('./sys/index.js');
type StartOptions = import('./index.js').StartOptions;
type LevelName = import('./core/log.js').LevelName;
type Address = import('./index.js').Address;

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

// toxiproxy-server's flags are Go's, one dash and a long name (`-port 8474`, `-host=0.0.0.0`): yargs would
// read `-port` as the short flags p, o, r, t, so they are given to it with two dashes.
const TOXIPROXY_FLAGS = /^-(host|port|config|seed|workers|log-level|proxy-metrics|runtime-metrics|version|help)(=.*)?$/;
const cliArgs = hideBin(process.argv);
const toxiproxyArgs = cliArgs[0] === 'toxiproxy' ? cliArgs.map((a) => (TOXIPROXY_FLAGS.test(a) ? `-${a}` : a)) : null;
if (toxiproxyArgs !== null && toxiproxyArgs.includes('--version')) {
  process.stdout.write(`toxiproxy-server version ${TOXIPROXY_VERSION} (ffi-proxy ${pkg.version})\n`);
  process.exit(0);
}

// yargs reads a lone '-' as a positional argument, not as a flag's value: `--access-log -` (stdout) is
// given to it as `--access-log=-`.
const rawArgs = (toxiproxyArgs ?? cliArgs).flatMap((a, i, all) => (a === '-' && all[i - 1] === '--access-log' ? [] : a === '--access-log' && all[i + 1] === '-' ? ['--access-log=-'] : [a]));
const argv = await yargs(rawArgs)
  .scriptName('ffi-proxy')
  .usage('$0 start [options]: a TCP and HTTP/1.1 reverse proxy on epoll, splice and koffi')
  .command('start', 'run the proxy until SIGINT or SIGTERM (SIGHUP re-reads --config)')
  .command('check', 'check a config file (--config FILE) and print what it would run; exit 2 on a problem')
  .command('top', 'a live terminal view of a running proxy, from its admin endpoint')
  .command('toxiproxy', "a toxiproxy server: toxiproxy-server 2.12's HTTP API for faults on TCP and HTTP proxies (docs/toxiproxy.md)")
  .option('config', {
    type: 'string',
    describe: 'a config file, YAML or JSON: frontends, backends, servers, routes, health checks, toxics (docs/config.md); flags then only set workers, processes, drain-timeout, log-level, join. toxiproxy: a JSON list of proxies, as POST /populate takes them',
  })
  .option('listen', {
    type: 'string',
    default: DEFAULTS.listen,
    describe: 'address to listen on: HOST:PORT or [IPv6]:PORT',
  })
  .option('backend', {
    type: 'string',
    describe: 'where to forward: HOST:PORT, [IPv6]:PORT or unix:/path (default: a built-in demo backend)',
  })
  .option('mode', { choices: ['tcp', 'http'] as const, default: DEFAULTS.mode, describe: 'what to proxy' })
  .option('workers', { type: 'number', describe: 'worker threads, one event loop each (default: CPUs)' })
  .option('processes', {
    type: 'number',
    default: 1,
    describe: 'processes sharing the port (SO_REUSEPORT), each with its workers and its own file limit; supervised',
  })
  .option('splice', {
    choices: ['on', 'off', 'auto'] as const,
    default: DEFAULTS.splice,
    describe: 'zero-copy through pipes: on, off (copy), auto (splice bulk transfers only)',
  })
  .option('drain-timeout', {
    type: 'number',
    default: DEFAULTS.drainTimeoutMs / 1000,
    describe: 'seconds open connections may finish after SIGINT/SIGTERM',
  })
  .option('header-timeout', {
    type: 'number',
    default: DEFAULTS.headerTimeoutMs / 1000,
    describe: 'http: seconds a request head may take to arrive, else 408; also the time a PROXY header may take',
  })
  .option('idle-timeout', {
    type: 'number',
    default: DEFAULTS.idleTimeoutMs / 1000,
    describe: 'http: seconds a kept-alive client may stay silent before it is closed; also the longest pause in a request body, else 408',
  })
  .option('backend-timeout', {
    type: 'number',
    default: DEFAULTS.backendTimeoutMs / 1000,
    describe: 'seconds a backend connect may take (tcp: else the client is closed); http: also the time the backend may take to start answering, else 504, then the longest a response may stall (backend silent, or client not reading) before the client is cut off',
  })
  .option('tunnel-timeout', {
    type: 'number',
    default: DEFAULTS.tunnelTimeoutMs / 1000,
    describe: 'seconds a tcp connection (or an upgraded http one) may go with nothing moving either way before it is closed (0: never)',
  })
  .option('max-header-size', {
    type: 'number',
    default: DEFAULTS.maxHeaderSize,
    describe: 'http: bytes a request head may have, else 431',
  })
  .option('max-body-size', {
    type: 'number',
    default: DEFAULTS.maxBodySize,
    describe: 'http: bytes a request body may have, else 413 (0: no limit)',
  })
  .option('forwarded-headers', {
    type: 'boolean',
    default: DEFAULTS.forwardedHeaders,
    describe: 'http: add X-Forwarded-For/-Proto/-Host (--no-forwarded-headers to turn off)',
  })
  .option('accept-proxy', {
    type: 'boolean',
    default: false,
    describe: 'every client connection starts with a PROXY protocol v1/v2 header (from a load balancer); one without is closed',
  })
  .option('send-proxy', {
    choices: ['v1', 'v2'] as const,
    describe: 'start every backend connection with a PROXY protocol header naming the client',
  })
  .option('join', {
    type: 'boolean',
    default: false,
    describe: 'listen even if another ffi-proxy of this user already listens on the port (to hand over to this one); without it a port in use is an error',
  })
  .option('access-log', {
    type: 'string',
    describe: 'log each HTTP request and TCP connection to FILE (- for stdout), with why it ended; SIGUSR1 reopens the file',
  })
  .option('access-log-format', {
    choices: ['json', 'haproxy', 'combined'] as const,
    describe: 'the access log lines: HAProxy httplog/tcplog, json objects, or nginx combined [default: haproxy]',
  })
  .option('admin', {
    type: 'string',
    describe: 'the admin endpoint (metrics, stats, live connections, status page): HOST:PORT, or off [default: 127.0.0.1:9901 when free]',
  })
  .option('admin-token', {
    type: 'string',
    describe: 'the bearer token the admin endpoint requires (needed when --admin is not a loopback address)',
  })
  .option('tls', {
    type: 'boolean',
    describe: 'terminate TLS: with --tls-cert and --tls-key, with those files; alone, with a self-signed certificate for localhost made at start (docs/tls.md)',
  })
  .option('tls-cert', { type: 'string', describe: 'terminate TLS with this PEM certificate (its chain may follow it); needs --tls-key' })
  .option('tls-key', { type: 'string', describe: "the PEM private key of --tls-cert's certificate, unencrypted" })
  .option('host', { type: 'string', describe: 'toxiproxy: the address the API listens on [default: localhost, i.e. 127.0.0.1]' })
  .option('port', { type: 'number', describe: 'toxiproxy: the port the API listens on (0: any free port) [default: 8474]' })
  .option('seed', { type: 'number', describe: "toxiproxy: seed of the toxics' random draws, for runs that repeat [default: random]" })
  .option('proxy-metrics', { type: 'boolean', hidden: true, describe: "toxiproxy-server's flag: /metrics is always served" })
  .option('runtime-metrics', { type: 'boolean', hidden: true, describe: "toxiproxy-server's flag: accepted, no effect" })
  .option('interval', { type: 'number', describe: 'top: seconds between updates [default: 1]' })
  .option('once', { type: 'boolean', describe: 'top: print one plain-text frame and exit (also when stdout is not a terminal)' })
  .option('log-level', {
    choices: ['silent', 'error', 'warn', 'info', 'debug'] as const,
    default: 'info' as const,
    describe: 'how much to log on stderr',
  })
  .demandCommand(1, 'say what to do: ffi-proxy start, ffi-proxy check --config FILE, ffi-proxy top, or ffi-proxy toxiproxy')
  .strict()
  .version(pkg.version)
  .help()
  .fail((msg, err) => {
    // yargs spreads some messages over lines ("Invalid values:\n  Argument: ..."): keep to one.
    fail((msg ?? err?.message ?? 'bad arguments').replace(/\s*\n\s*/g, ' '), EXIT_USAGE);
  })
  .parseAsync();

// `top` is a client of a running proxy's admin endpoint (src/top/): none of the checks below are its.
if (argv._[0] === 'top') {
  const { runTop } = await import('./top/top.js');
  process.exit(await runTop({ admin: argv.admin, token: argv['admin-token'], interval: argv.interval, once: argv.once }));
}

const args = hideBin(process.argv);
/** The flag was on the command line (not merely its default). */
const given = (flag: string) => (toxiproxyArgs ?? args).some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`) || a === `--no-${flag}`);

if (argv._[0] === 'toxiproxy') process.exit(await runToxiproxy());
for (const flag of ['host', 'port', 'seed', 'proxy-metrics', 'runtime-metrics']) {
  if (given(flag)) fail(`--${flag} is for ffi-proxy toxiproxy`, EXIT_USAGE);
}

if (argv.workers !== undefined && !Number.isFinite(argv.workers)) fail('--workers must be a number', EXIT_USAGE);
if (!Number.isFinite(argv.processes)) fail('--processes must be a number', EXIT_USAGE);
// Times are checked here, in the seconds the user typed; the library's checks speak in milliseconds.
for (const [flag, zero] of [
  ['drain-timeout', true],
  ['header-timeout', false],
  ['idle-timeout', false],
  ['backend-timeout', false],
  ['tunnel-timeout', true],
] as const) {
  const v = argv[flag];
  if (!Number.isFinite(v) || v < 0 || (v === 0 && !zero)) {
    fail(`--${flag} must be a number of seconds ${zero ? 'of 0 or more' : 'above 0'}, not ${String(v)}`, EXIT_USAGE);
  }
}

const command = String(argv._[0]);
if (command !== 'start' && command !== 'check') fail(`unknown command '${command}': say ffi-proxy start, ffi-proxy check --config FILE, ffi-proxy top, or ffi-proxy toxiproxy`, EXIT_USAGE);
const configFile = argv.config;
if (command === 'check') {
  if (configFile === undefined) fail('check needs --config FILE', EXIT_USAGE);
  try {
    process.stdout.write(describePlan(await loadConfigFile(configFile)) + '\n');
    process.exit(0);
  } catch (e) {
    const problems = e instanceof ConfigError ? e.problems : [(e as Error).message];
    for (const p of problems) process.stderr.write(`ffi-proxy: ${p}\n`);
    process.exit(EXIT_USAGE);
  }
}

// With --config the file says what to proxy; beside it only the process's own settings may be given.
const BESIDE_CONFIG = ['config', 'workers', 'processes', 'drain-timeout', 'log-level', 'join', 'admin', 'admin-token'];
let processes = argv.processes;
// The CLI's admin endpoint is on by default, where its port is free (the library's is off).
const adminOptions = { admin: argv.admin, adminToken: argv['admin-token'], adminFallback: 'auto' };
let options: StartOptions;
let selfSigned: import('./control/tls.js').SelfSigned | null = null;
if (configFile !== undefined) {
  const stray = ['listen', 'backend', 'mode', 'splice', 'header-timeout', 'idle-timeout', 'backend-timeout', 'tunnel-timeout', 'max-header-size', 'max-body-size', 'forwarded-headers', 'accept-proxy', 'send-proxy', 'access-log', 'access-log-format', 'tls', 'tls-cert', 'tls-key'].find(given);
  if (stray !== undefined) fail(`--${stray} cannot be given with --config: say it in ${configFile} (only ${BESIDE_CONFIG.slice(1).map((f) => `--${f}`).join(', ')} may be)`, EXIT_USAGE);
  let plan: ProxyPlan;
  try {
    plan = await loadConfigFile(configFile);
  } catch (e) {
    const n = e instanceof ConfigError ? e.problems.length : 1;
    fail(`${(e as Error).message}${n > 1 ? ` (and ${n - 1} more: ffi-proxy check --config ${configFile})` : ''}`, EXIT_USAGE);
  }
  if (!given('processes')) processes = plan.processes;
  options = {
    config: configFile,
    workers: argv.workers,
    drainTimeoutMs: given('drain-timeout') ? argv['drain-timeout'] * 1000 : undefined,
    logLevel: given('log-level') ? argv['log-level'] : undefined,
    join: argv.join,
    ...adminOptions,
  };
} else {
  options = {
    listen: argv.listen,
    backend: argv.backend,
    mode: argv.mode,
    workers: argv.workers,
    splice: argv.splice,
    drainTimeoutMs: argv['drain-timeout'] * 1000,
    logLevel: argv['log-level'],
    headerTimeoutMs: argv['header-timeout'] * 1000,
    idleTimeoutMs: argv['idle-timeout'] * 1000,
    backendTimeoutMs: argv['backend-timeout'] * 1000,
    tunnelTimeoutMs: argv['tunnel-timeout'] * 1000,
    maxHeaderSize: argv['max-header-size'],
    maxBodySize: argv['max-body-size'],
    forwardedHeaders: argv['forwarded-headers'],
    acceptProxy: argv['accept-proxy'],
    sendProxy: argv['send-proxy'],
    join: argv.join,
    accessLog: argv['access-log'],
    accessLogFormat: argv['access-log-format'],
    tls: argv.tls,
    tlsCert: argv['tls-cert'],
    tlsKey: argv['tls-key'],
    ...adminOptions,
  };
  // --tls alone: the certificate is made here, so that the banner can say where it is (the library's
  // `tls: true` makes the same one, silently).
  if (argv.tls === true && argv['tls-cert'] === undefined && argv['tls-key'] === undefined) {
    try {
      selfSigned = makeSelfSigned();
    } catch (e) {
      fail(`--tls: cannot make a self-signed certificate: ${(e as Error).message}`, EXIT_FAILURE);
    }
    options.tlsCert = selfSigned.cert;
    options.tlsKey = selfSigned.key;
  }
}

type Running = {
  address: Address;
  backend: Address;
  demoBackend: boolean;
  workers: number;
  capacityPerWorker: number;
  listening(): { name: string; address: Address }[];
  admin?: Address | null;
  reopenLogs?: () => void;
  reload(config: string): Promise<void>;
  close(drainTimeoutMs?: number): Promise<void>;
  stopNow(): Promise<void>;
};

let proxy: Running;
let shape: string;
try {
  if (processes === 1) {
    const p = await start(options);
    proxy = { ...p, reload: (c) => p.reload(c), close: () => p.close(), stopNow: () => p.close(0) };
    shape = `${p.workers} worker(s)`;
  } else {
    const log = new Logger(levelNumber(argv['log-level']), 'fleet');
    const f = await startFleet(options, processes, log);
    // A second signal: the children stop at once (SIGKILL), and the parent goes with them.
    proxy = { ...f, reload: (c) => f.reload(c), close: () => f.close(), stopNow: async () => f.kill() };
    shape = `${f.processes} processes × ${f.workers} worker(s)`;
  }
} catch (e) {
  if (e instanceof ProxyError) {
    const usage = e.code === CODES.BAD_OPTION || e.code === CODES.BAD_ADDRESS || e.code === CODES.BAD_CONFIG;
    fail(e.message, usage ? EXIT_USAGE : EXIT_FAILURE);
  }
  fail(`could not start: ${(e as Error).stack ?? e}`, EXIT_FAILURE);
}

const where = formatAddress(proxy.address);
const lines =
  configFile === undefined
    ? [`ffi-proxy ${pkg.version} listening on ${where} (${argv.mode} mode${options.tlsCert === undefined ? '' : ' over TLS'}, ${shape}, up to ${proxy.capacityPerWorker} connections each worker)`]
    : [
        `ffi-proxy ${pkg.version} running ${configFile} (${shape}, up to ${proxy.capacityPerWorker} connections each worker)`,
        ...proxy.listening().map((l) => `frontend ${l.name}: listening on ${formatAddress(l.address)}`),
      ];
if (configFile !== undefined) {
  // The file names its backends: `ffi-proxy check --config FILE` prints them.
} else if (proxy.demoBackend) {
  const curl = options.tlsCert === undefined ? `curl http://${where}/` : `curl ${selfSigned ? `--cacert ${selfSigned.cert}` : '-k'} https://${where}/`;
  lines.push(`backend: the built-in demo backend on ${formatAddress(proxy.backend)}; try: ${curl}`);
  lines.push('to proxy your own service: npx ffi-proxy start --backend HOST:PORT');
} else {
  lines.push(`backend: ${formatAddress(proxy.backend)}`);
}
if (selfSigned !== null) {
  lines.push(`tls: a self-signed certificate for localhost, 127.0.0.1 and ::1 (valid ${SELF_SIGNED_DAYS} days), made for this run: ${selfSigned.cert}`);
  lines.push(`  SHA-256 fingerprint ${selfSigned.fingerprint256}`);
} else if (options.tlsCert !== undefined) {
  lines.push(`tls: ${options.tlsCert}`);
}
if (proxy.admin) lines.push(`admin: http://${formatAddress(proxy.admin)}/ (status page; /metrics, /stats, /connections; ffi-proxy top)`);
if (argv['log-level'] !== 'silent') process.stdout.write(lines.join('\n') + '\n');

let signals = 0;
const onSignal = (sig: NodeJS.Signals) => {
  signals++;
  if (signals === 1) {
    process.stderr.write(`ffi-proxy: ${sig}: no longer accepting; draining (a second signal stops at once)\n`);
    proxy.close().then(
      () => process.exit(0),
      (e) => fail(`stopping: ${e}`, EXIT_FAILURE),
    );
  } else {
    process.stderr.write(`ffi-proxy: ${sig} again: stopping now\n`);
    proxy.stopNow().then(() => process.exit(0));
  }
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
// SIGUSR1 reopens the access log files (nginx's signal for it), after logrotate moved them.
process.on('SIGUSR1', () => proxy.reopenLogs?.());

// SIGHUP re-reads the config file (nginx's reload signal); started from flags, there is none to read, and
// SIGHUP ends the process as it always did.
if (configFile !== undefined) {
  const log = new Logger(levelNumber(argv['log-level']), 'main');
  process.on('SIGHUP', () => {
    log.info(`SIGHUP: re-reading ${configFile}`);
    proxy.reload(configFile).then(
      () => log.info(`${configFile} reloaded`),
      (e: Error) => {
        const problems = e instanceof ConfigError ? e.problems : [e.message];
        log.error(`${configFile} not reloaded, nothing changed: ${problems.join('; ')}`);
      },
    );
  });
}

/**
 * `ffi-proxy toxiproxy`: the toxiproxy server until SIGINT or SIGTERM; resolves with the exit code. A config
 * file that cannot be read or populated is an error (toxiproxy-server only logs it and runs without).
 */
async function runToxiproxy(): Promise<number> {
  const only = ['host', 'port', 'config', 'seed', 'workers', 'log-level', 'proxy-metrics', 'runtime-metrics'];
  const stray = ['listen', 'backend', 'mode', 'processes', 'splice', 'drain-timeout', 'header-timeout', 'idle-timeout', 'backend-timeout', 'tunnel-timeout', 'max-header-size', 'max-body-size', 'forwarded-headers', 'accept-proxy', 'send-proxy', 'join', 'access-log', 'access-log-format', 'admin', 'admin-token', 'interval', 'once', 'tls', 'tls-cert', 'tls-key'].find(given);
  if (stray !== undefined) fail(`--${stray} is not a toxiproxy flag (it takes ${only.map((f) => `--${f}`).join(', ')})`, EXIT_USAGE);
  for (const flag of ['port', 'seed', 'workers'] as const) {
    const v = argv[flag];
    if (v !== undefined && !Number.isFinite(v)) fail(`--${flag} must be a number`, EXIT_USAGE);
  }
  // toxiproxy-server reads its log level from LOG_LEVEL (zerolog's names).
  const fromEnv: Record<string, LevelName> = { panic: 'error', fatal: 'error', error: 'error', warn: 'warn', info: 'info', debug: 'debug', trace: 'debug' };
  const logLevel = given('log-level') ? argv['log-level'] : (fromEnv[(process.env.LOG_LEVEL ?? '').toLowerCase()] ?? 'info');
  let server: Awaited<ReturnType<typeof toxiproxy>>;
  try {
    server = await toxiproxy({ host: argv.host, port: argv.port, config: argv.config, seed: argv.seed, workers: argv.workers, logLevel });
  } catch (e) {
    if (!(e instanceof ProxyError)) fail(`could not start: ${(e as Error).stack ?? e}`, EXIT_FAILURE);
    const usage = e.code === CODES.BAD_OPTION || e.code === CODES.BAD_ADDRESS || e.code === CODES.BAD_CONFIG;
    fail(e.message, usage ? EXIT_USAGE : EXIT_FAILURE);
  }
  if (logLevel !== 'silent') {
    const from = argv.config === undefined ? '' : `; proxies from ${argv.config}`;
    process.stdout.write(`ffi-proxy ${pkg.version} toxiproxy API on ${server.url} (toxiproxy-server ${TOXIPROXY_VERSION}'s API; ${server.workers} worker(s)${from})\n`);
  }
  return new Promise((resolve) => {
    const onSignal = (sig: NodeJS.Signals) => {
      process.stderr.write(`ffi-proxy: ${sig}: closing every proxy and its connections\n`);
      server.close().then(
        () => resolve(0),
        (e) => {
          process.stderr.write(`ffi-proxy: stopping: ${e}\n`);
          resolve(EXIT_FAILURE);
        },
      );
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
}
