// The proxies the benchmarks compare, each started pinned to a CPU in front of a backend port: ffi-proxy
// (TCP mode with each --splice, or HTTP mode), HAProxy (nbthread 1, same mode), the Node pipe proxy, nginx as
// a proxy and node-http-proxy. Shared by bench.mjs (each proxy in turn) and ab.mjs (two at once, interleaved),
// so that both start every proxy with the same flags and configuration.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, HOST, haproxyConfig, startHaproxy, startNginxProxy, startPinned, testCert } from './peers.mjs';

export const CLI = join(ROOT, 'dist', 'cli.js');
const PIPE = join(ROOT, 'scripts', 'node-pipe-proxy.mjs');
const NODE_HTTP = join(ROOT, 'scripts', 'node-http-proxy.mjs');

/**
 * The proxies under test for `mode` ('tcp' or 'http'), in the order bench.mjs runs them. `forwarded`
 * (HTTP): every proxy adds X-Forwarded-For/-Proto/-Host. start(port, backendPort, cpu, dir) returns a child
 * from startPinned. `banner`: wait for its "listening on" line before waiting for the port (else the port
 * alone says it is ready). `ffi`: one of ours. `pool`: its start() also takes a list of backend ports for
 * backendPort (ab.mjs --servers N), balanced round-robin: ffi-proxy through a config file written into
 * `dir`, with the same settings as its flags; HAProxy with one server line each and `balance roundrobin`.
 * One port (or a list of one) runs exactly what it always has. `logged`: an entry with an access log, which
 * bench.mjs runs only when --only names it; `optional`: another entry bench.mjs runs only when named. `cli`: the cli.js the ffi entries run
 * (ab.mjs --b-ref passes one built from another commit); the other entries are the same whatever it is.
 * `tls`: an entry that terminates TLS (clients speak https:// to it), with a self-signed certificate made
 * once per run in `dir` by testCert(): `tlsKind` 'ec' (P-256, the default) or 'rsa' (RSA-2048). The TLS
 * entries are all optional, one backend server each (no pool).
 */
