// The fault path of a tunnel direction: what src/tunnel.ts's pump() runs instead for a slot with FL.TOXIC.
// One turn, for the lane read from slot `src` and written to its peer:
//
//   timeout / reset_peer / a timeout taken away due? ──> CLOSE or RESET
//   the outbox from before the toxics came ──> flushed first
//   loop: send the pieces that are due ──> read one more piece (its due time: now + the latencies drawn)
//   src's EOF read and the lane empty ──> slow_close's delay ──> FIN        limit_data reached ──> CLOSE
//   no toxic of this direction left and the lane empty ──> PLAIN (back to the plain path, splice again)
//
// Times are the table's clock with a fraction of a millisecond (ctx.hrNow). A piece, a bandwidth slice or
// a slicer's next slice that is not due yet schedules a wake on the fault clock (clock.ts) and the turn
// ends; the loop wakes the slot then. Toxiproxy's semantics and units are in docs/toxiproxy.md; where this
// differs (bandwidth and the slicer act as bytes leave, after latency) it says why.

import { FL, KIND } from '../core/types.js';
import { SPLICE_MODE, flush, readInto, sendFrom } from '../transport/index.js';
import { E } from '../sys/index.js';
import { type FaultContext, type FrontendFaults, type LaneToxics, LF } from './faults.js';
import { DATA_START } from './lanes.js';

/** What a turn asks of the tunnel. */
export const PUMP = {
  WAIT: 0, // nothing more now: a wake, an EPOLLOUT or an EPOLLIN will come
  FIN: 1, // src's stream ended and everything was sent: pass the FIN on
  READ_FAILED: 2, // reading src failed with pumpErrno
  WRITE_FAILED: 3, // writing to the peer failed with pumpErrno
  CLOSE: 4, // a toxic ends the connection (timeout, limit_data, a timeout taken away)
  RESET: 5, // reset_peer: end it with RST
  PLAIN: 6, // no toxic left on this direction: FL.TOXIC cleared, the plain pump takes over
} as const;

/** The errno of the last READ_FAILED or WRITE_FAILED. */
export let pumpErrno = 0;

// Reads per turn, as the plain pump's.
const READS_PER_TURN = 16;
const NO_ROOM = -1_000_000;

export function faultTurn(ctx: FaultContext, src: number): number {
  const t = ctx.t;
  const fx = ctx.faults;
  const dst = t.peer[src];
  const c = t.kind[src] === KIND.CLIENT ? src : dst;
  const up = src === c;
  const now = ctx.hrNow;
  if ((fx.resetAt[src] !== 0 && fx.resetAt[src] <= now)) return PUMP.RESET;
  if ((fx.closeAt[src] !== 0 && fx.closeAt[src] <= now) || fx.lflags[src] & LF.CLOSE_NOW) return PUMP.CLOSE;
  if (t.buf[src] >= 0 || t.pipe[src] >= 0) {
    if (t.flags[dst] & FL.W_BLOCKED) return PUMP.WAIT;
    const f = flush(ctx, src, dst);
    if (f < 0) return failed(PUMP.WRITE_FAILED, f);
    if (f === 0) return PUMP.WAIT;
  }
  const p = fx.plan(t.fe[c]);
  const mask = fx.mask[c];
  const x = fx.scan(p, mask, up);
  for (let reads = 0; ; ) {
    const s = sendDue(ctx, src, dst, p, x, now);
    if (s < 0) return failed(PUMP.WRITE_FAILED, s);
    const f = t.flags[src];
    if (f & FL.EOF_IN || !(f & FL.READABLE)) break;
    if (reads++ === READS_PER_TURN) {
      ctx.enqueue(src);
      return PUMP.WAIT;
    }
    const n = x.drop ? readDropped(ctx, src, x, now) : readPiece(ctx, src, p, mask, up, x, now);
    if (n > 0) continue;
    if (n === 0) {
      t.flags[src] |= FL.EOF_IN;
      if (x.resetMs >= 0 && !(fx.lflags[src] & LF.SEEN)) startReset(ctx, src, x, now);
      break;
    }
    if (n === -E.EAGAIN || n === NO_ROOM) break;
    return failed(PUMP.READ_FAILED, n);
  }
  return settle(ctx, src, x, now);
}

/** After a turn's reads and sends: the end of the stream, a limit reached, the way back to the plain path, the next wake. */
function settle(ctx: FaultContext, src: number, x: LaneToxics, now: number): number {
  const t = ctx.t;
  const fx = ctx.faults;
  const empty = fx.lane[src] < 0;
  if (fx.resetAt[src] !== 0) {
    if (fx.resetAt[src] <= now) return PUMP.RESET;
    wake(ctx, src, fx.resetAt[src]);
  }
  if (fx.closeAt[src] !== 0) wake(ctx, src, fx.closeAt[src]);
  if (!empty) return PUMP.WAIT;
  if (x.limit >= 0 && fx.passed[src] - fx.limitBase[src] >= x.limit && (x.limit > 0 || t.flags[src] & (FL.READABLE | FL.EOF_IN))) return PUMP.CLOSE;
  if (t.flags[src] & FL.EOF_IN && fx.resetAt[src] === 0) {
    if (x.slowCloseMs > 0) {
      if (fx.finAt[src] === 0) fx.finAt[src] = now + x.slowCloseMs;
      if (fx.finAt[src] > now) {
        wake(ctx, src, fx.finAt[src]);
        return PUMP.WAIT;
      }
    }
    return PUMP.FIN;
  }
  if (!x.any && fx.closeAt[src] === 0 && fx.resetAt[src] === 0) {
    t.flags[src] &= ~FL.TOXIC;
    if (ctx.frontends[t.fe[t.kind[src] === KIND.CLIENT ? src : t.peer[src]]].spliceMode === SPLICE_MODE.ON) t.flags[src] |= FL.SPLICE;
    ctx.faults.clock!.cancel(src);
    return PUMP.PLAIN;
  }
  return PUMP.WAIT;
}

