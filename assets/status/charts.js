// The status page's charts (uPlot): the last minutes of the admin endpoint's one-second samples (GET
// /history). Four charts: requests, connections and 5xx per second; latency p50/p99 per frontend; bytes per
// second in and out; active connections per frontend. The samples are kept here (at most KEEP of them, one
// per second) and every chart is redrawn from them; a chart whose series depend on the frontends is built
// again when the set of frontends changes (after a reload).
'use strict';

(function (FP) {
  const { el, fmt } = FP;

  // The admin endpoint keeps 300 s of samples (sampler.ts HISTORY); keep as many.
  const KEEP = 300;
  // Shown at least this many seconds wide, so a fresh proxy's first samples do not fill the whole width.
  const MIN_SPAN = 60;
  const HEIGHT = 170;

  // One colour per frontend, in the order they were first seen; stable across redraws.
  const PALETTE = ['#2563eb', '#d97706', '#059669', '#9333ea', '#db2777', '#0891b2', '#65a30d', '#dc2626'];
  const colourOf = new Map();
  function frontendColour(name) {
    if (!colourOf.has(name)) colourOf.set(name, PALETTE[colourOf.size % PALETTE.length]);
    return colourOf.get(name);
  }

  /** The frontends' names in the samples, sorted. */
  function frontendNames(samples) {
    const names = new Set();
    for (const s of samples) for (const n of Object.keys(s.frontends || {})) names.add(n);
    return Array.from(names).sort();
  }

  // Axis steps for bytes: powers of two, so the labels are round in KiB, MiB, GiB.
  const BINARY_STEPS = Array.from({ length: 41 }, (_, k) => Math.pow(2, k));

  const totalsChart = {
    title: 'Per second: requests, connections, 5xx',
    unit: fmt.num,
    minTop: 5,
    series: () => [
      { label: 'req/s', stroke: '#2563eb', value: (s) => s.total.requests },
      { label: 'conn/s', stroke: '#059669', value: (s) => s.total.connections },
      { label: '5xx/s', stroke: '#dc2626', value: (s) => s.total.errors },
    ],
  };

  // Latency on a log scale: a p99 a hundred times the p50 is common, and both stay readable. Only the
  // frontends that measured something in the window (HTTP ones with requests) get lines.
  const latencyChart = {
    title: 'Latency: p99 solid, p50 dashed',
    unit: (v) => fmt.latency(v / 1000),
    axis: (v) => (v >= 1000 ? +(v / 1000).toPrecision(3) + ' s' : +v.toPrecision(3) + ' ms'),
    axisSize: 54,
    log: true,
    series: (names, samples) =>
      names
        .filter((n) => samples.some((s) => s.frontends[n] && s.frontends[n].latency.count > 0))
        .flatMap((n) => [
          { label: n + ' p99', stroke: frontendColour(n), value: (s) => ms(s.frontends[n] && s.frontends[n].latency.p99) },
          { label: n + ' p50', stroke: frontendColour(n), dash: [4, 3], value: (s) => ms(s.frontends[n] && s.frontends[n].latency.p50) },
        ]),
  };

  const bytesChart = {
    title: 'Bytes per second',
    unit: (v) => fmt.bytes(v),
    axis: (v) => fmt.bytes(v).replace('.0 ', ' '),
    axisSize: 62,
    steps: BINARY_STEPS,
    minTop: 1024,
    series: () => [
      { label: 'in (from clients)', stroke: '#0891b2', value: (s) => s.total.bytesIn },
      { label: 'out (to clients)', stroke: '#9333ea', value: (s) => s.total.bytesOut },
    ],
  };

  const activeChart = {
    title: 'Active connections, per frontend',
    unit: fmt.num,
    minTop: 5,
    series: (names) => names.map((n) => ({ label: n, stroke: frontendColour(n), value: (s) => (s.frontends[n] ? s.frontends[n].active : null) })),
  };

  function ms(seconds) {
    return seconds === null || seconds === undefined ? null : seconds * 1000;
  }

  /** One chart: a titled box, its uPlot, a line that reads out the values under the cursor. */
  class Chart {
    constructor(parent, spec) {
      this.spec = spec;
      this.plot = null;
      this.key = null;
      this.series = [];
      this.body = el('div', { class: 'chart-body' });
      this.readout = el('div', { class: 'readout muted' });
      this.box = el('figure', { class: 'chart' }, el('figcaption', null, spec.title), this.body, this.readout);
      parent.appendChild(this.box);
    }

    /** Redraws from `samples`, building the plot again when its series changed. */
    draw(samples, names) {
      const series = this.spec.series(names, samples);
      const key = series.map((s) => s.label).join('\n');
      if (key !== this.key) this.build(series, key);
      const xs = samples.map((s) => s.time / 1000);
      const data = [xs].concat(series.map((sr) => samples.map((s) => finite(sr.value(s), this.spec.log))));
      this.plot.setData(data);
    }

    build(series, key) {
      if (this.plot) this.plot.destroy();
      this.series = series;
      this.key = key;
      const spec = this.spec;
      const axis = spec.axis || spec.unit;
      const grid = { stroke: '#eef0f3' };
      const ticks = { stroke: '#d8dbe0', size: 4 };
      // uPlot takes a missing filter as its default, but an undefined one as a function to call.
      const only = spec.log ? { filter: powersOfTen } : {};
      const opts = {
        width: this.width(),
        height: HEIGHT,
        legend: { live: false, markers: { width: 2, dash: (u, i) => (u.series[i].dash ? 'dashed' : 'solid'), fill: 'transparent' } },
        cursor: { drag: { x: false, y: false }, points: { size: 5 } },
        scales: { x: { time: true, range: timeRange }, y: spec.log ? { distr: 3, range: logRange } : { range: valueRange(spec.minTop || 1) } },
        axes: [
          { stroke: '#6b7280', grid, ticks, size: 30, space: 56, values: timeLabels },
          {
            stroke: '#6b7280',
            grid: Object.assign({}, grid, only),
            ticks: Object.assign({}, ticks, only),
            size: spec.axisSize || 50,
            ...(spec.steps ? { incrs: spec.steps } : {}),
            ...only,
            values: (u, splits) => splits.map((v) => (v === null ? null : v === 0 ? '0' : axis(v))),
          },
        ],
        series: [{ label: 'time' }].concat(series.map((s) => ({ label: s.label, stroke: s.stroke, width: 1.5, dash: s.dash, points: { show: false } }))),
        hooks: { setCursor: [(u) => this.showReadout(u)] },
      };
      this.plot = new uPlot(opts, [[]].concat(series.map(() => [])), this.body);
    }

    /** The values under the cursor, on one line below the plot; empty when the cursor is elsewhere. */
    showReadout(u) {
      const i = u.cursor.idx;
      if (i === null || i === undefined || u.data[0][i] === undefined) {
        this.readout.textContent = '\u00a0';
        return;
      }
      const parts = [fmt.clock(u.data[0][i] * 1000)];
      this.series.forEach((s, k) => {
        const v = u.data[k + 1][i];
        parts.push(s.label + ' ' + (v === null || v === undefined ? '–' : this.spec.unit(v)));
      });
      this.readout.textContent = parts.join('  ·  ');
    }

    width() {
      return Math.max(200, this.body.clientWidth || this.box.clientWidth - 16);
    }

    resize() {
      if (this.plot) this.plot.setSize({ width: this.width(), height: HEIGHT });
    }
  }

  /** A number to plot, or null (a gap). A log scale cannot show 0 or less. */
  function finite(v, log) {
    if (typeof v !== 'number' || !Number.isFinite(v)) return null;
    return log && v <= 0 ? null : v;
  }

  /** Time axis labels: HH:MM on a whole minute, :SS between. */
  function timeLabels(u, splits) {
    return splits.map((t) => {
      const d = new Date(t * 1000);
      const two = (n) => String(n).padStart(2, '0');
      return d.getSeconds() === 0 ? two(d.getHours()) + ':' + two(d.getMinutes()) : ':' + two(d.getSeconds());
    });
  }

  /** The x range: the data's, at least MIN_SPAN seconds, ending at the newest sample. */
  function timeRange(u, min, max) {
    if (min === null || max === null) {
      const now = Date.now() / 1000;
      return [now - MIN_SPAN, now];
    }
    return [Math.min(min, max - MIN_SPAN), max];
  }

  /** The y range: from 0 to a little over the largest value, and at least to `minTop` (an idle proxy). */
  function valueRange(minTop) {
    return (u, min, max) => [0, Math.max(minTop, max === null ? 0 : max * 1.1)];
  }

  /** On a log axis, only the whole powers of ten get a label, a tick and a grid line. */
  function powersOfTen(u, splits) {
    return splits.map((v) => (Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9 ? v : null));
  }

  /** The log y range: whole powers of ten around the values (0.1 ms to 10 ms when there are none). */
  function logRange(u, min, max) {
    if (min === null || max === null || !(min > 0)) return [0.1, 10];
    const lo = Math.pow(10, Math.floor(Math.log10(min)));
    let hi = Math.pow(10, Math.ceil(Math.log10(max)));
    if (hi <= lo) hi = lo * 10;
    return [lo, hi];
  }

  /** The charts in `parent`, fed with samples from /history. */
  class Charts {
    constructor(parent) {
      this.samples = [];
      this.charts = [totalsChart, latencyChart, bytesChart, activeChart].map((spec) => new Chart(parent, spec));
      if (window.ResizeObserver) {
        let pending = false;
        new ResizeObserver(() => {
          if (pending) return;
          pending = true;
          requestAnimationFrame(() => {
            pending = false;
            this.charts.forEach((c) => c.resize());
          });
        }).observe(parent);
      }
    }

    /** Replaces every sample (the first load, and after the endpoint came back). */
    reset(samples) {
      this.samples = samples.slice(-KEEP);
      this.draw();
    }

    /** Adds the samples newer than the last one kept. */
    append(samples) {
      const last = this.samples.length ? this.samples[this.samples.length - 1].time : 0;
      const fresh = samples.filter((s) => s.time > last);
      if (fresh.length === 0) return;
      this.samples = this.samples.concat(fresh).slice(-KEEP);
      this.draw();
    }

    draw() {
      const names = frontendNames(this.samples);
      this.charts.forEach((c) => c.draw(this.samples, names));
    }
  }

  FP.Charts = Charts;
  FP.frontendColour = frontendColour;
})(window.FP);
