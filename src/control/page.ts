// The status page's files, served by the admin endpoint (admin.ts) under / and /assets/: the page itself
// (assets/status/ at the package's root, plain HTML, CSS and browser JS without a build step) and the chart
// library (uPlot, from node_modules). The names form a fixed map; a request path is only ever a key into it,
// never joined onto a directory, so no path can reach another file. The files are read once, at first use,
// and kept: they are small (about 100 KB together) and change only with the package.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export type Asset = { type: string; body: Buffer };

const HTML = 'text/html; charset=utf-8';
const CSS = 'text/css; charset=utf-8';
const JS = 'text/javascript; charset=utf-8';

/** Where a served file comes from: the page's folder or a package's file. */
type Source = { type: string } & ({ page: string } | { module: string });

// The compiled file is dist/control/page.js, so the page's folder is two levels up.
const PAGE_DIR = new URL('../../assets/status/', import.meta.url);

/** Every file the page may load, by its path under the admin endpoint. index.html lists the same names. */
const FILES: Record<string, Source> = {
  '/index.html': { type: HTML, page: 'index.html' },
  '/assets/status.css': { type: CSS, page: 'status.css' },
  '/assets/format.js': { type: JS, page: 'format.js' },
  '/assets/charts.js': { type: JS, page: 'charts.js' },
  '/assets/tables.js': { type: JS, page: 'tables.js' },
  '/assets/status.js': { type: JS, page: 'status.js' },
  '/assets/uplot.css': { type: CSS, module: 'uplot/dist/uPlot.min.css' },
  '/assets/uplot.js': { type: JS, module: 'uplot/dist/uPlot.iife.min.js' },
};

let loaded: Map<string, Asset> | null = null;

/** Reads every file of FILES. Throws (with the file's name) when one is missing: the package is broken. */
function load(): Map<string, Asset> {
  const require = createRequire(import.meta.url);
  const out = new Map<string, Asset>();
  for (const [path, src] of Object.entries(FILES)) {
    const file = 'page' in src ? fileURLToPath(new URL(src.page, PAGE_DIR)) : require.resolve(src.module);
    out.set(path, { type: src.type, body: readFileSync(file) });
  }
  return out;
}

/** The file at `path` (`/index.html`, `/assets/...`), or null for any path not in the fixed list. */
export function pageAsset(path: string): Asset | null {
  if (!Object.hasOwn(FILES, path)) return null;
  loaded ??= load();
  return loaded.get(path) ?? null;
}

/** The paths pageAsset serves (for tests and the screenshot script). */
export function pageAssetPaths(): string[] {
  return Object.keys(FILES);
}
