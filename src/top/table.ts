// Tables for `ffi-proxy top` that fit a terminal's width. Each column has a minimum width and a rank; when
// the columns do not fit, the lowest-ranked ones go first (the first column always stays), then the
// flexible columns (names, request lines) share what is left, up to what their longest cell needs, and the
// `fill` column takes the rest. Every line it returns is at most `width` characters. Pure.

import { fit } from './format.js';

export type Column<T> = {
  title: string;
  /** The narrowest this column may be (at least the title's length, for a fixed column). */
  min: number;
  /** The widest a flexible column grows to; a fixed column has max === min. */
  max: number;
  align: 'left' | 'right';
  /** Higher stays longer when the terminal is narrow. */
  rank: number;
  /** Takes whatever width is left at the end of the line (one column per table). */
  fill?: boolean;
  cell: (row: T) => string;
};

/** A fixed-width column. */
export function fixed<T>(title: string, width: number, rank: number, cell: (row: T) => string, align: 'left' | 'right' = 'right'): Column<T> {
  const w = Math.max(width, title.length);
  return { title, min: w, max: w, align, rank, cell };
}

/** A column that grows from `min` to `max` with its content. */
export function flex<T>(title: string, min: number, max: number, rank: number, cell: (row: T) => string, fill = false): Column<T> {
  return { title, min: Math.max(min, Math.min(title.length, max)), max, align: 'left', rank, fill, cell };
}

type Placed<T> = { col: Column<T>; width: number };

/** The columns kept at `width`, in their order, each with its width. */
export function layout<T>(cols: Column<T>[], rows: T[], width: number): Placed<T>[] {
  let kept = cols.slice();
  const need = (cs: Column<T>[]) => cs.reduce((n, c) => n + c.min, 0) + Math.max(0, cs.length - 1);
  const byRank = cols.slice(1).sort((a, b) => a.rank - b.rank);
  for (const c of byRank) {
    if (need(kept) <= width) break;
    kept = kept.filter((k) => k !== c);
  }
  const placed = kept.map((col) => ({ col, width: col.min }));
  let spare = width - need(kept);
  for (const p of placed) {
    if (spare <= 0) break;
    if (p.col.max <= p.col.min || p.col.fill) continue;
    const longest = rows.reduce((n, r) => Math.max(n, p.col.cell(r).length), p.col.title.length);
    const grow = Math.min(spare, Math.min(p.col.max, longest) - p.width);
    if (grow > 0) {
      p.width += grow;
      spare -= grow;
    }
  }
  const filler = placed.find((p) => p.col.fill);
  if (filler && spare > 0) filler.width += Math.min(spare, filler.col.max - filler.width);
  // A first column wider than the screen on its own is cut to it.
  if (placed.length === 1) placed[0].width = Math.min(placed[0].width, width);
  return placed;
}

/** The title line and one line per row, each cut to `width` and with no trailing spaces. */
export function table<T>(cols: Column<T>[], rows: T[], width: number): { head: string; lines: string[] } {
  const placed = layout(cols, rows, width);
  const line = (cells: string[]) =>
    placed
      .map((p, k) => fit(cells[k], p.width, p.col.align))
      .join(' ')
      .slice(0, width)
      .trimEnd();
  return {
    head: line(placed.map((p) => p.col.title)),
    lines: rows.map((r) => line(placed.map((p) => p.col.cell(r)))),
  };
}
