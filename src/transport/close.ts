// The one close path. A connection (a client slot and its backend slot, if any) ends through endPair(),
// whatever its protocol; each slot is then closed by the loop's closeSlot(), which gives back the protocol's
// state and calls releaseSlot() here for what the table says the slot holds.
//
//   endPair(s, term, abort) ──> the client counted once: ACTIVE - 1, terminations[its code] + 1
//                         └───> closeSlot(s), closeSlot(peer) ──> releaseSlot(): deadline, boxes, pipe,
//                               SO_LINGER 0 when aborting, table slot, close(fd)
//
// Why it ended is the client's termination code (core/term.ts): the first one recorded for it (a 502
// answered, then the client closing, is a backend failure), else the one endPair() is given. Its log line is
// the protocol's: each protocol words its own, and builds it only when the log will print it.

import { CTR, FE, TERM_BASE, feBase, observe } from '../core/counters.js';
import type { WorkerContext } from '../core/context.js';
import type { ConnTable } from '../core/table.js';
import { LEVEL } from '../core/log.js';
import { TERM } from '../core/term.js';
import { KIND, PROTO, XPRT } from '../core/types.js';
import { close, errnoName, setLingerZero } from '../sys/index.js';
import { dropInbox, dropOutbox } from './boxes.js';
import { tlsRelease } from './ssl-slots.js';

/** Records why client c is ending, unless a cause was recorded first. */
export function recordTerm(t: ConnTable, c: number, term: number): void {
  if (t.term[c] === 0) t.term[c] = term;
}

/**
 * Ends the connection slot s belongs to: s and its peer are closed together (invariant 8), and the client
 * is counted once under its termination code (invariant 12: the only place that ends a client). With `abort` both are reset (RST) rather than closed with
 * FIN, so that neither can take a stream cut short for a whole one, and the end counts as an I/O error.
 */
export function endPair(ctx: WorkerContext, s: number, term: number, abort: boolean): void {
  const t = ctx.t;
  const p = t.peer[s];
  const c = t.kind[s] === KIND.CLIENT ? s : p;
  if (c >= 0) {
    recordTerm(t, c, term);
    t.ctr[TERM_BASE + t.term[c]]++;
    t.ctr[CTR.ACTIVE]--;
    const fb = feBase(t.fe[c]);
    t.ctr[fb + FE.ACTIVE]--;
    t.ctr[fb + FE.TERM + t.term[c]]++;
    // A tunnel's whole life is its frontend's duration (an HTTP request's is counted when it ends).
    if (t.proto[c] === PROTO.TUNNEL) observe(t.ctr, fb + FE.DURATION, (ctx.hrNow - t.since[c]) / 1000);
    // The access log: a TCP connection's record, or an HTTP request's that had not ended.
    const a = ctx.alog;
    if (a.on[t.fe[c]] && (a.open[c] || !a.http[t.fe[c]])) a.write(t, c, t.term[c], ctx.hrNow);
  }
  if (abort) t.ctr[CTR.IO_ERRORS]++;
  ctx.closeSlot(s, abort);
  if (p >= 0) ctx.closeSlot(p, abort);
}

/**
 * The proxy cannot go on with slot s's connection because `what` failed with `err` (an epoll_ctl, say):
 * logged, the pair reset, and counted as INTERNAL.
 */
export function endInternal(ctx: WorkerContext, s: number, what: string, err: number): void {
  const t = ctx.t;
  if (ctx.log.admits(LEVEL.info, TERM.INTERNAL)) {
    const c = t.kind[s] === KIND.CLIENT ? s : t.peer[s];
    ctx.log.limited(LEVEL.info, TERM.INTERNAL, `closed ${t.describe(c >= 0 ? c : s)}: ${what}: ${errnoName(err)}`);
  }
  endPair(ctx, s, TERM.INTERNAL, true);
}

/**
 * Gives back what the table says slot s holds (deadline, inbox, outbox buffer or pipe), frees the slot and
 * closes its fd. Only the loop's closeSlot() calls it (invariant 1). A pipe that still holds bytes is closed
 * rather than reused (invariant 7).
 */
export function releaseSlot(ctx: WorkerContext, s: number, abort: boolean): void {
  const t = ctx.t;
  ctx.timers.disarm(s);
  dropInbox(ctx, s);
  dropOutbox(ctx, s);
  if (t.pipe[s] >= 0) {
    ctx.pipes.release(t.pipe[s], t.pipeLen[s] > 0);
    t.pipe[s] = -1;
  }
  const fd = t.fd[s];
  if (t.xprt[s] === XPRT.TLS) tlsRelease(s);
  if (abort) setLingerZero(fd);
  t.release(s);
  close(fd); // also removes fd from the epoll set: no fd here is ever dup'ed
}