/**
 * Sends the lane's pieces that are due, through the slicer and the bandwidth limit: 1 when the lane is
 * empty (and given back), 0 when it waits (a wake scheduled, or the peer blocked), or -errno.
 */
function sendDue(ctx: FaultContext, src: number, dst: number, p: FrontendFaults, x: LaneToxics, now: number): number {
  const t = ctx.t;
  const fx = ctx.faults;
  const l = fx.lane[src];
  if (l < 0) return 1;
  const lanes = fx.lanes!;
  while (lanes.count[l] > 0) {
    if (t.flags[dst] & FL.W_BLOCKED) return 0;
    const due = lanes.headDue(l);
    if (due > now) return wake(ctx, src, due);
    let n = lanes.headLen(l);
    if (x.slicer >= 0) {
      if (fx.sliceAt[src] > now) return wake(ctx, src, fx.sliceAt[src]);
      if (fx.sliceLeft[src] <= 0) fx.sliceLeft[src] = fx.sliceSize(p, x.slicer);
      n = Math.min(n, fx.sliceLeft[src]);
    }
    if (x.rate > 0) {
      if (fx.bwLeft[src] <= 0) {
        // A slice of at most 100 ms worth leaves when the previous one is done, or when it came if the
        // lane was idle: no credit is saved up while idle (Toxiproxy's rule).
        fx.bwLeft[src] = Math.min(n, x.rate * 100);
        fx.bwAt[src] = Math.max(fx.bwAt[src], due) + fx.bwLeft[src] / x.rate;
      }
      if (fx.bwAt[src] > now) return wake(ctx, src, fx.bwAt[src]);
      n = Math.min(n, fx.bwLeft[src]);
    }
    const m = sendFrom(ctx, src, dst, lanes.address(l, lanes.headStart(l)), n);
    if (m < 0) return m === -E.EAGAIN ? 0 : m;
    lanes.consume(l, m);
    if (x.rate > 0) fx.bwLeft[src] -= m;
    if (x.slicer >= 0 && (fx.sliceLeft[src] -= m) <= 0) fx.sliceAt[src] = now + Math.max(0, p.a[3 * x.slicer + 2]) / 1000;
    if (m < n) return 0;
  }
  lanes.release(l);
  fx.lane[src] = -1;
  return 1;
}

/** One read into the lane, as a piece due after the latencies drawn for it: bytes, 0 at EOF, -errno, or NO_ROOM. */
function readPiece(ctx: FaultContext, src: number, p: FrontendFaults, mask: number, up: boolean, x: LaneToxics, now: number): number {
  const t = ctx.t;
  const fx = ctx.faults;
  if (x.limit >= 0 && fx.passed[src] - fx.limitBase[src] >= x.limit) return NO_ROOM;
  let l = fx.lane[src];
  const lanes = fx.lanePool(t.capacity, t.ctr);
  if (l < 0) {
    l = lanes.acquire();
    if (l < 0) return NO_ROOM;
    fx.lane[src] = l;
  }
  let room = lanes.room(l);
  if (x.limit >= 0) room = Math.min(room, x.limit - (fx.passed[src] - fx.limitBase[src]));
  if (room <= 0) return NO_ROOM; // the lane holds pieces (a new one would have room)
  const at = lanes.at;
  const n = readInto(ctx, src, lanes.address(l, at), room);
  if (n > 0) {
    fx.passed[src] += n;
    const due = Math.max(fx.lastDue[src], x.latency ? now + fx.latencyMs(p, mask, up) : now);
    fx.lastDue[src] = due;
    lanes.add(l, at, n, due);
  } else if (lanes.count[l] === 0) {
    lanes.release(l);
    fx.lane[src] = -1;
  }
  return n;
}

/** timeout and reset_peer: a read whose bytes are thrown away (reset_peer's clock starts at the first). */
function readDropped(ctx: FaultContext, src: number, x: LaneToxics, now: number): number {
  const fx = ctx.faults;
  const lanes = fx.lanePool(ctx.t.capacity, ctx.t.ctr);
  let l = fx.lane[src];
  const own = l < 0;
  if (own) l = lanes.acquire();
  if (l < 0) return NO_ROOM;
  // Into the lane's byte ring past its pieces' reach when it holds some: nothing in it is overwritten.
  const room = own ? 65536 : lanes.room(l);
  const n = room > 0 ? readInto(ctx, src, lanes.address(l, own ? DATA_START : lanes.at), room) : NO_ROOM;
  if (own) lanes.release(l);
  if (n > 0 && x.resetMs >= 0 && !(fx.lflags[src] & LF.SEEN)) startReset(ctx, src, x, now);
  return n;
}

function startReset(ctx: FaultContext, src: number, x: LaneToxics, now: number): void {
  const fx = ctx.faults;
  fx.lflags[src] |= LF.SEEN;
  fx.resetAt[src] = now + x.resetMs;
}

/** Wakes slot s at `when` (the fault clock); returns 0, a sendDue() "waiting". */
function wake(ctx: FaultContext, s: number, when: number): number {
  ctx.faults.clock!.schedule(s, ctx.t.gen[s], when);
  return 0;
}

function failed(code: number, err: number): number {
  pumpErrno = err;
  return code;
}
