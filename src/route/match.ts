// HTTP routes: which backend a request goes to, by its Host and its path. Compiled once per frontend into
// byte strings, most specific first, and matched against the head's bytes with no allocation:
//
//   an exact host, then '*.suffix' hosts (the longest suffix first), then routes for any host; within each,
//   the longest path prefix first, then routes for any path; the frontend's own backend when none matches.
//
// Hosts compare ASCII case-insensitively, with the Host value's port and a final dot left out; paths compare
// byte for byte from the start of the target's path (origin-form '/a/b', or the path of an absolute-form
// target). The HTTP side hands over a host it has checked (src/http/target.ts).

import type { RouteConfig } from './config.js';

export type Route = {
  /** Lower-case bytes: the exact host, or for a wildcard the suffix with its dot ('.example.com'); null: any. */
  host: Uint8Array | null;
  wildcard: boolean;
  /** The path prefix's bytes; null: any path. */
  path: Uint8Array | null;
  backend: number;
  /** Bytes of the target's path to cut when the route strips its prefix (its prefix, less a final '/'); 0 otherwise. */
  strip: number;
};

const bytes = (s: string) => Buffer.from(s, 'latin1');

export function compileRoutes(routes: RouteConfig[]): Route[] {
  const out = routes.map((r, order) => {
    const wildcard = r.host !== null && r.host.startsWith('*.');
    const path = r.path === null ? null : bytes(r.path);
    const strip = r.stripPrefix && path !== null ? (r.path!.endsWith('/') ? path.length - 1 : path.length) : 0;
    return {
      route: { host: r.host === null ? null : bytes((wildcard ? r.host.slice(1) : r.host).toLowerCase()), wildcard, path, backend: r.backend, strip },
      order,
    };
  });
  const hostRank = (r: Route) => (r.host === null ? 0 : r.wildcard ? 1 : 2);
  out.sort(
    (a, b) =>
      hostRank(b.route) - hostRank(a.route) ||
      (b.route.host?.length ?? 0) - (a.route.host?.length ?? 0) ||
      (b.route.path?.length ?? -1) - (a.route.path?.length ?? -1) ||
      a.order - b.order,
  );
  return out.map((o) => o.route);
}

/**
 * The first route (in compileRoutes' order) matching a request whose Host value is buf[hs..he) (hs < 0: no
 * Host) and whose target's path starts at buf[ps] and ends at buf[pe] (ps < 0: the target has no path, as
 * `OPTIONS *`), or null.
 */
export function matchRoute(routes: readonly Route[], buf: Uint8Array, hs: number, he: number, ps: number, pe: number): Route | null {
  let hostEnd = he;
  if (hs >= 0) {
    hostEnd = hostWithoutPort(buf, hs, he);
    // `example.com.` is example.com written as a fully qualified name, and a backend (nginx among them)
    // takes it as the same host: a route that missed it would send it past its own backend.
    if (hostEnd > hs && buf[hostEnd - 1] === 0x2e /* . */) hostEnd--;
  }
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i];
    if (r.host !== null && (hs < 0 || !hostMatches(r, buf, hs, hostEnd))) continue;
    if (r.path !== null && (ps < 0 || !startsWith(buf, ps, pe, r.path))) continue;
    return r;
  }
  return null;
}

/** Where the host of a Host value buf[s..e) ends: before ':port', after an IPv6 literal's ']'. */
function hostWithoutPort(buf: Uint8Array, s: number, e: number): number {
  for (let p = e - 1; p >= s; p--) {
    const c = buf[p];
    if (c === 0x3a /* : */) return p;
    if (c === 0x5d /* ] */ || c < 0x30 || c > 0x39) return e;
  }
  return e;
}

function hostMatches(r: Route, buf: Uint8Array, s: number, e: number): boolean {
  const h = r.host!;
  const len = e - s;
  if (r.wildcard ? len <= h.length : len !== h.length) return false;
  const from = e - h.length;
  for (let i = 0; i < h.length; i++) {
    const c = buf[from + i];
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== h[i]) return false;
  }
  return true;
}

function startsWith(buf: Uint8Array, s: number, e: number, prefix: Uint8Array): boolean {
  if (e - s < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buf[s + i] !== prefix[i]) return false;
  return true;
}
