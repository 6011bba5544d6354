// Rates and recent latencies, from a snapshot (metrics.ts) taken once a second on the main thread while the
// admin endpoint runs. A rate is the difference between the last two snapshots over the time between them:
// connections, requests and bytes per second "over the last second", as HAProxy's stats compute theirs.
// Latency percentiles are read from the difference of the histograms over the last WINDOW seconds, so they
// say how the proxy is doing now rather than since it started. The last HISTORY samples are kept for the
// status page's charts.

import { type Histogram, type Snapshot, quantile } from './metrics.js';

/** Seconds of samples kept (the status page's charts). */
export const HISTORY = 300;
/** Seconds the latency percentiles are read over. */
export const WINDOW = 10;

export type Rates = { connections: number; requests: number; bytesIn: number; bytesOut: number; errors: number };
/** Seconds; null when nothing was measured in the window. */
export type Latency = { p50: number | null; p90: number | null; p99: number | null; count: number };

/** One second of the proxy: per frontend and per server (`backend/server`), and overall. */
export type Sample = {
  time: number;
  total: Rates & { active: number };
  frontends: Record<string, Rates & { active: number; latency: Latency }>;
  servers: Record<string, { requests: number; connections: number; active: number; errors: number; up: boolean; firstByte: Latency }>;
};

type Point = { snap: Snapshot };

export class Sampler {
  private readonly points: Point[] = [];
  private readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly take: () => Snapshot) {}

  start(): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Takes a snapshot now and adds the second since the last one. Public for tests. */
  tick(): void {
    this.points.push({ snap: this.take() });
    if (this.points.length > WINDOW + 1) this.points.shift();
    if (this.points.length < 2) return;
    this.samples.push(this.sample());
    if (this.samples.length > HISTORY) this.samples.shift();
  }

  /** The last `n` samples, oldest first. */
  history(n = HISTORY): Sample[] {
    return this.samples.slice(-n);
  }

  /** The newest sample, or null before two snapshots were taken. */
  latest(): Sample | null {
    return this.samples.at(-1) ?? null;
  }

  private sample(): Sample {
    const now = this.points[this.points.length - 1].snap;
    const prev = this.points[this.points.length - 2].snap;
    const first = this.points[0].snap;
    const dt = Math.max(0.001, (now.time - prev.time) / 1000);
    const rate = (a: number, b: number) => Math.max(0, a - b) / dt;
    const frontends: Sample['frontends'] = {};
    const total = { connections: 0, requests: 0, bytesIn: 0, bytesOut: 0, errors: 0, active: 0 };
    for (const f of now.frontends) {
      const p = prev.frontends.find((x) => x.name === f.name);
      const o = first.frontends.find((x) => x.name === f.name);
      const r = {
        connections: rate(f.accepted, p?.accepted ?? f.accepted),
        requests: rate(f.requests, p?.requests ?? f.requests),
        bytesIn: rate(f.bytesIn, p?.bytesIn ?? f.bytesIn),
        bytesOut: rate(f.bytesOut, p?.bytesOut ?? f.bytesOut),
        errors: rate(f.responses['5xx'], p?.responses['5xx'] ?? f.responses['5xx']),
        active: f.active,
        latency: latency(f.duration, o?.duration),
      };
      frontends[f.name] = r;
      for (const k of ['connections', 'requests', 'bytesIn', 'bytesOut', 'errors', 'active'] as const) total[k] += r[k];
    }
    const servers: Sample['servers'] = {};
    for (const b of now.backends) {
      for (const s of b.servers) {
        const key = `${b.name}/${s.name}`;
        const p = prev.backends.find((x) => x.name === b.name)?.servers.find((x) => x.name === s.name);
        const o = first.backends.find((x) => x.name === b.name)?.servers.find((x) => x.name === s.name);
        servers[key] = {
          requests: rate(s.requests, p?.requests ?? s.requests),
          connections: rate(s.connects, p?.connects ?? s.connects),
          active: s.active,
          errors: rate(s.connectErrors + s.responses['5xx'], p ? p.connectErrors + p.responses['5xx'] : s.connectErrors + s.responses['5xx']),
          up: s.up,
          firstByte: latency(s.firstByte, o?.firstByte),
        };
      }
    }
    return { time: now.time, total, frontends, servers };
  }
}

/** Percentiles of what `now` holds beyond `then` (the same histogram, earlier); all of `now` without one. */
export function latency(now: Histogram, then: Histogram | undefined): Latency {
  const h: Histogram = then
    ? { buckets: now.buckets.map((n, k) => n - then.buckets[k]), count: now.count - then.count, sum: now.sum - then.sum }
    : now;
  if (h.count <= 0) return { p50: null, p90: null, p99: null, count: 0 };
  return { p50: quantile(h, 0.5), p90: quantile(h, 0.9), p99: quantile(h, 0.99), count: h.count };
}
