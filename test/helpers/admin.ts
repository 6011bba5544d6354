// The admin endpoint from a test: requests to it, its Prometheus text read into samples, and its JSON.
import http from 'node:http';
import type { Proxy } from './servers.js';

export type AdminReply = { status: number; type: string; body: string; json: any };

/** One request to the proxy's admin endpoint. */
export function admin(proxy: Proxy, path: string, opts: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<AdminReply> {
  const a = proxy.admin;
  if (!a || a.family === 'unix') throw new Error('the proxy has no admin endpoint');
  return new Promise((resolve, reject) => {
    const req = http.request({ host: a.host, port: a.port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        const type = String(res.headers['content-type'] ?? '');
        resolve({ status: res.statusCode ?? 0, type, body, json: type.startsWith('application/json') ? JSON.parse(body) : null });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

export const post = (proxy: Proxy, path: string, body = '') => admin(proxy, path, { method: 'POST', body });

/** Prometheus text as `name{labels}` -> value (labels as written). */
export function samples(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    m.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return m;
}

/** The value of one sample: `metric('ffi_proxy_frontend_requests_total', { frontend: 'web' })`. */
export function metric(s: Map<string, number>, name: string, labels: Record<string, string> = {}): number | undefined {
  const keys = Object.keys(labels);
  const text = keys.length === 0 ? name : `${name}{${keys.map((k) => `${k}="${labels[k]}"`).join(',')}}`;
  return s.get(text);
}

export async function scrape(proxy: Proxy): Promise<Map<string, number>> {
  const r = await admin(proxy, '/metrics');
  if (r.status !== 200) throw new Error(`/metrics: ${r.status} ${r.body}`);
  return samples(r.body);
}
