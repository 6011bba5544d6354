// Short, fixed-width words for numbers in `ffi-proxy top`: counts, rates, bytes, latencies and ages, each at
// most 7 characters so a column stays narrow at 80 columns. Also `clean()`, which makes any text from the
// proxy safe to print on a terminal. Pure functions, no state.

/** A count or a rate: `0`, `2.5`, `31`, `12345`, `123k`, `4.56M`. At most 6 characters. */
export function num(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const a = Math.abs(n);
  if (a === 0) return '0';
  if (a < 10 && !Number.isInteger(n)) return n.toFixed(1);
  if (a < 100_000) return String(Math.round(n));
  if (a < 1e6) return `${Math.round(n / 1e3)}k`;
  if (a < 1e9) return `${(n / 1e6).toFixed(a < 1e7 ? 2 : 1)}M`;
  return `${(n / 1e9).toFixed(1)}G`;
}

/** Bytes in powers of 1024: `512`, `4.0K`, `93K`, `1.2M`, `7.5G`. At most 5 characters. */
export function bytes(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const units = ['', 'K', 'M', 'G', 'T', 'P'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return String(Math.round(v));
  return `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[u]}`;
}

/** A latency in seconds: `85us`, `0.28ms`, `8.5ms`, `120ms`, `1.25s`, `2m05s`; `-` for none. */
export function latency(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return '-';
  if (s < 0.001) return `${Math.round(s * 1e6)}us`;
  if (s < 0.01) return `${(s * 1000).toFixed(2)}ms`;
  if (s < 0.1) return `${(s * 1000).toFixed(1)}ms`;
  if (s < 1) return `${Math.round(s * 1000)}ms`;
  if (s < 60) return `${s.toFixed(2)}s`;
  return age(s);
}

/** An age in seconds: `0.4s`, `12s`, `4m05s`, `3h04m`, `2d03h`. */
export function age(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '-';
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.floor(s)}s`;
  const two = (n: number) => String(Math.floor(n)).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${two((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${two((s % 86400) / 3600)}h`;
}

/** A percentage: `0%`, `3.5%`, `112%`; `-` for none. */
export function percent(p: number | null): string {
  if (p === null || !Number.isFinite(p)) return '-';
  return p < 10 && p > 0 ? `${p.toFixed(1)}%` : `${Math.round(p)}%`;
}

/**
 * Text from the proxy (names, request lines, which a client wrote) made safe for a terminal: C0 and C1
 * control characters (ESC, CSI, BEL...) become `?`, so no request line can move the cursor or retitle the
 * window; tabs become spaces.
 */
export function clean(s: string): string {
  return s.replace(/\t/g, ' ').replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** `s` padded or cut to exactly `w` characters. */
export function fit(s: string, w: number, align: 'left' | 'right'): string {
  if (w <= 0) return '';
  if (s.length > w) return s.slice(0, w);
  return align === 'left' ? s.padEnd(w) : s.padStart(w);
}
