// How much of each worker's table and pools a process gets: from the open-file limit, raised to the hard
// limit first. Shared by start() and the toxiproxy server.

import { raiseNofile } from '../sys/index.js';

// Bytes a connection's outbox buffer holds, and the size each splice pipe is set to. 64 KiB is Linux's
// default pipe size (16 pages), so a direction moves the same amount per call whether it copies or splices,
// and `auto` can compare a read against it. Not tuned further yet: see docs/benchmarks.md for what was run.
export const BUFFER_SIZE = 64 * 1024;
// fds kept back from the per-process limit for everything that is not a connection: stdio, the epoll and
// eventfd of each worker, the demo backend, Node's own (libuv's signal pipe, its epoll, inotify...).
const RESERVED_FDS = 64;

/**
 * How many table slots and pipes each worker gets, from the open-file limit (first raised to the hard
 * limit): each slot and pipe end is an fd.
 */
export function planCapacity(workers: number, maxConnections: number | null): { slots: number; pipes: number } {
  const [soft] = raiseNofile();
  const budget = Math.max(16, Math.floor((soft - RESERVED_FDS) / workers));
  // Up to 1/8 of the budget as pipes (2 fds each): pipes are only held by connections mid bulk-transfer,
  // and when none can be had, a connection copies instead (core/pools.ts).
  const pipes = Math.min(1024, Math.floor(budget / 16));
  let slots = budget - 2 * pipes;
  if (maxConnections !== null) slots = Math.min(slots, 2 * maxConnections + 2);
  return { slots, pipes };
}

