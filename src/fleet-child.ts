// One process of a `--processes` fleet (control/fleet.ts). Its options arrive as JSON in argv[2], already checked
// and resolved by the parent: a config document with the ports the parent reserved. The parent may send it
// another to reload. It starts the proxy, says "ready" (or why it could not) over IPC, and drains
// and exits on SIGTERM or SIGINT, or when the parent is gone: a fleet never outlives its supervisor. Its TLS
// session ticket keys are the parent's, from the environment (control/tls.ts).

import type { ChildMessage, ParentMessage } from './control/fleet.js';
import { TICKET_KEYS_ENV, adoptTicketKeys } from './control/tls.js';
import { start, ProxyError, type StartOptions } from './index.js';

const say = (m: ChildMessage) => process.send?.(m);

let proxy: Awaited<ReturnType<typeof start>>;
try {
  // The parent's TLS session ticket keys: every process of the fleet resumes the others' sessions.
  const keys = process.env[TICKET_KEYS_ENV];
  delete process.env[TICKET_KEYS_ENV];
  if (keys !== undefined) adoptTicketKeys(keys);
  proxy = await start(JSON.parse(process.argv[2]) as StartOptions);
} catch (e) {
  const code = e instanceof ProxyError ? e.code : null;
  say({ type: 'error', code, message: e instanceof ProxyError ? e.message : String((e as Error).stack ?? e) });
  process.exit(1);
}
say({ type: 'ready', workers: proxy.workers, capacityPerWorker: proxy.capacityPerWorker });

process.on('message', (m: ParentMessage) => {
  if (m.type !== 'reload') return;
  proxy.reload(m.config).then(
    () => say({ type: 'reloaded', error: null }),
    (e: Error) => say({ type: 'reloaded', error: e.message }),
  );
});

let stops = 0;
const stop = () => {
  stops++;
  // A second request to stop (the parent's second signal) cuts the drain short.
  proxy.close(stops === 1 ? undefined : 0).then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
