// Raw-byte conformance: every case in test/http/cases/*.md (format: cases/README.md) is written over a real
// socket to an HTTP-mode proxy in front of a recording backend. The runner checks the statuses the client
// gets, in order; for a closing case, `Connection: close` on the last response and the connection closed
// after it; for a keep-alive case, one more request answered on the same connection; and how many requests
// the backend received (0: not one byte reached it).
import t, { type Test } from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { start, type StartOptions } from '../../dist/index.js';
import { waitFor } from '../helpers/net.js';
import { get, httpClient, parseCaseFile, recordingBackend, type ConformanceCase, type RecordingBackend } from '../helpers/http-backend.js';

const DIR = fileURLToPath(new URL('./cases/', import.meta.url));
// How long one case may wait for its responses or for the close. A proxy that waits for bytes that will
// never come is answered by the header timeout (2 s here) at the latest.
const WAIT_MS = 3000;

const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.md') && f !== 'README.md')
  .sort();
const loaded = files.map((f) => ({ file: f, ...parseCaseFile(f, readFileSync(DIR + f, 'utf8')) }));

t.test('the case files', async (t) => {
  const all = loaded.flatMap((l) => l.cases);
  t.ok(all.length >= 30, `${all.length} cases in ${files.join(', ')}`);
  for (const l of loaded) t.ok(l.cases.length > 0, `${l.file} has cases`);
  const names = new Set(all.map((c) => `${c.file}: ${c.name}`));
  t.equal(names.size, all.length, 'case names are unique within a file');
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const { file, options, cases } of loaded) {
  t.test(file, async (t) => {
    const backend = await recordingBackend();
    const opts: StartOptions = {
      listen: '127.0.0.1:0',
      backend: `127.0.0.1:${backend.port}`,
      mode: 'http',
      workers: 1,
      logLevel: 'silent',
      headerTimeoutMs: 2000,
      backendTimeoutMs: 2000,
      ...(options as StartOptions),
    };
    const proxy = await start(opts);
    t.teardown(async () => {
      await proxy.close(0);
      await backend.close();
    });
    for (const c of cases) await t.test(c.name, (t) => runCase(t, c, proxy.port, backend));
  });
}

async function runCase(
  t: Test,
  c: ConformanceCase,
  port: number,
  backend: RecordingBackend,
): Promise<void> {
  const requestsBefore = backend.requests.length;
  const bytesBefore = backend.connections.reduce((n, x) => n + x.bytes, 0);
  const refusedBefore = new Set(backend.connections.filter((x) => x.parseError));
  const client = await httpClient(port);
  t.teardown(() => client.destroy());
  client.send(c.raw, []);

  let got: number[] = [];
  let waited = false; // the responses did not come: do not wait as long again for the close
  try {
    got = (await client.responses(c.statuses.length, WAIT_MS)).map((r) => r.status);
  } catch (e) {
    waited = true;
    got = client.reader.finalResponses().map((r) => r.status);
    t.fail(`responses: ${(e as Error).message}`);
  }
  t.same(got.slice(0, c.statuses.length), c.statuses, `statuses ${c.statuses.join(' ')}`);
  const last = client.reader.finalResponses()[c.statuses.length - 1];

  if (c.close) {
    t.match(last?.headers['connection'] ?? '', /\bclose\b/i, 'the last response says Connection: close');
    let closedOk = true;
    try {
      await client.closed(waited ? 200 : WAIT_MS);
    } catch (e) {
      closedOk = false;
      t.fail((e as Error).message);
    }
    if (closedOk) {
      t.equal(client.reader.finalResponses().length, c.statuses.length, 'nothing more after the last response');
      t.equal(client.reader.error, null, 'the responses parse');
    }
  } else {
    t.notMatch(last?.headers['connection'] ?? '', /\bclose\b/i, 'no Connection: close');
    if (last && !waited) {
      // The connection is still in step: one more request on it is answered.
      client.send(get('/follow-up'));
      try {
        const rs = await client.responses(c.statuses.length + 1, WAIT_MS);
        t.equal(rs[c.statuses.length].status, 200, 'a follow-up request on the same connection is answered');
      } catch (e) {
        t.fail(`follow-up: ${(e as Error).message}`);
      }
    }
  }

  const want = c.backend + (c.close || !last ? 0 : 1);
  const seen = () => backend.requests.length - requestsBefore;
  try {
    await waitFor(() => seen() >= want, `${want} backend request(s)`, 2000);
  } catch {
    // reported below
  }
  await sleep(30); // anything still on its way arrives, and counts against the case
  t.equal(seen(), want, `the backend received ${want} request(s)`);
  if (c.backend === 0) {
    t.equal(backend.connections.reduce((n, x) => n + x.bytes, 0) - bytesBefore, 0, 'not one byte reached the backend');
  }
  const bad = backend.connections.filter((x) => x.parseError && !refusedBefore.has(x));
  t.same(bad.map((x) => x.parseError), [], 'the backend could parse everything it received');
  const forwarded = backend.requests.slice(requestsBefore).map((r) => `${r.method} ${r.url}`);
  t.comment(`backend saw: ${forwarded.join(', ') || 'nothing'}`);
}
