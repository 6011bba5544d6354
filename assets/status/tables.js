// The status page's tables, built from GET /stats and GET /connections: frontends (traffic, responses by
// class, latency percentiles, how connections ended), backends and their servers (state, load, errors, time
// to first byte, health transitions), and the open connections. Every value from the API goes in as text
// (FP.el), never as markup.
'use strict';

(function (FP) {
  const { el, fmt } = FP;

  // What the connection table's states mean (src/core/types.ts ST), for the cells' tooltips.
  const STATE_HELP = {
    WAITING: 'tunnel: its backend connection is being made',
    CONNECTING: 'backend: connect() in progress',
    PROXYING: 'bytes flow both ways (tunnel), or the server is serving a request (HTTP)',
    H_HEAD: 'HTTP: reading a request head, or idle between requests',
    H_BODY: 'HTTP: forwarding the request body',
    H_WAIT: 'HTTP: request forwarded; waiting for or relaying the response',
    H_LINGER: 'HTTP: response sent and FIN sent; waiting for the client to close',
    IDLE: 'backend: in the keep-alive pool',
    PP_WAIT: 'reading the PROXY protocol header',
  };

  const STATE_CLASS = { up: 'st-up', down: 'st-down', drain: 'st-drain', maint: 'st-maint' };

  /** A table with a header row of `columns` ({ label, num?, title? }) and `rows` (tr elements). */
  function table(columns, rows, empty) {
    const head = el('tr', null, columns.map((c) => el('th', { class: c.num ? 'num' : null, title: c.title }, c.label)));
    const body = rows.length > 0 ? rows : [el('tr', null, el('td', { class: 'empty', colspan: columns.length }, empty))];
    return el('div', { class: 'scroll' }, el('table', null, el('thead', null, head), el('tbody', null, body)));
  }

  /** A numeric cell; `cls` adds a class (warn/bad) when the value is above 0. */
  function numCell(text, cls, value) {
    return el('td', { class: 'num' + (cls && value > 0 ? ' ' + cls : '') }, text);
  }

  function rate(v) {
    return numCell(v === null || v === undefined ? '–' : fmt.num(v));
  }

  const FRONTEND_COLUMNS = [
    { label: 'Frontend' },
    { label: 'Mode' },
    { label: 'Listen' },
    { label: 'Active', num: true, title: 'client connections open now' },
    { label: 'Conn/s', num: true },
    { label: 'Req/s', num: true },
    { label: 'In/s', num: true, title: 'bytes per second from clients' },
    { label: 'Out/s', num: true, title: 'bytes per second to clients' },
    { label: '2xx', num: true, title: 'responses since start' },
    { label: '3xx', num: true },
    { label: '4xx', num: true },
    { label: '5xx', num: true },
    { label: 'p50', num: true, title: 'request duration, last 10 s' },
    { label: 'p90', num: true },
    { label: 'p99', num: true },
    { label: 'Ended other than done', title: 'termination codes since start (docs/observability.md)' },
  ];

  /** The frontends' table. */
  function frontends(stats) {
    const rows = stats.frontends.map((f) => {
      const r = f.rates;
      const http = f.mode === 'http';
      const lat = r && r.latency ? r.latency : { p50: null, p90: null, p99: null };
      const resp = (k) => (http ? numCell(fmt.num(f.responses[k]), k === '5xx' ? 'bad' : k === '4xx' ? 'warn' : null, f.responses[k]) : numCell('–'));
      return el(
        'tr',
        null,
        el('td', null, el('span', { class: 'swatch', style: 'background:' + FP.frontendColour(f.name) }), el('b', null, f.name)),
        el('td', null, f.mode),
        el('td', { class: 'mono' }, f.listen),
        numCell(fmt.num(f.active)),
        rate(r && r.connections),
        rate(http && r ? r.requests : null),
        numCell(r ? fmt.bytes(r.bytesIn) : '–'),
        numCell(r ? fmt.bytes(r.bytesOut) : '–'),
        resp('2xx'),
        resp('3xx'),
        resp('4xx'),
        resp('5xx'),
        numCell(fmt.latency(lat.p50)),
        numCell(fmt.latency(lat.p90)),
        numCell(fmt.latency(lat.p99)),
        el('td', { class: 'endings' }, endings(f.terminations)),
      );
    });
    return table(FRONTEND_COLUMNS, rows, 'no frontends');
  }

  /** The termination codes other than `done`, most frequent first, as small tags. */
  function endings(terms) {
    const list = Object.keys(terms || {})
      .filter((k) => k !== 'done' && terms[k] > 0)
      .sort((a, b) => terms[b] - terms[a]);
    if (list.length === 0) return el('span', { class: 'muted' }, '–');
    return list.slice(0, 4).map((k) => el('span', { class: 'tag' + (/timeout|refused|unreachable|reset|invalid|no_server|internal/.test(k) ? ' bad' : '') }, k + ' ' + fmt.num(terms[k])));
  }

  const SERVER_COLUMNS = [
    { label: 'Server' },
    { label: 'Address' },
    { label: 'State' },
    { label: 'Weight', num: true },
    { label: 'Active', num: true, title: 'connections to this server open now' },
    { label: 'Req/s', num: true },
    { label: 'Err/s', num: true, title: 'failed connects and 5xx answers per second' },
    { label: 'Requests', num: true, title: 'since start' },
    { label: '5xx', num: true, title: 'answers since start' },
    { label: 'Connect errors', num: true, title: 'since start' },
    { label: 'Retries', num: true, title: 'connects tried again elsewhere after this server failed, since start' },
    { label: 'TTFB p50', num: true, title: 'time to the first byte of the response, last 10 s' },
    { label: 'TTFB p99', num: true },
    { label: 'Health', title: 'active checks, and how often the state changed' },
  ];

  /** The backends' table: a heading row per backend, then its servers. */
  function backends(stats) {
    const rows = [];
    for (const b of stats.backends) {
      const up = b.serversUp;
      const all = b.servers.length;
      rows.push(
        el(
          'tr',
          { class: 'group' },
          el('td', { colspan: SERVER_COLUMNS.length }, el('b', null, b.name), el('span', { class: 'muted' }, ' · ' + b.balance + ' · '), el('span', { class: up === 0 ? 'bad' : up < all ? 'warn' : 'ok' }, up + ' of ' + all + ' up')),
        ),
      );
      for (const s of b.servers) rows.push(serverRow(s));
    }
    return table(SERVER_COLUMNS, rows, 'no backends');
  }

  function serverRow(s) {
    const r = s.rates;
    const fb = r && r.firstByte ? r.firstByte : { p50: null, p99: null };
    const state = el('span', { class: 'state ' + (STATE_CLASS[s.state] || '') }, s.state);
    return el(
      'tr',
      null,
      el('td', { class: 'indent' }, s.name, s.backup ? el('span', { class: 'tag' }, 'backup') : null),
      el('td', { class: 'mono' }, s.address),
      el('td', null, state),
      numCell(fmt.num(s.weight)),
      numCell(fmt.num(s.active)),
      rate(r && r.requests),
      numCell(r ? fmt.num(r.errors) : '–', 'bad', r ? r.errors : 0),
      numCell(fmt.num(s.requests)),
      numCell(fmt.num(s.responses['5xx']), 'bad', s.responses['5xx']),
      numCell(fmt.num(s.connectErrors), 'bad', s.connectErrors),
      numCell(fmt.num(s.retries), 'warn', s.retries),
      numCell(fmt.latency(fb.p50)),
      numCell(fmt.latency(fb.p99)),
      el('td', null, s.checked ? 'checked' : el('span', { class: 'muted' }, 'no checks'), s.transitions > 0 ? el('span', { class: 'tag warn', title: 'times its state changed' }, s.transitions + (s.transitions === 1 ? ' change' : ' changes')) : null),
    );
  }

  const CONNECTION_COLUMNS = [
    { label: 'Client' },
    { label: 'Frontend' },
    { label: 'Server' },
    { label: 'State', title: 'client side / server side' },
    { label: 'Age', num: true },
    { label: 'Idle', num: true },
    { label: 'In', num: true, title: 'bytes from the client' },
    { label: 'Out', num: true, title: 'bytes to the client' },
    { label: 'Request' },
    { label: 'For', num: true, title: 'how long the current request has taken' },
    { label: 'RTT', num: true, title: "the client socket's smoothed round-trip time (TCP_INFO)" },
  ];

  /** The open connections' table. */
  function connections(list) {
    const rows = list.connections.map((c) => {
      const rtt = c.tcp && c.tcp.client ? c.tcp.client.rttMs : null;
      const server = c.server ? c.backend + '/' + c.server : c.backend || '–';
      const states = c.serverState ? c.state + ' / ' + c.serverState : c.state;
      const help = [STATE_HELP[c.state], c.serverState ? 'server: ' + (STATE_HELP[c.serverState] || c.serverState) : null].filter(Boolean).join('; ');
      return el(
        'tr',
        { title: 'connection ' + c.id + ' on worker ' + c.worker },
        el('td', { class: 'mono' }, c.client),
        el('td', null, c.frontend),
        el('td', null, server),
        el('td', { class: 'mono', title: help || null }, states, c.ending ? el('span', { class: 'tag bad' }, c.ending) : null),
        numCell(fmt.duration(c.ageSeconds)),
        numCell(fmt.duration(c.idleSeconds)),
        numCell(fmt.bytes(c.bytesIn)),
        numCell(fmt.bytes(c.bytesOut)),
        el('td', { class: 'request mono', title: c.request ? c.request.line : null }, c.request ? c.request.line + (c.request.truncated ? '…' : '') : el('span', { class: 'muted' }, c.protocol === 'http' ? 'between requests' : c.protocol)),
        numCell(c.request ? fmt.duration(c.request.seconds) : '–'),
        numCell(rtt === null ? '–' : rtt.toFixed(rtt < 1 ? 3 : 1) + ' ms'),
      );
    });
    return table(CONNECTION_COLUMNS, rows, 'no open connections');
  }

  FP.tables = { frontends, backends, connections };
})(window.FP);
