// What a handler is given: the worker's context, as a type. The worker's loop (src/worker/loop.ts) is the one
// implementation. Each layer above adds what it owns (transport: the PROXY protocol state; route: frontends
// and backends; http: its per-slot state) by extending this type, so that handlers name only the layers
// below them and only the loop knows every protocol.

import type { AccessLog } from './accesslog.js';
import type { Logger } from './log.js';
import type { BufferPool, PipePool } from './pools.js';
import type { ConnTable } from './table.js';
import type { TimerWheel } from './timers.js';

export interface WorkerContext {
  readonly t: ConnTable;
  readonly bufs: BufferPool;
  readonly pipes: PipePool;
  /** One deadline per slot at most (HTTP heads and bodies, backends, PROXY headers, connects, tunnels). */
  readonly timers: TimerWheel;
  readonly log: Logger;
  /** The access log's ring and the requests it is recording (accesslog.ts). */
  readonly alog: AccessLog;
  readonly epfd: number;
  /**
   * Date.now() when the last epoll_wait returned: what handlers arm deadlines from, instead of reading the
   * clock per connection (nginx's ngx_current_msec does the same). An event batch takes well under a
   * millisecond, and deadlines are kept to the wheel's 100 ms ticks anyway.
   */
  readonly now: number;
  /** The table's clock (core/table.ts) when the last epoll_wait returned: ms since the epoch, with a fraction. */
  readonly hrNow: number;
  /** The worker was told to drain: no more accepts, no idle connections kept. */
  readonly draining: boolean;
  /** Puts slot `s` on the ready queue (a turn after the current batch) unless it is there already. */
  enqueue(s: number): void;
  /**
   * Runs slot `s`'s protocol now, as a ready-queue turn would: how one side of a pair resumes the other
   * (an HTTP client whose backend connected, a backend whose client's socket took more bytes).
   */
  resume(s: number): void;
  /**
   * Releases slot `s` and closes its fd: the one place a slot's fd is closed (invariant 1). Everything the
   * slot holds goes back (boxes, pipe, protocol state, deadline). With `abort`, the close sends RST.
   */
  closeSlot(s: number, abort: boolean): void;
}
