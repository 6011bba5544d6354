// The proxies the benchmarks compare, each started pinned to a CPU in front of a backend port: ffi-proxy
// (TCP mode with each --splice, or HTTP mode), HAProxy (nbthread 1, same mode), the Node pipe proxy, nginx as
// a proxy and node-http-proxy. Shared by bench.mjs (each proxy in turn) and ab.mjs (two at once, interleaved),
// so that both start every proxy with the same flags and configuration.

import { join } from 'node:path';
import { ROOT, HOST, haproxyConfig, startHaproxy, startNginxProxy, startPinned } from './peers.mjs';

export const CLI = join(ROOT, 'dist', 'cli.js');
const PIPE = join(ROOT, 'scripts', 'node-pipe-proxy.mjs');
const NODE_HTTP = join(ROOT, 'scripts', 'node-http-proxy.mjs');

/**
 * The proxies under test for `mode` ('tcp' or 'http'), in the order bench.mjs runs them. `forwarded`
 * (HTTP): every proxy adds X-Forwarded-For/-Proto/-Host. start(port, backendPort, cpu, dir) returns a child
 * from startPinned. `banner`: wait for its "listening on" line before waiting for the port (else the port
 * alone says it is ready). `ffi`: one of ours. `cli`: the cli.js the ffi entries run (ab.mjs --b-ref passes
 * one built from another commit); the other entries are the same whatever it is.
 */
export function proxyList(mode, { forwarded = true, generatedBy = 'scripts/bench.mjs', cli = CLI } = {}) {
  const FORWARDED = forwarded;
  // In error messages, say which build failed when it is not the working tree's.
  const from = cli === CLI ? '' : ` from ${cli}`;
  const TCP_PROXIES = [
    ...['off', 'on', 'auto'].map((splice) => ({
      id: `ffi-${splice}`,
      label: `ffi-proxy splice=${splice}`,
      ffi: true,
      banner: true,
      start: (port, backendPort, cpu) =>
        startPinned(
          `ffi-proxy (splice ${splice})${from}`,
          cpu,
          process.execPath,
          [cli, 'start', '--listen', `${HOST}:${port}`, '--backend', `${HOST}:${backendPort}`, '--mode', 'tcp',
            '--workers', '1', '--splice', splice, '--log-level', 'warn'],
          { ready: /listening on/ },
        ),
    })),
    {
      id: 'haproxy',
      label: 'haproxy (tcp, 1 thread)',
      start: (port, backendPort, cpu, dir) =>
        startHaproxy(
          join(dir, `haproxy-${port}.cfg`),
          haproxyConfig({
            generatedBy,
            global: ['nbthread 1', 'maxconn 4096'],
            mode: 'tcp',
            timeouts: { connect: '5s', client: '30s', server: '30s' },
            port,
            backendPort,
          }),
          cpu,
        ),
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

  const HTTP_PROXIES = [
    {
      id: 'ffi-http',
      label: 'ffi-proxy http, 1 worker',
      ffi: true,
      banner: true,
      start: (port, backendPort, cpu) =>
        startPinned(
          `ffi-proxy (http)${from}`,
          cpu,
          process.execPath,
          [cli, 'start', '--listen', `${HOST}:${port}`, '--backend', `${HOST}:${backendPort}`, '--mode', 'http',
            '--workers', '1', '--log-level', 'warn', ...(FORWARDED ? [] : ['--no-forwarded-headers'])],
          { ready: /listening on/ },
        ),
    },
    {
      id: 'haproxy-http',
      label: 'haproxy (http, 1 thread)',
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
            backendPort,
          }),
          cpu,
        ),
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

