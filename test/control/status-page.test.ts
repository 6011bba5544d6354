// The status page at the admin endpoint's GET /: the HTML names its scripts, styles and the chart library,
// each of those is served with its content type, a path outside the fixed list is 404 (no way out of the
// list by `..` or encoded slashes), the page's scripts never put API data in as markup, and with a token
// the page and its files need it (header or ?token=). The page in a real browser: scripts/status-screenshot.mjs.
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { start } from '../../dist/index.js';
import { pageAsset, pageAssetPaths } from '../../dist/control/page.js';
import { admin } from '../helpers/admin.js';

const ASSETS = new URL('../../assets/status/', import.meta.url);

/** The /assets/... paths the page's HTML loads. */
function referenced(html: string): string[] {
  return [...new Set(html.match(/\/assets\/[A-Za-z0-9._-]+/g) ?? [])];
}

t.test('GET / is the page, and every file it loads is served with its type', async (t) => {
  const proxy = await start({ listen: '127.0.0.1:0', mode: 'http', admin: '127.0.0.1:0', workers: 1, logLevel: 'silent' });
  t.teardown(() => proxy.close(0));

  const page = await admin(proxy, '/');
  t.equal(page.status, 200);
  t.match(page.type, /^text\/html/);
  t.match(page.body, /<title>ffi-proxy status<\/title>/);
  const files = referenced(page.body);
  for (const name of ['/assets/uplot.js', '/assets/uplot.css', '/assets/status.js', '/assets/status.css']) {
    t.ok(files.includes(name), `the page loads ${name}`);
  }
  t.same(files.slice().sort(), pageAssetPaths().filter((p) => p !== '/index.html').sort(), 'the page loads exactly the files page.ts serves');

  for (const path of files) {
    const r = await admin(proxy, path);
    t.equal(r.status, 200, `${path} is served`);
    t.match(r.type, path.endsWith('.css') ? /^text\/css/ : /^text\/javascript/, `${path} has its content type`);
    t.ok(r.body.length > 100, `${path} is not empty`);
  }
  t.match((await admin(proxy, '/assets/uplot.js')).body, /uPlot/, 'the chart library is uPlot from node_modules');
});

t.test('a path outside the fixed list is 404', async (t) => {
  const proxy = await start({ listen: '127.0.0.1:0', mode: 'http', admin: '127.0.0.1:0', workers: 1, logLevel: 'silent' });
  t.teardown(() => proxy.close(0));
  for (const path of ['/assets/x', '/assets/', '/assets/index.html', '/assets/../package.json', '/assets/%2e%2e%2fpackage.json', '/assets/..%2F..%2Fpackage.json', '/assets/status.js/']) {
    const r = await admin(proxy, path);
    t.equal(r.status, 404, `GET ${path}`);
  }
  t.equal(pageAsset('/assets/../../package.json'), null);
  t.equal(pageAsset('/assets/constructor'), null, 'not a property of every object either');
  t.equal(pageAsset('/etc/passwd'), null);
});

t.test('with a token, the page and its files need it: as a header, or ?token= as the page passes it on', async (t) => {
  const proxy = await start({ listen: '127.0.0.1:0', mode: 'http', admin: '127.0.0.1:0', adminToken: 's3cret', workers: 1, logLevel: 'silent' });
  t.teardown(() => proxy.close(0));
  t.equal((await admin(proxy, '/')).status, 401, 'GET / without the token');
  t.equal((await admin(proxy, '/assets/status.js')).status, 401, 'a file without the token');
  t.equal((await admin(proxy, '/?token=wrong')).status, 401, 'a wrong token');
  const page = await admin(proxy, '/?token=s3cret');
  t.equal(page.status, 200, 'GET /?token=');
  t.match(page.type, /^text\/html/);
  t.match(page.body, /encodeURIComponent\(token\)/, 'the page adds the token to the files it loads');
  t.equal((await admin(proxy, '/assets/status.js?token=s3cret')).status, 200, 'a file with ?token=');
  const byHeader = await admin(proxy, '/stats', { headers: { Authorization: 'Bearer s3cret' } });
  t.equal(byHeader.status, 200, 'the JSON the page fetches, with the header it sends');
});

t.test("the page's scripts build the DOM from text, never from markup", async (t) => {
  const scripts = readdirSync(ASSETS).filter((f) => f.endsWith('.js'));
  t.ok(scripts.length >= 4, 'the page has its scripts');
  for (const f of scripts) {
    const src = readFileSync(new URL(f, ASSETS), 'utf8');
    t.notMatch(src, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, `${f} sets no markup`);
  }
});
