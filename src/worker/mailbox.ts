// The worker's mailbox: structured messages from the main thread. A worker sits in a blocking epoll_wait and
// never returns to Node's event loop while it serves, so it never sees a MessagePort's 'message' event. The
// main thread therefore posts the message, then adds 1 to the worker's eventfd, which is in the worker's
// epoll set (invariant 6); the worker, woken, takes every message waiting with receiveMessageOnPort, which
// reads the port's queue synchronously.

import { type MessagePort, receiveMessageOnPort } from 'node:worker_threads';

/** What the main thread may tell a worker. New kinds (add or remove a listener, change options) go here. */
export type ControlMessage =
  /** Close the listeners, let open connections finish, leave the loop when none is left. */
  | { type: 'drain' }
  /** Close every connection, the listeners and the pools, and leave the loop. */
  | { type: 'stop' };

/** Hands every message waiting on `port` to `handle`, in the order they were posted. */
export function readMailbox(port: MessagePort, handle: (m: ControlMessage) => void): void {
  for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
    handle(m.message as ControlMessage);
  }
}
