// A frontend's `tls` key in a config document (docs/tls.md): `{ cert, key }`, or `{ certificates: [...] }`
// whose first is the default and the others are chosen by SNI. Its shape is checked here, its files by
// tls.ts (the same checks as the --tls-cert/--tls-key flags'), each problem at its place:
//   ffi-proxy.yaml:9: frontends[0].tls.key: /etc/ffi/web.key is not the key of the certificate in /etc/ffi/web.pem
// Kept apart from config-file.ts, which walks the rest of the document.

import { resolve } from 'node:path';
import { statSync } from 'node:fs';
import type { BackendTls, TlsConfig } from '../route/index.js';
import { type Check, child, isObj, item, show } from './config-check.js';
import { checkPair, processTicketKeys } from './tls.js';

/** A text that can be a file's path. */
const isPath = (v: unknown): v is string => typeof v === 'string' && v !== '' && !v.includes('\0');

/** One `{ cert, key }` map's shape checked: its two absolute paths, or undefined after a problem. */
function pairShape(c: Check, path: string, o: Record<string, unknown>, baseDir: string): { cert: string; key: string } | undefined {
  let ok = true;
  const file = (k: 'cert' | 'key'): string => {
    const v = c.required(path, o, k);
    if (v === undefined) ok = false;
    else if (!isPath(v)) {
      c.problem(child(path, k), `must be a file's path (PEM ${k === 'cert' ? 'certificate, its chain after it' : 'private key'}), not ${show(v)}`);
      ok = false;
    }
    return isPath(v) ? resolve(baseDir, v) : '';
  };
  const pair = { cert: file('cert'), key: file('key') };
  return ok ? pair : undefined;
}

/**
 * A frontend's `tls` value at `path`: `{ cert, key }` or `{ certificates: [{ cert, key }, ...] }` (the first
 * the default). Checks its shape, then reads and checks every file, paths relative to `baseDir`. Problems
 * and warnings go to `c`; returns the TlsConfig, or undefined after a problem.
 */
export async function checkTls(c: Check, path: string, v: unknown, baseDir: string): Promise<TlsConfig | undefined> {
  const o = c.map(path, v, 'a map with cert and key, or with certificates: a list of maps with cert and key');
  if (!o) return undefined;
  c.keys(path, o, 'tls');
  const pairs: { path: string; pair: { cert: string; key: string } | undefined }[] = [];
  if (o.certificates !== undefined && (o.cert !== undefined || o.key !== undefined)) {
    c.problem(path, 'takes cert and key, or certificates, not both');
    return undefined;
  } else if (o.certificates !== undefined) {
    const list = c.list(child(path, 'certificates'), o.certificates, 'maps with cert and key', true);
    if (!list) return undefined;
    list.forEach((x, i) => {
      const at = item(child(path, 'certificates'), i);
      if (!isObj(x)) c.problem(at, `must be a map with cert and key, not ${show(x)}`);
      else {
        c.keys(at, x, 'certificate');
        pairs.push({ path: at, pair: pairShape(c, at, x, baseDir) });
      }
    });
  } else {
    pairs.push({ path, pair: pairShape(c, path, o, baseDir) });
  }
  if (pairs.some((p) => p.pair === undefined) || pairs.length === 0) return undefined;
  const checked = await Promise.all(pairs.map((p) => checkPair(p.pair!.cert, p.pair!.key)));
  let ok = true;
  checked.forEach((r, i) => {
    for (const p of r.problems) c.problem(child(pairs[i].path, p.file), p.what);
    ok &&= r.problems.length === 0;
    for (const w of r.warnings) c.warning(child(pairs[i].path, 'cert'), w);
    // The default is served whatever the name; another one only to the names it has.
    if (i > 0 && r.problems.length === 0 && r.config.names.length === 0) {
      c.problem(child(pairs[i].path, 'cert'), `${r.config.cert} has no DNS name (subjectAltName or CN): SNI could never choose it`);
      ok = false;
    }
  });
  return ok ? { certs: checked.map((r) => r.config), ticketKeys: processTicketKeys() } : undefined;
}

/**
 * A backend's `tls` (docs/tls.md, "To backends"): `true` (verify against the system's store, the server's
 * name as written), or `{ verify, ca, server-name, cert, key }`; false or absent: plain. Files relative to
 * `baseDir`.
 */
export function checkBackendTls(c: Check, path: string, v: unknown, baseDir: string): BackendTls | null {
  if (v === false || v === null) return null;
  if (v === true) return { verify: true, ca: null, serverName: null };
  if (!isObj(v)) {
    c.problem(path, `must be true, false, or a map of verify, ca and server-name, not ${show(v)}`);
    return null;
  }
  c.keys(path, v, 'backendTls');
  const verify = v.verify === undefined ? true : c.bool(child(path, 'verify'), v.verify);
  let ca: string | null = null;
  if (v.ca !== undefined) {
    if (!isPath(v.ca)) c.problem(child(path, 'ca'), `must be the path of a PEM file of trusted certificates, not ${show(v.ca)}`);
    else {
      ca = resolve(baseDir, v.ca);
      let file = false;
      try {
        file = statSync(ca).isFile();
      } catch {
        file = false;
      }
      if (!file) c.problem(child(path, 'ca'), `${ca} is not a readable file`);
    }
  }
  const files = (k: 'cert' | 'key'): string | null => {
    const f = v[k];
    if (f === undefined) return null;
    const at = isPath(f) ? resolve(baseDir, f) : null;
    let ok = false;
    try {
      ok = at !== null && statSync(at).isFile();
    } catch {
      ok = false;
    }
    if (!ok) c.problem(child(path, k), at === null ? `must be the path of a PEM file, not ${show(f)}` : `${at} is not a readable file`);
    return ok ? at : null;
  };
  const cert = files('cert');
  const key = files('key');
  if ((v.cert === undefined) !== (v.key === undefined)) c.problem(path, 'a client certificate needs both cert and key');
  const sn = v['server-name'];
  const serverName = sn === undefined ? null : typeof sn === 'string' && sn !== '' ? sn : null;
  if (sn !== undefined && serverName === null) c.problem(child(path, 'server-name'), `must be a host name, not ${show(sn)}`);
  return { verify: verify ?? true, ca, serverName, ...(cert !== null && key !== null ? { cert: { cert, key } } : {}) };
}
