// A slot's two boxes, each one pool buffer at most and only while it holds bytes (invariant 5):
//
//   inbox  (t.inb, t.ilen; worker-local)   bytes read from the slot's fd, not yet parsed or forwarded
//   outbox (t.buf, t.bufOff, t.bufLen,     bytes for the slot's peer, not yet written to it: a pool buffer,
//           or t.pipe, t.pipeLen)          or a pool pipe after a splice, never both
//
// Taking a box takes a buffer from the pool when the slot has none; dropping one gives it back. These are
// the only places that do it by hand, apart from reads that fill a new box (io.ts) and releaseSlot().

import type { WorkerContext } from '../core/context.js';

/** Slot s's inbox buffer, taken from the pool if it has none (then empty). */
export function takeInbox(ctx: WorkerContext, s: number): Buffer {
  const t = ctx.t;
  if (t.inb[s] < 0) {
    t.inb[s] = ctx.bufs.acquire();
    t.ilen[s] = 0;
  }
  return ctx.bufs.get(t.inb[s]);
}

/** Slot s's inbox buffer; s must have one. */
export function inbox(ctx: WorkerContext, s: number): Buffer {
  return ctx.bufs.get(ctx.t.inb[s]);
}

/** Removes the first `n` bytes of s's inbox (they were parsed, forwarded or replaced). */
export function consumeInbox(ctx: WorkerContext, s: number, n: number): void {
  const t = ctx.t;
  const left = t.ilen[s] - n;
  if (left > 0) inbox(ctx, s).copyWithin(0, n, t.ilen[s]);
  t.ilen[s] = left;
  if (left === 0) dropInbox(ctx, s);
}

/** Gives s's inbox back to the pool, with whatever it held. */
export function dropInbox(ctx: WorkerContext, s: number): void {
  const t = ctx.t;
  if (t.inb[s] >= 0) {
    ctx.bufs.release(t.inb[s]);
    t.inb[s] = -1;
  }
  t.ilen[s] = 0;
}

/** The outbox of s (bytes for its peer), taken from the pool if s has none. Its free space starts at bufLen. */
export function takeOutbox(ctx: WorkerContext, s: number): Buffer {
  const t = ctx.t;
  if (t.buf[s] < 0) {
    t.buf[s] = ctx.bufs.acquire();
    t.bufOff[s] = 0;
    t.bufLen[s] = 0;
  }
  return ctx.bufs.get(t.buf[s]);
}

/** Gives s's outbox buffer back to the pool, with whatever it held (the bytes are not to be sent). */
export function dropOutbox(ctx: WorkerContext, s: number): void {
  const t = ctx.t;
  if (t.buf[s] >= 0) {
    ctx.bufs.release(t.buf[s]);
    t.buf[s] = -1;
  }
}

/** Free bytes at the end of s's outbox (taking one from the pool, and moving unsent bytes to the front). */
export function roomOut(ctx: WorkerContext, s: number): number {
  const t = ctx.t;
  const out = takeOutbox(ctx, s);
  if (t.bufOff[s] > 0) {
    out.copyWithin(0, t.bufOff[s], t.bufLen[s]);
    t.bufLen[s] -= t.bufOff[s];
    t.bufOff[s] = 0;
  }
  return out.length - t.bufLen[s];
}

export function outEmpty(ctx: WorkerContext, s: number): boolean {
  return ctx.t.buf[s] < 0 && ctx.t.pipe[s] < 0;
}

/**
 * Makes s's inbox its outbox, from byte `from` on (what a handshake read past its header, in a tunnel, goes
 * to the peer first). An inbox with nothing past `from` is dropped. s's outbox must be empty.
 */
export function inboxToOutbox(ctx: WorkerContext, s: number, from: number): void {
  const t = ctx.t;
  if (t.ilen[s] <= from) {
    dropInbox(ctx, s);
    return;
  }
  t.buf[s] = t.inb[s];
  t.bufOff[s] = from;
  t.bufLen[s] = t.ilen[s];
  t.inb[s] = -1;
  t.ilen[s] = 0;
}
