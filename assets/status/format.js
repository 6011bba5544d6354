// The status page's shared helpers: the FP namespace every other script adds to, DOM building that only
// ever puts API strings in as text (never as HTML), number formats for rates, bytes and durations, and the
// fetch of the admin endpoint's JSON with the page's token. Plain browser JS, loaded first.
'use strict';

window.FP = window.FP || {};

(function (FP) {
  /**
   * An element: `el('td', { class: 'num', title: 'x' }, 'text', child)`. Strings become text nodes, so a
   * name from the API can never be markup. Attributes are set with setAttribute (no event handlers).
   */
  function el(tag, attrs) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const k of Object.keys(attrs)) {
        if (attrs[k] !== null && attrs[k] !== undefined && attrs[k] !== false) e.setAttribute(k, String(attrs[k]));
      }
    }
    for (let i = 2; i < arguments.length; i++) append(e, arguments[i]);
    return e;
  }

  function append(parent, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) child.forEach((c) => append(parent, c));
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }

  /** Replaces what `parent` holds with `children`. */
  function fill(parent, children) {
    parent.replaceChildren();
    append(parent, children);
  }

  /** A count or a rate: 0, 3.2, 45, 1.2k, 20k, 3.4M. Null and undefined are a dash. */
  function num(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    const a = Math.abs(v);
    if (a >= 1e9) return short(v / 1e9, a >= 1e10) + 'G';
    if (a >= 1e6) return short(v / 1e6, a >= 1e7) + 'M';
    if (a >= 1e4) return short(v / 1e3, a >= 1e5) + 'k';
    if (a >= 10 || Number.isInteger(v)) return String(Math.round(v));
    return v.toFixed(1);
  }

  /** `v` with one decimal unless `whole`, without a trailing `.0`. */
  function short(v, whole) {
    return whole ? v.toFixed(0) : v.toFixed(1).replace(/\.0$/, '');
  }

  /** Bytes in binary units: 512 B, 3.4 KiB, 12 MiB. */
  function bytes(v) {
    if (v === null || v === undefined) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let u = 0;
    while (Math.abs(v) >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    const digits = u === 0 || Math.abs(v) >= 100 ? 0 : 1;
    return v.toFixed(digits) + ' ' + units[u];
  }

  /** A latency given in seconds, shown in ms below a second: 0.31 ms, 12 ms, 1.4 s. */
  function latency(s) {
    if (s === null || s === undefined) return '–';
    const ms = s * 1000;
    if (ms < 1) return ms.toFixed(2) + ' ms';
    if (ms < 10) return ms.toFixed(1) + ' ms';
    if (ms < 1000) return ms.toFixed(0) + ' ms';
    return duration(s);
  }

  /** A duration in seconds: 0.4 s, 12 s, 3m 05s, 2h 10m, 3d 4h. */
  function duration(s) {
    if (s === null || s === undefined) return '–';
    if (s < 10) return s.toFixed(1) + ' s';
    if (s < 60) return Math.floor(s) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + String(Math.floor(s % 60)).padStart(2, '0') + 's';
    const h = Math.floor(m / 60);
    if (h < 24) return h + 'h ' + String(m % 60).padStart(2, '0') + 'm';
    return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
  }

  /** A wall-clock time, HH:MM:SS in the browser's zone. */
  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour12: false });
  }

  // The token the page was opened with (/?token=...); every fetch passes it on as a bearer token.
  const token = new URLSearchParams(location.search).get('token');

  /** An HTTP answer that was not 2xx. */
  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /** GET `path` of the admin endpoint as JSON. Rejects on a network error, a timeout or a non-2xx answer. */
  async function getJson(path) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 5000);
    try {
      const res = await fetch(path, { headers, cache: 'no-store', signal: ctl.signal });
      if (!res.ok) {
        let why = res.statusText;
        try {
          why = (await res.json()).error || why;
        } catch (e) {
          /* not JSON: keep the status text */
        }
        throw new HttpError(res.status, res.status + ' ' + why);
      }
      return await res.json();
    } finally {
      clearTimeout(timer);
    }
  }

  FP.el = el;
  FP.fill = fill;
  FP.fmt = { num, bytes, latency, duration, clock };
  FP.getJson = getJson;
  FP.HttpError = HttpError;
})(window.FP);
