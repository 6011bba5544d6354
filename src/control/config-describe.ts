// describePlan: what `ffi-proxy check` prints. Times and sizes are written as the file writes them. Kept
// apart from the checking (config-file.ts, config-check.ts): it reads only the finished plan, never the
// document.

import { formatAddress } from '../sys/index.js';
import type { ProxyPlan } from './plan.js';

function showTime(ms: number): string {
  if (ms === 0) return '0';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms < 1000) return `${ms}ms`;
  return `${ms / 1000}s`;
}

function showSize(n: number): string {
  if (n > 0 && n % 1024 ** 2 === 0) return `${n / 1024 ** 2}m`;
  if (n > 0 && n % 1024 === 0) return `${n / 1024}k`;
  return String(n);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * What a plan would run, as `ffi-proxy check` prints it: a line of process-wide settings, then one block
 * per frontend and per backend. Tests match on it: change it only on purpose.
 */
export function describePlan(plan: ProxyPlan): string {
  const lines: string[] = [];
  const maxConn = plan.maxConnections === null ? 'max-connections from the open-file limit' : `max-connections ${plan.maxConnections}`;
  const drain = showTime(plan.drainTimeoutMs);
  lines.push(`global: workers ${plan.workers}, processes ${plan.processes}, drain-timeout ${drain}, log-level ${plan.logLevel}, ${maxConn}`);
  const backendName = (i: number): string => plan.backends[i]?.name ?? `#${i}`;
  for (const f of plan.frontends) {
    let head = `frontend ${f.name}: listen ${formatAddress(f.listen)}, ${f.mode}${f.tls ? ' over tls' : ''}, backend ${backendName(f.backend)}`;
    if (f.routes.length > 0) {
      const routes = f.routes.map((r) => `${r.host ?? ''}${r.path ?? ''} -> ${backendName(r.backend)}${r.stripPrefix ? ' (strip prefix)' : ''}`);
      head += `; routes: ${routes.join(', ')}`;
    }
    lines.push(head);
    const o = [`splice ${f.splice}`];
    if (f.acceptProxy) o.push('accept-proxy');
    // The other mode's options are carried and not used: only what applies is shown.
    if (f.mode === 'http' || f.acceptProxy) o.push(`header-timeout ${showTime(f.headerTimeoutMs)}`);
    if (f.mode === 'http') o.push(`idle-timeout ${showTime(f.idleTimeoutMs)}`);
    o.push(`backend-timeout ${showTime(f.backendTimeoutMs)}`);
    o.push(`tunnel-timeout ${f.tunnelTimeoutMs === 0 ? '0 (never)' : showTime(f.tunnelTimeoutMs)}`);
    if (f.mode === 'http') {
      o.push(`max-header-size ${showSize(f.maxHeaderSize)}`);
      o.push(`max-body-size ${f.maxBodySize === 0 ? '0 (no limit)' : showSize(f.maxBodySize)}`);
      o.push(`forwarded-headers ${f.forwardedHeaders ? 'on' : 'off'}`);
    }
    if (f.accessLog !== null) o.push(`access-log ${f.accessLog} (${f.accessLogFormat})`);
    for (const t of f.toxics) {
      const attrs = Object.entries(t.attributes).map(([k, v]) => `${k} ${v}`).join(' ');
      o.push(`toxic ${t.name}: ${t.type} ${t.upstream ? 'upstream' : 'downstream'}${attrs ? ` ${attrs}` : ''}${t.toxicity < 1 ? ` toxicity ${t.toxicity}` : ''}`);
    }
    lines.push(`  ${o.join(', ')}`);
    // The default certificate first: served when SNI chooses no other.
    f.tls?.certs.forEach((c, i) => {
      const names = c.names.length === 0 ? 'no DNS name' : c.names.join(' ');
      lines.push(`  certificate ${c.cert}${i === 0 ? ' (default)' : ''}: ${names}; key ${c.key}`);
    });
  }
  for (const b of plan.backends) {
    const backups = b.servers.filter((s) => s.backup).length;
    let head = `backend ${b.name}: ${b.balance} over ${plural(b.servers.length, 'server')}`;
    if (backups > 0) head += ` (${plural(backups, 'backup')})`;
    const h = b.health;
    if (h === null) head += ', no health check';
    else {
      head += `, ${h.kind} health check ${h.kind === 'http' ? `GET ${h.path} ` : ''}every ${showTime(h.intervalMs)}`;
      if (h.timeoutMs !== h.intervalMs) head += `, timeout ${showTime(h.timeoutMs)}`;
      head += `, rise ${h.rise}, fall ${h.fall}`;
    }
    head += `; retries ${b.retries}`;
    if (b.sendProxy !== 0) head += `; send-proxy v${b.sendProxy}`;
    lines.push(head);
    for (const s of b.servers) {
      const address = formatAddress(s.address);
      let line = `  server ${s.name}`;
      if (address !== s.name) line += ` at ${address}`;
      if (s.weight !== 1) line += ` weight ${s.weight}`;
      if (s.backup) line += ' backup';
      lines.push(line);
    }
  }
  return lines.join('\n');
}
