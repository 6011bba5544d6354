// Worker thread entry. Builds this worker's loop from workerData and runs it; the loop's return (after a
// stop, or a drain with no connection left) ends the thread, which the main thread sees as 'exit'.

import { parentPort, workerData } from 'node:worker_threads';
import { releaseLowMemory } from '../sys/index.js';
import { WorkerLoop, type WorkerConfig } from './loop.js';

const cfg = workerData as WorkerConfig;
const loop = new WorkerLoop(cfg);
// Posted before the loop blocks in epoll_wait; the main thread's event loop delivers it.
parentPort?.postMessage('ready');
try {
  loop.run();
} finally {
  cfg.mailbox.close();
  // The pool's slabs and the parsers' structs mapped below 2 GiB are not V8's to free: a worker that ends,
  // or dies and is replaced, gives them back here, after the last use of any of them.
  releaseLowMemory();
}
