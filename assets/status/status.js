// The status page's loop: once a second it fetches GET /stats, GET /history?seconds=1 (appended to the
// charts) and GET /connections, and redraws the totals and the tables. The first round, and the first after
// the endpoint stopped answering, loads the whole /history instead. While the endpoint does not answer, a
// banner says since when and what failed, the last numbers stay on screen dimmed, and the loop keeps trying.
//
//   loading ──ok──> live ──fail──> failing ──ok (full /history again)──> live
'use strict';

(function (FP) {
  const { el, fill, fmt, getJson } = FP;

  const PERIOD_MS = 1000;
  const CONNECTIONS_SHOWN = 20;

  const $ = (id) => document.getElementById(id);
  const view = {
    main: $('main'),
    banner: $('banner'),
    live: $('live'),
    kpis: $('kpis'),
    frontends: $('frontends'),
    backends: $('backends'),
    connections: $('connections'),
    connCount: $('conn-count'),
  };

  const state = {
    charts: new FP.Charts($('charts')),
    needHistory: true,
    prev: null, // the proxy's time and CPU seconds at the last CPU reading
    cpu: null,
    lastOk: null,
    failingSince: null,
    failures: 0,
    sort: 'age',
  };

  $('where').textContent = location.host;

  /** One round: fetch, then draw; on failure, say so. Schedules the next round either way. */
  async function round() {
    const began = Date.now();
    try {
      const [stats, history, conns] = await Promise.all([
        getJson('/stats'),
        getJson(state.needHistory ? '/history' : '/history?seconds=1'),
        getJson(connectionsPath()),
      ]);
      if (state.needHistory) state.charts.reset(history.samples);
      else state.charts.append(history.samples);
      state.needHistory = false;
      drawStats(stats);
      drawConnections(conns);
      recovered();
    } catch (e) {
      failed(e);
    }
    setTimeout(round, Math.max(0, PERIOD_MS - (Date.now() - began)));
  }

  function connectionsPath() {
    return '/connections?limit=' + CONNECTIONS_SHOWN + '&sort=' + state.sort;
  }

  function recovered() {
    state.lastOk = Date.now();
    state.failingSince = null;
    state.failures = 0;
    view.banner.hidden = true;
    view.main.classList.remove('stale');
    view.live.className = 'live ok';
    view.live.textContent = 'live · ' + fmt.clock(state.lastOk);
  }

  function failed(e) {
    if (state.failingSince === null) state.failingSince = Date.now();
    state.failures++;
    state.needHistory = true; // the charts have a gap: load them whole when it answers again
    view.main.classList.add('stale');
    view.live.className = 'live bad';
    view.live.textContent = 'not answering';
    fill(view.banner, bannerText(e));
    view.banner.hidden = false;
  }

  function bannerText(e) {
    if (e instanceof FP.HttpError && e.status === 401) {
      return [el('b', null, 'The admin endpoint wants a token. '), 'Open this page as ', el('code', null, '/?token=TOKEN'), ' (the --admin-token the proxy was started with).'];
    }
    const why = e instanceof FP.HttpError ? e.message : e && e.name === 'AbortError' ? 'no answer within 5 s' : 'cannot connect (' + (e && e.message ? e.message : String(e)) + ')';
    const since = fmt.clock(state.failingSince);
    const last = state.lastOk === null ? 'Nothing was read from it yet.' : 'The numbers below are from ' + fmt.clock(state.lastOk) + '.';
    return [
      el('b', null, 'The admin endpoint at ' + location.host + ' is not answering'),
      ' since ' + since + ' (' + state.failures + (state.failures === 1 ? ' try' : ' tries') + '): ' + why + '. ',
      last,
      ' Trying again every second.',
    ];
  }

  function drawStats(stats) {
    drawKpis(stats);
    fill(view.frontends, FP.tables.frontends(stats));
    fill(view.backends, FP.tables.backends(stats));
  }

  /**
   * CPU use in % of one core (above 100 with several busy threads), from the process's CPU seconds between
   * two /stats at least half a second apart by the proxy's clock; the last value until then (null at first).
   */
  function cpuPercent(stats) {
    const now = { at: Date.parse(stats.time), cpu: stats.process.cpuSeconds };
    const prev = state.prev;
    if (prev === null || now.at < prev.at) state.prev = now;
    else if (now.at - prev.at >= 500) {
      state.cpu = (100 * (now.cpu - prev.cpu)) / ((now.at - prev.at) / 1000);
      state.prev = now;
    }
    return state.cpu;
  }

  function kpi(label, value, cls, title) {
    return el('div', { class: 'kpi' + (cls ? ' ' + cls : ''), title: title }, el('div', { class: 'kpi-value' }, value), el('div', { class: 'kpi-label' }, label));
  }

  function drawKpis(stats) {
    const r = stats.rates;
    const p = stats.process;
    const cpu = cpuPercent(stats);
    const restarts = stats.workers.reduce((n, w) => n + (w.restarts || 0), 0);
    const active = stats.frontends.reduce((n, f) => n + f.active, 0);
    fill(view.kpis, [
      kpi('requests/s', r ? fmt.num(r.requests) : '–'),
      kpi('connections/s', r ? fmt.num(r.connections) : '–'),
      kpi('in/s', r ? fmt.bytes(r.bytesIn) : '–', null, 'bytes per second from clients'),
      kpi('out/s', r ? fmt.bytes(r.bytesOut) : '–', null, 'bytes per second to clients'),
      kpi('active conns', fmt.num(active), null, 'client connections open now'),
      kpi('5xx/s', r ? fmt.num(r.errors) : '–', r && r.errors > 0 ? 'bad' : null, '5xx responses per second, all frontends'),
      kpi('uptime', fmt.duration(stats.uptimeSeconds)),
      kpi('CPU', cpu === null ? '…' : cpu.toFixed(cpu < 10 ? 1 : 0) + ' %', null, 'of one core, every thread of the process'),
      kpi('RSS', fmt.bytes(p.residentBytes), null, 'resident memory of the process'),
      kpi('fds of ' + fmt.num(p.maxFds), fmt.num(p.openFds), p.openFds > 0.9 * p.maxFds ? 'bad' : null),
      kpi('workers', String(stats.workers.length) + (restarts > 0 ? ' (' + restarts + ' restarts)' : ''), restarts > 0 ? 'bad' : null),
    ]);
  }

  function drawConnections(list) {
    fill(view.connections, FP.tables.connections(list));
    const shown = list.connections.length;
    view.connCount.textContent = shown < list.total ? shown + ' of ' + list.total + ' open' : list.total + ' open';
  }

  /** The sort buttons: pressed one first, then a fetch of the list in that order at once. */
  function onSort(event) {
    const b = event.target.closest('button[data-sort]');
    if (!b) return;
    state.sort = b.getAttribute('data-sort');
    document.querySelectorAll('.sort button').forEach((x) => x.setAttribute('aria-pressed', String(x === b)));
    getJson(connectionsPath()).then(drawConnections, () => {});
  }

  document.querySelector('.sort').addEventListener('click', onSort);
  round();
})(window.FP);
