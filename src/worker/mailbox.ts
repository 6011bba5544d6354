// The worker's mailbox: structured messages from the main thread. A worker sits in a blocking epoll_wait and
// never returns to Node's event loop while it serves, so it never sees a MessagePort's 'message' event. The
// main thread therefore posts the message, then adds 1 to the worker's eventfd, which is in the worker's
// epoll set (invariant 6); the worker, woken, takes every message waiting with receiveMessageOnPort, which
// reads the port's queue synchronously.

import { type MessagePort, receiveMessageOnPort } from 'node:worker_threads';
import type { BackendConfig, FrontendConfig } from '../route/index.js';

/** What the main thread may tell a worker. */
export type ControlMessage =
  /** Close the listeners, let open connections finish, leave the loop when none is left. */
  | { type: 'drain' }
  /** Close every connection, the listeners and the pools, and leave the loop. */
  | { type: 'stop' }
  /**
   * A reload: the route tables as they now are, by stable index (null: taken out), and for each frontend
   * new to the worker, its listening socket at that frontend's index (-1 elsewhere).
   */
  | {
      type: 'routes';
      /** Counts the reloads: the worker stores it in CTL.ROUTES once it has applied these tables. */
      generation: number;
      frontends: (FrontendConfig | null)[];
      backends: (BackendConfig | null)[];
      listenFds: number[];
    }
  /** Server `id` went down: close the idle connections to it (new ones already avoid it). */
  | { type: 'server-down'; id: number }
  /** The admin endpoint set server `id`'s weight (until the next reload). */
  | { type: 'weight'; id: number; weight: number }
  /** The admin endpoint closes client slot `slot` if it still holds the connection of generation `gen`. */
  | { type: 'close'; slot: number; gen: number }
  /** The admin endpoint changed the log level. */
  | { type: 'log-level'; level: number }
  /** Close every client connection of frontend `fe` (a Toxiproxy proxy disabled or deleted). */
  | { type: 'close-frontend'; fe: number };

/** Hands every message waiting on `port` to `handle`, in the order they were posted. */
export function readMailbox(port: MessagePort, handle: (m: ControlMessage) => void): void {
  for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
    handle(m.message as ControlMessage);
  }
}
