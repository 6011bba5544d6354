// HTTP routes: a frontend picks the backend by Host (exact, and *.example.com) and by path prefix, the
// longest first, else its own backend; nothing is rewritten unless a route strips its prefix.
import t from 'tap';
import http from 'node:http';
import { once } from 'node:events';
import type net from 'node:net';
import { start } from '../../dist/index.js';
import { compileRoutes, matchRoute } from '../../dist/route/match.js';
import { connect, readResponse } from '../helpers/net.js';

/** An HTTP server that answers `NAME URL` for every request. */
async function named(name: string): Promise<{ port: number; close(): void }> {
  const s = http.createServer((req, res) => res.end(`${name} ${req.url}`));
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return {
    port: (s.address() as net.AddressInfo).port,
    close: () => {
      s.close();
      s.closeAllConnections();
    },
  };
}

t.test('matchRoute: exact host, then *.suffix, then any host; longest path first; ports and case ignored', async (t) => {
  const routes = compileRoutes([
    { host: null, path: '/v2/', backend: 1, stripPrefix: false },
    { host: '*.example.com', path: null, backend: 2, stripPrefix: false },
    { host: 'api.example.com', path: null, backend: 3, stripPrefix: false },
    { host: 'api.example.com', path: '/v2/admin/', backend: 4, stripPrefix: true },
    { host: null, path: '/v2/admin', backend: 5, stripPrefix: false },
  ]);
  const match = (host: string | null, target: string) => {
    const head = Buffer.from(`${host ?? ''}|${target}`, 'latin1');
    const bar = head.indexOf('|');
    const r = matchRoute(routes, head, host === null ? -1 : 0, host === null ? -1 : bar, target.startsWith('/') ? bar + 1 : -1, head.length);
    return r === null ? 0 : r.backend;
  };
  t.equal(match('api.example.com', '/v2/admin/x'), 4, 'exact host and the longest path');
  t.equal(match('API.Example.COM:8080', '/v2/admin/x'), 4, 'case and port do not count');
  t.equal(match('api.example.com.', '/other'), 3, 'nor a final dot (a fully qualified name)');
  t.equal(match('api.example.com.:8080', '/other'), 3, 'before a port either');
  t.equal(match('www.example.com.', '/'), 2, 'a wildcard host with a final dot');
  t.equal(match('api.example.com', '/other'), 3, 'exact host, any path');
  t.equal(match('www.example.com', '/v2/admin/x'), 2, 'a wildcard host beats a route for any host');
  t.equal(match('a.b.example.com', '/'), 2, 'a wildcard covers deeper names');
  t.equal(match('example.com', '/v2/admin/x'), 5, 'but not the bare domain: the longest path for any host');
  t.equal(match('other.org', '/v2/x'), 1);
  t.equal(match('other.org', '/v3/'), 0, 'nothing: the frontend backend');
  t.equal(match(null, '/v2/admin'), 5, 'no Host: only routes for any host');
  t.equal(match('other.org', '*'), 0, 'OPTIONS *: no path to match');
  t.equal(routes.find((r) => r.backend === 4)!.strip, '/v2/admin'.length, 'a prefix ending in / strips all but that /');
});

t.test('through the proxy: host and path routes, the fallback, and a stripped prefix', async (t) => {
  const app = await named('app');
  const api = await named('api');
  const admin = await named('admin');
  const proxy = await start({
    workers: 1,
    logLevel: 'silent',
    config: {
      frontends: [
        {
          name: 'web',
          listen: '127.0.0.1:0',
          mode: 'http',
          backend: 'app',
          routes: [
            { host: 'api.example.com', backend: 'api' },
            { host: '*.example.com', path: '/admin/', backend: 'admin', 'strip-prefix': true },
            { path: '/v2', backend: 'api', 'strip-prefix': true },
          ],
        },
      ],
      backends: [
        { name: 'app', servers: [`127.0.0.1:${app.port}`] },
        { name: 'api', servers: [`127.0.0.1:${api.port}`] },
        { name: 'admin', servers: [`127.0.0.1:${admin.port}`] },
      ],
    },
  });
  t.teardown(async () => {
    await proxy.close(0);
    app.close();
    api.close();
    admin.close();
  });
  const c = await connect(proxy.port);
  t.teardown(() => c.destroy());
  const ask = async (host: string, target: string) => {
    c.write(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    return (await readResponse(c)).body;
  };
  // One keep-alive client: each request is routed on its own.
  t.equal(await ask('api.example.com', '/admin/x?q=1'), 'api /admin/x?q=1', 'an exact host wins, nothing stripped');
  t.equal(await ask('www.example.com', '/admin/users?q=1'), 'admin /users?q=1', 'wildcard host and path, prefix stripped');
  t.equal(await ask('www.example.com', '/other'), 'app /other', 'host matches, path does not: the fallback');
  t.equal(await ask('localhost', '/v2'), 'api /', 'a stripped prefix that is all of the path leaves /');
  t.equal(await ask('localhost', '/v2?x'), 'api /?x', 'and keeps the query');
  t.equal(await ask('localhost', '/v2/items/7'), 'api /items/7');
  t.equal(await ask('localhost', '/v3/items'), 'app /v3/items', 'no route: the frontend backend');
  t.equal(await ask('www.example.com', 'http://www.example.com/admin/z'), 'admin http://www.example.com/z', 'an absolute-form target is routed (and stripped) by its path');
  t.equal(await ask('api.example.com.', '/y'), 'api /y', 'a Host with a final dot goes where the name without it goes');
  // An absolute-form target's authority is the request's host when there is no Host (HTTP/1.0); with a Host
  // it must agree (else 400, test/http/cases/target.md), so a request is routed by the host the backend sees.
  // (Node answers HTTP/1.0 by closing, so on a connection of its own.)
  const c10 = await connect(proxy.port);
  t.teardown(() => c10.destroy());
  let got = '';
  c10.on('data', (d: Buffer) => (got += d.toString('latin1')));
  c10.write('GET http://api.example.com/x HTTP/1.0\r\n\r\n');
  await once(c10, 'end');
  t.equal(got.slice(got.indexOf('\r\n\r\n') + 4), 'api http://api.example.com/x', 'HTTP/1.0 without Host: routed by the authority');
  t.equal(proxy.stats().requests, 10);
});
