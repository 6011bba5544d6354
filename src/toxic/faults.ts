// A worker's faults: each frontend's toxics compiled to arrays (at a reload, never per event), and per slot
// the state of the toxics on its connection. A toxic connection's two directions are lanes, each named by
// the slot its bytes are read from: the client's slot is the upstream lane (client to server), the
// backend's the downstream lane. Nothing here is made until a frontend has a toxic.
//
// Which toxics act on a connection is drawn once, when it is paired (begin()), against each toxic's
// toxicity, from the worker's seeded generator, and kept as a bit per toxic (`mask`, by the toxic's place in
// its frontend's list): Toxiproxy draws again whenever a stage restarts, which makes a failing run
// impossible to replay. A reload that changes a frontend's toxics carries each kept toxic's bit over by its
// id, and draws for new ones (update()).

import { STATUS_CODES } from 'node:http';
import type { ConnTable } from '../core/table.js';
import { FL, KIND, PROTO, ST } from '../core/types.js';
import { type Frontend, type RouteContext, TOXIC_ATTRIBUTES, type ToxicConfig } from '../route/index.js';
import { FaultClock } from './clock.js';
import { LanePool } from './lanes.js';

/** Toxic types as small integers. */
export const TX = {
  LATENCY: 1,
  BANDWIDTH: 2,
  SLOW_CLOSE: 3,
  TIMEOUT: 4,
  RESET_PEER: 5,
  SLICER: 6,
  LIMIT_DATA: 7,
  NOOP: 8,
  // HTTP faults (http.ts): drawn per request, on HTTP frontends.
  HTTP_ERROR: 9,
  HTTP_HEAD_DELAY: 10,
  HTTP_BODY_LIMIT: 11,
  HTTP_REQUEST_DELAY: 12,
  HTTP_REQUEST_DROP: 13,
} as const;

const TYPE_CODES: Record<string, number> = {
  latency: TX.LATENCY,
  bandwidth: TX.BANDWIDTH,
  slow_close: TX.SLOW_CLOSE,
  timeout: TX.TIMEOUT,
  reset_peer: TX.RESET_PEER,
  slicer: TX.SLICER,
  limit_data: TX.LIMIT_DATA,
  noop: TX.NOOP,
  http_error: TX.HTTP_ERROR,
  http_head_delay: TX.HTTP_HEAD_DELAY,
  http_body_limit: TX.HTTP_BODY_LIMIT,
  http_request_delay: TX.HTTP_REQUEST_DELAY,
  http_request_drop: TX.HTTP_REQUEST_DROP,
};

/** A connection holds at most this many toxics' draws: a frontend's toxics beyond it act on every connection. */
export const MAX_TOXICS = 32;

/** Per lane flags. */
export const LF = {
  SEEN: 1, // reset_peer: data (or EOF) came, its timer runs
  CLOSE_NOW: 2, // a timeout toxic it had was taken away: the connection closes, as Toxiproxy's does
  CUT: 4, // HTTP client: its current response is cut after bodyLeft more bytes (http_body_limit)
} as const;

/** A frontend's toxics, in the order they were added. */
export class FrontendFaults {
  readonly n: number;
  /** Whether any is an HTTP fault (the HTTP path asks only then). */
  readonly http: boolean;
  /** Per toxic: its `path` prefix (empty: every request), and http_error's whole response. */
  readonly paths: Buffer[];
  readonly answers: (Buffer | null)[];
  readonly statuses: number[];
  readonly ids: Int32Array;
  readonly type: Uint8Array;
  readonly up: Uint8Array;
  readonly toxicity: Float64Array;
  /** Up to three numeric attributes per toxic, in TOXIC_ATTRIBUTES order. */
  readonly a: Float64Array;

  constructor(toxics: readonly ToxicConfig[]) {
    const list = toxics.filter((x) => x.type in TYPE_CODES);
    this.n = list.length;
    this.ids = Int32Array.from(list, (x) => x.id);
    this.type = Uint8Array.from(list, (x) => TYPE_CODES[x.type]);
    this.up = Uint8Array.from(list, (x) => (x.upstream ? 1 : 0));
    this.toxicity = Float64Array.from(list, (x) => x.toxicity);
    this.a = new Float64Array(3 * this.n);
    list.forEach((x, i) =>
      TOXIC_ATTRIBUTES[x.type].forEach((name, k) => {
        const v = x.attributes[name];
        this.a[3 * i + k] = typeof v === 'number' && Number.isFinite(v) ? v : 0;
      }),
    );
    this.http = this.type.some((k) => k >= TX.HTTP_ERROR);
    this.paths = list.map((x) => Buffer.from(String(x.attributes.path ?? ''), 'latin1'));
    this.statuses = list.map((x) => errorStatusOf(x));
    this.answers = list.map((x, i) => (x.type === 'http_error' ? answer(x, this.statuses[i]) : null));
  }