export function proxyList(mode, { forwarded = true, generatedBy = 'scripts/bench.mjs', cli = CLI, tlsKind = 'ec' } = {}) {
  const FORWARDED = forwarded;
  // In error messages, say which build failed when it is not the working tree's.
  const from = cli === CLI ? '' : ` from ${cli}`;
  // ffi-proxy's arguments: its flags for one backend port (or a list of one); for a list, a config file
  // (docs/config.md) with one frontend and one backend of those servers, round-robin, and the same settings
  // as the flags, as keys (forwarded headers on unless --no-forwarded-headers, as with the flags).
  const ffiArgs = (port, backendPort, dir, mode, flags) => {
    const ports = [backendPort].flat();
    if (ports.length === 1) return ['--listen', `${HOST}:${port}`, '--backend', `${HOST}:${ports[0]}`, '--mode', mode, ...flags];
    const config = {};
    const fe = { name: 'fe', listen: `${HOST}:${port}`, mode, backend: 'be', ...(mode === 'http' ? { 'forwarded-headers': true } : {}) };
    for (let i = 0; i < flags.length; i++) {
      if (flags[i] === '--workers') config.workers = Number(flags[++i]);
      else if (flags[i] === '--log-level') config['log-level'] = flags[++i];
      else if (flags[i] === '--splice') fe.splice = flags[++i];
      else if (flags[i] === '--no-forwarded-headers') fe['forwarded-headers'] = false;
      else throw new Error(`proxies.mjs: ffi-proxy flag ${flags[i]} has no config key here`);
    }
    config.frontends = [fe];
    config.backends = [{ name: 'be', balance: 'round-robin', servers: ports.map((p) => `${HOST}:${p}`) }];
    const file = join(dir, `ffi-proxy-${port}.json`);
    writeFileSync(file, JSON.stringify(config, null, 2) + '\n');
    return ['--config', file];
  };
  const TCP_PROXIES = [
    ...['off', 'on', 'auto'].map((splice) => ({
      id: `ffi-${splice}`,
      label: `ffi-proxy splice=${splice}`,
      ffi: true,
      pool: true,
      banner: true,
      start: (port, backendPort, cpu, dir) =>
        startPinned(
          `ffi-proxy (splice ${splice})${from}`,
          cpu,
          process.execPath,
          [cli, 'start', ...ffiArgs(port, backendPort, dir, 'tcp', ['--workers', '1', '--splice', splice, '--log-level', 'warn'])],
          { ready: /listening on/ },
        ),
    })),
    {
      id: 'haproxy',
      label: 'haproxy (tcp, 1 thread)',
      pool: true,
      start: (port, backendPort, cpu, dir) =>
        startHaproxy(
          join(dir, `haproxy-${port}.cfg`),
          haproxyConfig({
            generatedBy,
            global: ['nbthread 1', 'maxconn 4096'],
            mode: 'tcp',
            timeouts: { connect: '5s', client: '30s', server: '30s' },
            port,
            backendPorts: [backendPort].flat(),
          }),
          cpu,
        ),
    },
    // TLS termination (docs/tls.md) against HAProxy's `bind ... ssl crt`: the decrypted bytes go on to the
    // backend in the clear. ffi-proxy's splice setting does not apply to a TLS client (its bytes go through
    // OpenSSL); auto, as ffi-auto, for the backend side.
    {
      id: 'ffi-tls-tcp',
      label: `ffi-proxy tcp over TLS (${tlsKind}), 1 worker`,
      ffi: true,
      tls: true,
      optional: true,
      banner: true,
      start: (port, backendPort, cpu, dir) => {
        const c = testCert(dir, tlsKind);
        return startPinned(
          `ffi-proxy (tcp, tls)${from}`,
          cpu,
          process.execPath,
          [cli, 'start', ...ffiArgs(port, [backendPort].flat()[0], dir, 'tcp', ['--workers', '1', '--splice', 'auto', '--log-level', 'warn']), '--tls-cert', c.cert, '--tls-key', c.key],
          { ready: /listening on/ },
        );
      },
    },
    {
      id: 'haproxy-tls-tcp',
      label: `haproxy (tcp, ssl crt ${tlsKind}, 1 thread)`,
      tls: true,
      optional: true,
      start: (port, backendPort, cpu, dir) =>
        startHaproxy(
          join(dir, `haproxy-tls-${port}.cfg`),
          haproxyConfig({
            generatedBy,
            global: ['nbthread 1', 'maxconn 4096'],
            mode: 'tcp',
            timeouts: { connect: '5s', client: '30s', server: '30s' },
            port,
            bind: `ssl crt ${testCert(dir, tlsKind).pem}`,
            backendPorts: [[backendPort].flat()[0]],
          }),
          cpu,
        ),
    },
    // The toxiproxy server (docs/toxiproxy.md) running one proxy with no toxic, made by its -config file
    // (a populate array): the same frontend as ffi-auto's, so the two should cost the same per request.
    {
      id: 'ffi-toxiproxy',
      label: 'ffi-proxy toxiproxy, 1 proxy, no toxic',
      ffi: true,
      optional: true,
      banner: true,
      start: (port, backendPort, cpu, dir) => {
        const file = join(dir, `toxiproxy-${port}.json`);
        writeFileSync(file, JSON.stringify([{ name: 'bench', listen: `${HOST}:${port}`, upstream: `${HOST}:${[backendPort].flat()[0]}` }]) + '\n');
        return startPinned(
          `ffi-proxy toxiproxy${from}`,
          cpu,
          process.execPath,
          [cli, 'toxiproxy', '-host', HOST, '-port', '0', '-config', file, '--log-level', 'warn'],
          { ready: /toxiproxy API on/ },
        );
      },
    },
    {
      id: 'node-pipe',
      label: 'node net pipe',
      banner: true,
      start: (port, backendPort, cpu) =>
        startPinned('node-pipe-proxy', cpu, process.execPath, [PIPE, String(port), String(backendPort)], {
          ready: /listening on/,
        }),
    },
  ];

  // ffi-proxy in HTTP mode with an access log of `format` to a file in the run's directory.
  const ffiLogged = (id, format, what) => ({
    id,
    label: `ffi-proxy http, 1 worker, ${what} access log to a file`,
    ffi: true,
    logged: true,
    banner: true,
    start: (port, backendPort, cpu, dir) =>
      startPinned(
        `ffi-proxy (http, access log)${from}`,
        cpu,
        process.execPath,
        [cli, 'start', ...ffiArgs(port, backendPort, dir, 'http', ['--workers', '1', '--log-level', 'warn', ...(FORWARDED ? [] : ['--no-forwarded-headers'])]), '--access-log', join(dir, `ffi-access-${port}.log`), '--access-log-format', format],
        { ready: /listening on/ },
      ),
  });

  const HTTP_PROXIES = [
    {
      id: 'ffi-http',
      label: 'ffi-proxy http, 1 worker',
      ffi: true,
      pool: true,
      banner: true,
      start: (port, backendPort, cpu, dir) =>
        startPinned(
          `ffi-proxy (http)${from}`,
          cpu,
          process.execPath,
          [cli, 'start', ...ffiArgs(port, backendPort, dir, 'http', ['--workers', '1', '--log-level', 'warn', ...(FORWARDED ? [] : ['--no-forwarded-headers'])])],
          { ready: /listening on/ },
        ),
    },
    {
      id: 'haproxy-http',
      label: 'haproxy (http, 1 thread)',
      pool: true,
      start: (port, backendPort, cpu, dir) =>
        startHaproxy(
          join(dir, `haproxy-http-${port}.cfg`),
          haproxyConfig({
            generatedBy: `${generatedBy} --mode http`,
            global: ['nbthread 1', 'maxconn 4096'],
            mode: 'http',
            timeouts: { connect: '5s', client: '30s', server: '30s', 'http-request': '10s', 'http-keep-alive': '30s' },
            frontend: FORWARDED
              ? ['option forwardfor', 'http-request set-header X-Forwarded-Proto http', 'http-request set-header X-Forwarded-Host %[req.hdr(host)]']
              : [],
            port,
            backendPorts: [backendPort].flat(),
          }),
          cpu,
        ),
    },
    // TLS termination (docs/tls.md) against HAProxy's `bind ... ssl crt ... alpn http/1.1`: the same as
    // ffi-http and haproxy-http otherwise (X-Forwarded-Proto says https on both).
    {
      id: 'ffi-tls-http',
      label: `ffi-proxy http over TLS (${tlsKind}), 1 worker`,
      ffi: true,
      tls: true,
      optional: true,
      banner: true,
      start: (port, backendPort, cpu, dir) => {
        const c = testCert(dir, tlsKind);
        return startPinned(
          `ffi-proxy (http, tls)${from}`,
          cpu,
          process.execPath,
          [
            cli,
            'start',
            ...ffiArgs(port, [backendPort].flat()[0], dir, 'http', ['--workers', '1', '--log-level', 'warn', ...(FORWARDED ? [] : ['--no-forwarded-headers'])]),
            '--tls-cert',
            c.cert,
            '--tls-key',
            c.key,
          ],
          { ready: /listening on/ },
        );
      },
    },
    {
      id: 'haproxy-tls-http',
      label: `haproxy (http, ssl crt ${tlsKind}, 1 thread)`,
      tls: true,
      optional: true,
      start: (port, backendPort, cpu, dir) =>
        startHaproxy(
          join(dir, `haproxy-tls-http-${port}.cfg`),
          haproxyConfig({
            generatedBy: `${generatedBy} --mode http`,
            global: ['nbthread 1', 'maxconn 4096'],
            mode: 'http',
            timeouts: { connect: '5s', client: '30s', server: '30s', 'http-request': '10s', 'http-keep-alive': '30s' },
            frontend: FORWARDED
              ? ['option forwardfor', 'http-request set-header X-Forwarded-Proto https', 'http-request set-header X-Forwarded-Host %[req.hdr(host)]']
              : [],
            port,
            bind: `ssl crt ${testCert(dir, tlsKind).pem} alpn http/1.1`,
            backendPorts: [[backendPort].flat()[0]],
          }),
          cpu,
        ),
    },
    // The access log's cost (docs/benchmarks.md): ffi-proxy writing HAProxy-format lines to a file, beside
    // HAProxy with `option httplog` logging to stdout redirected to a file (it has no file target of its own).
    ffiLogged('ffi-http-log', 'haproxy', 'HAProxy-format'),
    ffiLogged('ffi-http-log-json', 'json', 'JSON'),
    {
      id: 'haproxy-http-log',
      label: 'haproxy (http, 1 thread), httplog to a file',
      logged: true,
      start: (port, backendPort, cpu, dir) => {
        const cfg = join(dir, `haproxy-http-log-${port}.cfg`);
        writeFileSync(
          cfg,
          haproxyConfig({
            generatedBy: `${generatedBy} --mode http`,
            global: ['nbthread 1', 'maxconn 4096', 'log stdout format raw local0 info'],
            mode: 'http',
            timeouts: { connect: '5s', client: '30s', server: '30s', 'http-request': '10s', 'http-keep-alive': '30s' },
            frontend: [
              'log global',
              'option httplog',
              ...(FORWARDED ? ['option forwardfor', 'http-request set-header X-Forwarded-Proto http', 'http-request set-header X-Forwarded-Host %[req.hdr(host)]'] : []),
            ],
            port,
            backendPorts: [backendPort].flat(),
          }),
        );
        const log = join(dir, `haproxy-access-${port}.log`);
        return startPinned('haproxy (httplog)', cpu, 'sh', ['-c', `exec haproxy -db -f '${cfg}' >> '${log}'`]);
      },
    },
    {
      id: 'nginx-proxy',
      label: 'nginx proxy_pass, 1 worker',
      start: (port, backendPort, cpu, dir) => startNginxProxy(dir, { cpu, port, backendPort, forwarded: FORWARDED }),
    },
    {
      id: 'node-http-proxy',
      label: 'node http-proxy (npm)',
      banner: true,
      start: (port, backendPort, cpu) =>
        startPinned('node-http-proxy', cpu, process.execPath, [NODE_HTTP, String(port), String(backendPort), HOST, FORWARDED ? 'xfwd' : ''], {
          ready: /listening on/,
        }),
    },
  ];
  return mode === 'http' ? HTTP_PROXIES : TCP_PROXIES;
}

