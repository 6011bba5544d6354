// A plan written back as a config document (the shape of a config file, docs/config.md), so that a proxy
// started from flags can be changed the way one started from a file is: the library's addFrontend(),
// removeFrontend() and setServers() edit the current document and reload it, and a --processes fleet hands
// its children a document with the ports it reserved. Read back by planFromDocument(), it gives the same plan.

import type { BackendConfig, FrontendConfig, HealthConfig, ServerConfig, TlsConfig } from '../route/index.js';
import { formatAddress } from '../sys/index.js';
import type { ProxyPlan } from './plan.js';

/** A config document: plain JSON-able data. */
export type ConfigDocument = Record<string, unknown>;

const ms = (v: number) => `${v}ms`;

export function documentFromPlan(plan: ProxyPlan): ConfigDocument {
  return {
    workers: plan.workers,
    processes: plan.processes,
    'drain-timeout': ms(plan.drainTimeoutMs),
    'log-level': plan.logLevel,
    ...(plan.maxConnections === null ? {} : { 'max-connections': plan.maxConnections }),
    ...(plan.admin === null ? {} : { admin: plan.admin }),
    ...(plan.adminToken === null ? {} : { 'admin-token': plan.adminToken }),
    frontends: plan.frontends.map((f) => frontendDocument(f, plan.backends)),
    backends: plan.backends.map(backendDocument),
  };
}

export function frontendDocument(f: FrontendConfig, backends: readonly BackendConfig[]): ConfigDocument {
  return {
    name: f.name,
    listen: formatAddress(f.listen),
    mode: f.mode,
    backend: backends[f.backend].name,
    ...(f.routes.length === 0
      ? {}
      : {
          routes: f.routes.map((r) => ({
            ...(r.host === null ? {} : { host: r.host }),
            ...(r.path === null ? {} : { path: r.path }),
            backend: backends[r.backend].name,
            ...(r.stripPrefix ? { 'strip-prefix': true } : {}),
          })),
        }),
    splice: f.splice,
    'accept-proxy': f.acceptProxy,
    'header-timeout': ms(f.headerTimeoutMs),
    'idle-timeout': ms(f.idleTimeoutMs),
    'backend-timeout': ms(f.backendTimeoutMs),
    'tunnel-timeout': ms(f.tunnelTimeoutMs),
    'max-header-size': f.maxHeaderSize,
    'max-body-size': f.maxBodySize,
    'forwarded-headers': f.forwardedHeaders,
    'access-log': f.accessLog ?? 'off',
    'access-log-format': f.accessLogFormat,
    ...(f.toxics.length === 0
      ? {}
      : {
          toxics: f.toxics.map((t) => ({
            name: t.name,
            type: t.type,
            stream: t.upstream ? 'upstream' : 'downstream',
            toxicity: t.toxicity,
            attributes: { ...t.attributes },
          })),
        }),
    ...(f.tls ? { tls: tlsDocument(f.tls) } : {}),
  };
}

/**
 * A frontend's TLS: its files' absolute paths (the names are read again from the certificates; the ticket
 * keys are the process's own, never written out).
 */
function tlsDocument(tls: TlsConfig): ConfigDocument {
  const pairs = tls.certs.map((c) => ({ cert: c.cert, key: c.key }));
  return pairs.length === 1 ? pairs[0] : { certificates: pairs };
}

function backendDocument(b: BackendConfig): ConfigDocument {
  return {
    name: b.name,
    balance: b.balance,
    servers: b.servers.map(serverDocument),
    ...(b.health === null ? {} : { health: healthDocument(b.health) }),
    ...(b.sendProxy === 0 ? {} : { 'send-proxy': `v${b.sendProxy}` }),
    retries: b.retries,
    ...(b.tls ? { tls: { verify: b.tls.verify, ...(b.tls.ca ? { ca: b.tls.ca } : {}), ...(b.tls.serverName ? { 'server-name': b.tls.serverName } : {}), ...(b.tls.cert ? { cert: b.tls.cert.cert, key: b.tls.cert.key } : {}) } } : {}),
  };
}

export function serverDocument(s: ServerConfig): ConfigDocument {
  return { name: s.name, address: formatAddress(s.address), weight: s.weight, backup: s.backup };
}

function healthDocument(h: HealthConfig): ConfigDocument {
  return {
    ...(h.kind === 'tcp' ? { tcp: true } : { http: h.path }),
    interval: ms(h.intervalMs),
    timeout: ms(h.timeoutMs),
    rise: h.rise,
    fall: h.fall,
  };
}