  /** True when toxic i is the same in `o` at place j: type, direction and attributes. */
  sameAs(i: number, o: FrontendFaults, j: number): boolean {
    return this.type[i] === o.type[j] && this.a[3 * i] === o.a[3 * j] && this.a[3 * i + 1] === o.a[3 * j + 1] && this.a[3 * i + 2] === o.a[3 * j + 2];
  }
}

const NONE = new FrontendFaults([]);

/** http_error's status: 500 when not one from 200 to 599. */
function errorStatusOf(x: ToxicConfig): number {
  const n = Number(x.attributes.status);
  return Number.isInteger(n) && n >= 200 && n <= 599 ? n : 500;
}

/** http_error's response: its status, its body, and Connection: close. */
function answer(x: ToxicConfig, status: number): Buffer {
  const body = Buffer.from(String(x.attributes.body ?? ''), 'utf8');
  const head =
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Fault'}\r\n` +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${body.length}\r\n` +
    'Cache-Control: no-store\r\n' +
    'Connection: close\r\n\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** What the toxics acting on one lane come to (scan() fills it; no object per call). */
export class LaneToxics {
  any = false; // some toxic of this direction acts on the connection
  latency = false; // one or more latency toxics
  drop = false; // timeout or reset_peer: data is thrown away
  resetMs = -1; // reset_peer's timeout (the first one's)
  rate = 0; // bandwidth: bytes per ms (KB/s), the smallest; 0: no limit
  slicer = -1; // index of the first slicer, or -1
  limit = -1; // limit_data: bytes, the smallest; -1: none
  slowCloseMs = 0; // slow_close: the sum of the delays
}

export interface FaultContext extends RouteContext {
  readonly faults: Faults;
}

export class Faults {
  plans: FrontendFaults[] = [];
  /** Made once a frontend has a toxic (size()). */
  clock: FaultClock | null = null;
  lanes: LanePool | null = null;
  mask = new Uint32Array(0); // client slot: which of its frontend's toxics act on it
  lane = new Int32Array(0); // lane slot: its lane, or -1
  lflags = new Uint8Array(0);
  lastDue = new Float64Array(0); // the latest due time given to a piece (pieces leave in order)
  bwAt = new Float64Array(0); // bandwidth: when the current slice may go
  bwLeft = new Float64Array(0); // bandwidth: bytes of the current slice not yet sent
  sliceAt = new Float64Array(0); // slicer: when the next slice may go
  sliceLeft = new Float64Array(0); // slicer: bytes left of the current slice
  closeAt = new Float64Array(0); // timeout: when the connection closes; 0: never
  resetAt = new Float64Array(0); // reset_peer: when the connection is reset; 0: not yet known
  finAt = new Float64Array(0); // slow_close: when the FIN may go; 0: not yet known
  passed = new Float64Array(0); // bytes read into the lane, all told
  limitBase = new Float64Array(0); // limit_data counts from here
  // HTTP client slots, per request (http.ts): when its request may go on (0: not decided yet), when its
  // response head may go out, and what is left of its response before the cut (with LF.CUT).
  reqAt = new Float64Array(0);
  headAt = new Float64Array(0);
  bodyLeft = new Float64Array(0);
  readonly scan0 = new LaneToxics();
  private seed: number;

  constructor(seed: number) {
    this.seed = seed | 0;
  }

  /** A number in [0, 1) from the worker's generator (mulberry32: small, fast, and replayable from --seed). */
  random(): number {
    let x = (this.seed = (this.seed + 0x6d2b79f5) | 0);
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  }

  /** Makes the per-slot state once a frontend has a toxic. */
  size(frontends: readonly Frontend[], capacity: number): void {
    if (this.clock !== null || !frontends.some((f) => f !== undefined && f.toxics.length > 0)) return;
    const C = capacity;
    this.clock = new FaultClock(C);
    this.mask = new Uint32Array(C);
    this.lane = new Int32Array(C).fill(-1);
    this.lflags = new Uint8Array(C);
    for (const k of ['lastDue', 'bwAt', 'bwLeft', 'sliceAt', 'sliceLeft', 'closeAt', 'resetAt', 'finAt', 'passed', 'limitBase', 'reqAt', 'headAt', 'bodyLeft'] as const) this[k] = new Float64Array(C);
  }

  /** Lanes are made with the first toxic connection (the table's counters count their buffers). */
  lanePool(C: number, ctr: Float64Array): LanePool {
    return (this.lanes ??= new LanePool(2 * C, 8, ctr));
  }

  plan(fe: number): FrontendFaults {
    return this.plans[fe] ?? NONE;
  }

  /** Draws toxic i of `p` for a connection: 1 when it acts. */
  draw(p: FrontendFaults, i: number): number {
    const x = p.toxicity[i];
    return x >= 1 || (x > 0 && this.random() < x) ? 1 : 0;
  }

  /** Fills scan0 with what the toxics of `mask` in direction `up` come to. */
  scan(p: FrontendFaults, mask: number, up: boolean): LaneToxics {
    const r = this.scan0;
    r.any = r.latency = r.drop = false;
    r.resetMs = r.slicer = r.limit = -1;
    r.rate = r.slowCloseMs = 0;
    const u = up ? 1 : 0;
    for (let i = 0; i < p.n; i++) {
      if (p.up[i] !== u || p.type[i] >= TX.HTTP_ERROR || !acts(mask, i)) continue;
      r.any = true;
      const a = p.a[3 * i];
      switch (p.type[i]) {
        case TX.LATENCY:
          r.latency = true;
          break;
        case TX.BANDWIDTH:
          if (a > 0 && (r.rate === 0 || a < r.rate)) r.rate = a;
          break;
        case TX.SLOW_CLOSE:
          r.slowCloseMs += Math.max(0, a);
          break;
        case TX.TIMEOUT:
          r.drop = true;
          break;
        case TX.RESET_PEER:
          r.drop = true;
          if (r.resetMs < 0) r.resetMs = Math.max(0, a);
          break;
        case TX.SLICER:
          if (r.slicer < 0) r.slicer = i;
          break;
        case TX.LIMIT_DATA:
          if (r.limit < 0 || Math.max(0, a) < r.limit) r.limit = Math.max(0, a);
          break;
      }
    }
    return r;
  }

  /** The delay the latency toxics of `mask` in direction `up` give one piece: their sum, each with its jitter. */
  latencyMs(p: FrontendFaults, mask: number, up: boolean): number {
    const u = up ? 1 : 0;
    let ms = 0;
    for (let i = 0; i < p.n; i++) {
      if (p.type[i] !== TX.LATENCY || p.up[i] !== u || !acts(mask, i)) continue;
      const jitter = p.a[3 * i + 1];
      ms += p.a[3 * i] + (jitter > 0 ? (2 * this.random() - 1) * jitter : 0);
    }
    return ms > 0 ? ms : 0;
  }

  /** The next slice's size for slicer i: average ± variation, clamped (Toxiproxy dies on average_size 0). */
  sliceSize(p: FrontendFaults, i: number): number {
    const avg = Math.max(1, Math.floor(p.a[3 * i]));
    const v = Math.min(avg - 1, Math.max(0, Math.floor(p.a[3 * i + 1])));
    return v > 0 ? avg - v + Math.floor(this.random() * (2 * v + 1)) : avg;
  }

  /** Client c was paired with backend b: its toxics drawn, its lanes' state fresh. */
  begin(t: ConnTable, c: number, b: number, now: number): void {
    const p = this.plan(t.fe[c]);
    let mask = 0;
    for (let i = 0; i < p.n && i < MAX_TOXICS; i++) mask |= this.draw(p, i) << i;
    if (p.n > MAX_TOXICS) mask |= 1; // toxics past MAX_TOXICS act on every connection: keep it on the fault path
    this.mask[c] = mask;
    this.fresh(c);
    this.fresh(b);
    if (mask === 0) return;
    this.startTimeouts(t, c, b, p, mask, null, now);
    t.flags[c] = (t.flags[c] | FL.TOXIC) & ~FL.SPLICE;
    t.flags[b] = (t.flags[b] | FL.TOXIC) & ~FL.SPLICE;
  }

  private fresh(s: number): void {
    this.lflags[s] = 0;
    this.lastDue[s] = this.bwAt[s] = this.bwLeft[s] = this.sliceAt[s] = this.sliceLeft[s] = 0;
    this.closeAt[s] = this.resetAt[s] = this.finAt[s] = this.passed[s] = this.limitBase[s] = 0;
  }

  /** Timeout toxics of `p` that act and are new (not in `old`, or changed) start their clocks from now. */
  private startTimeouts(t: ConnTable, c: number, b: number, p: FrontendFaults, mask: number, old: FrontendFaults | null, now: number): void {
    for (let i = 0; i < p.n; i++) {
      if (p.type[i] !== TX.TIMEOUT || !acts(mask, i)) continue;
      const j = old === null ? -1 : old.ids.indexOf(p.ids[i]);
      if (j >= 0 && old !== null && p.sameAs(i, old, j)) continue;
      const s = p.up[i] ? c : b;
      const ms = p.a[3 * i];
      this.closeAt[s] = ms > 0 ? now + ms : 0;
    }
  }

  /** Slot s is released: its lane goes back, its wake is forgotten. */
  release(s: number): void {
    if (this.clock === null) return;
    this.lflags[s] = 0;
    this.reqAt[s] = this.headAt[s] = 0;
    const l = this.lane[s];
    if (l >= 0) {
      this.lanes!.release(l);
      this.lane[s] = -1;
    }
    this.clock.cancel(s);
  }

  /**
   * A reload: the frontends' toxics are recompiled, and the live connections of each frontend whose toxics
   * changed take the change at once (Toxiproxy's rule): a kept toxic keeps its draw, a new one is drawn; a
   * toxic taken away lets the data it held go now (a timeout taken away closes the connection); a new
   * limit_data counts from now. Each lane is woken to act on it.
   */
  update(ctx: FaultContext): void {
    const old = this.plans;
    this.plans = ctx.frontends.map((f) => (f.toxics.length === 0 ? NONE : new FrontendFaults(f.toxics)));
    this.size(ctx.frontends, ctx.t.capacity);
    if (this.clock === null) return;
    const t = ctx.t;
    const changed = this.plans.map((p, fe) => !samePlan(old[fe] ?? NONE, p));
    if (!changed.includes(true)) return;
    for (let c = 0; c < t.capacity; c++) {
      if (t.kind[c] !== KIND.CLIENT || t.proto[c] !== PROTO.TUNNEL || t.state[c] !== ST.PROXYING || !changed[t.fe[c]]) continue;
      this.rewire(ctx, c, old[t.fe[c]] ?? NONE, this.plans[t.fe[c]]);
    }
  }

  private rewire(ctx: FaultContext, c: number, old: FrontendFaults, p: FrontendFaults): void {
    const t = ctx.t;
    const b = t.peer[c];
    const was = this.mask[c];
    let mask = 0;
    for (let i = 0; i < p.n && i < MAX_TOXICS; i++) {
      const j = old.ids.indexOf(p.ids[i]);
      const bit = j >= 0 && j < MAX_TOXICS && old.toxicity[j] === p.toxicity[i] ? (was >>> j) & 1 : this.draw(p, i);
      mask |= bit << i;
    }
    if (p.n > MAX_TOXICS) mask |= 1;
    for (let j = 0; j < old.n; j++) {
      if (!acts(was, j)) continue;
      const i = p.ids.indexOf(old.ids[j]);
      if (i >= 0 && acts(mask, i) && p.sameAs(i, old, j)) continue;
      // Toxic j is gone from this connection (or changed): what it held goes now.
      const s = old.up[j] ? c : b;
      if (old.type[j] === TX.TIMEOUT && (i < 0 || !acts(mask, i))) this.lflags[s] |= LF.CLOSE_NOW;
      if (old.type[j] === TX.RESET_PEER) this.resetAt[s] = 0;
      if (old.type[j] === TX.TIMEOUT) this.closeAt[s] = 0;
      if (this.lane[s] >= 0) this.lanes!.dueBy(this.lane[s], ctx.hrNow);
      this.lastDue[s] = Math.min(this.lastDue[s], ctx.hrNow);
      this.bwAt[s] = this.bwLeft[s] = this.sliceAt[s] = this.sliceLeft[s] = 0;
    }
    for (let i = 0; i < p.n; i++) {
      if (p.type[i] !== TX.LIMIT_DATA || !acts(mask, i) || (old.ids.indexOf(p.ids[i]) >= 0 && acts(was, old.ids.indexOf(p.ids[i])))) continue;
      const s = p.up[i] ? c : b;
      this.limitBase[s] = this.passed[s];
    }
    this.startTimeouts(t, c, b, p, mask, old, ctx.hrNow);
    this.mask[c] = mask;
    if (mask !== 0) {
      t.flags[c] = (t.flags[c] | FL.TOXIC) & ~FL.SPLICE;
      t.flags[b] = (t.flags[b] | FL.TOXIC) & ~FL.SPLICE;
    }
    this.clock!.schedule(c, t.gen[c], ctx.hrNow);
    this.clock!.schedule(b, t.gen[b], ctx.hrNow);
  }
}

/** Whether toxic i acts on a connection with `mask` (toxics past MAX_TOXICS act on all). */
export function acts(mask: number, i: number): boolean {
  return i >= MAX_TOXICS || ((mask >>> i) & 1) === 1;
}

function samePlan(a: FrontendFaults, b: FrontendFaults): boolean {
  if (a.n !== b.n) return false;
  for (let i = 0; i < a.n; i++) if (a.ids[i] !== b.ids[i] || a.toxicity[i] !== b.toxicity[i] || !a.sameAs(i, b, i)) return false;
  return true;
}
