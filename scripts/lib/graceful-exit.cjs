// Preloaded (node -r) into the process scripts/profile.mjs profiles, after 0x's own preloads. 0x's
// soft-exit preload calls process.exit() on SIGINT/SIGTERM; that would end ffi-proxy while its worker thread
// sits in epoll_wait, and a thread that does not end normally never writes its --cpu-prof profile. Taking
// those listeners off here lets ffi-proxy's own handler (dist/cli.js) stop the worker and exit cleanly.
'use strict';
const { isMainThread } = require('node:worker_threads');
if (isMainThread) {
  process.removeAllListeners('SIGINT');
  process.removeAllListeners('SIGTERM');
}
