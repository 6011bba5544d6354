// HTTP faults (docs/toxiproxy.md, "HTTP faults"): toxics that act on requests and responses of an HTTP
// frontend, each drawn per request against its toxicity, for requests whose path starts with its `path`.
// The HTTP layer asks here at three points, and does what the answer says:
//
//   a request line has come whole ──> requestFault(): DROP (close, no answer) / DELAY until reqAt / GO
//   its head was accepted ──> errorFault(): http_error's response instead of a backend's
//                         └─> responseFaults(): hold the response head until headAt; cut after bodyLeft bytes
//
// The request line is read from the inbox's bytes where it lies; nothing is copied or allocated.

import { type FaultContext, type FrontendFaults, LF, TX } from './faults.js';

/** requestFault()'s answers. */
export const REQ = { GO: 0, DELAY: 1, DROP: 2 } as const;

const SP = 0x20;
const CR = 0x0d;
const SLASH = 0x2f;

/** The status of the last http_error response requestFaults() returned. */
export let errorStatus = 0;

// The path of the last request line found: buf[pathFrom..pathTo).
let pathFrom = 0;
let pathTo = 0;

/** Finds the path of the request line at buf[0..len): false when the line has not come whole. */
function findPath(buf: Uint8Array, len: number): boolean {
  let i = 0;
  while (i < len && buf[i] !== SP && buf[i] !== CR) i++;
  if (i >= len || buf[i] !== SP) return i < len; // no target (llhttp will refuse it): nothing matches
  const ts = i + 1;
  let te = ts;
  while (te < len && buf[te] !== SP && buf[te] !== CR) te++;
  if (te >= len) return false;
  // An absolute-form target's path follows its authority.
  let ps = ts;
  if (buf[ps] !== SLASH) {
    let k = ts;
    while (k + 2 < te && !(buf[k] === 0x3a && buf[k + 1] === SLASH && buf[k + 2] === SLASH)) k++;
    ps = k + 2 < te ? k + 3 : te;
    while (ps < te && buf[ps] !== SLASH) ps++;
  }
  pathFrom = ps;
  pathTo = te;
  return true;
}

function matches(p: FrontendFaults, i: number, buf: Uint8Array): boolean {
  const want = p.paths[i];
  if (want.length > pathTo - pathFrom) return false;
  for (let k = 0; k < want.length; k++) if (buf[pathFrom + k] !== want[k]) return false;
  return true;
}

/** Toxic i of `p`, of type `type`, acts on this request: the path matches, and the draw says so. */
function hits(ctx: FaultContext, p: FrontendFaults, i: number, type: number, buf: Uint8Array): boolean {
  return p.type[i] === type && matches(p, i, buf) && ctx.faults.draw(p, i) === 1;
}

/**
 * Client c's next request starts at buf[0..len): whether it goes on, waits (until faults.reqAt[c], a wake
 * scheduled), or is dropped. Decided once per request: the decision holds until startRequest() clears it.
 */
export function requestFault(ctx: FaultContext, c: number, buf: Uint8Array, len: number): number {
  const fx = ctx.faults;
  const at = fx.reqAt[c];
  if (at !== 0) {
    if (at <= ctx.hrNow) return REQ.GO;
    fx.clock!.schedule(c, ctx.t.gen[c], at);
    return REQ.DELAY;
  }
  if (!findPath(buf, len)) return REQ.GO;
  const p = fx.plan(ctx.t.fe[c]);
  let delay = 0;
  for (let i = 0; i < p.n; i++) {
    if (hits(ctx, p, i, TX.HTTP_REQUEST_DROP, buf)) return REQ.DROP;
    if (hits(ctx, p, i, TX.HTTP_REQUEST_DELAY, buf)) delay += Math.max(0, p.a[3 * i]);
  }
  fx.reqAt[c] = ctx.hrNow + delay;
  if (delay === 0) return REQ.GO;
  fx.clock!.schedule(c, ctx.t.gen[c], fx.reqAt[c]);
  return REQ.DELAY;
}

/**
 * Client c's request (its head at the start of buf) was accepted: its per-request decision is cleared, its
 * response's faults are drawn, and http_error's response is returned when one answers it (else null).
 */
export function requestFaults(ctx: FaultContext, c: number, buf: Uint8Array, len: number): Buffer | null {
  const fx = ctx.faults;
  fx.reqAt[c] = 0;
  fx.headAt[c] = 0;
  fx.lflags[c] &= ~LF.CUT;
  if (!findPath(buf, len)) return null;
  const p = fx.plan(ctx.t.fe[c]);
  let delay = 0;
  for (let i = 0; i < p.n; i++) {
    if (hits(ctx, p, i, TX.HTTP_ERROR, buf)) {
      errorStatus = p.statuses[i];
      return p.answers[i];
    }
    if (hits(ctx, p, i, TX.HTTP_HEAD_DELAY, buf)) delay += Math.max(0, p.a[3 * i]);
    if (hits(ctx, p, i, TX.HTTP_BODY_LIMIT, buf)) {
      const n = Math.max(0, p.a[3 * i]);
      if (!(fx.lflags[c] & LF.CUT) || n < fx.bodyLeft[c]) fx.bodyLeft[c] = n;
      fx.lflags[c] |= LF.CUT;
    }
  }
  if (delay > 0) fx.headAt[c] = -delay; // counted from when the head comes (responseHeadCame)
  return null;
}

/** Client c's response head came from its backend b: a head delay starts now. */
export function responseHeadCame(ctx: FaultContext, c: number, headBytes: number): void {
  const fx = ctx.faults;
  if (fx.headAt[c] < 0) fx.headAt[c] = ctx.hrNow - fx.headAt[c];
  if (fx.lflags[c] & LF.CUT) fx.bodyLeft[c] += headBytes;
}

/** Whether backend b's bytes for client c must wait for the head delay (a wake scheduled for b). */
export function headHeld(ctx: FaultContext, c: number, b: number): boolean {
  const at = ctx.faults.headAt[c];
  if (at <= ctx.hrNow) return false;
  ctx.faults.clock!.schedule(b, ctx.t.gen[b], at);
  return true;
}
