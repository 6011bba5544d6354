// `import { toxiproxy } from 'ffi-proxy/toxiproxy'`: the toxiproxy server alone (docs/toxiproxy.md), also
// exported by the library's main entry. It lives in control/toxiproxy-api.ts, so that index.ts, on this
// floor too, can export it as well (an import goes down the floors only: docs/architecture.md).
export { toxiproxy, TOXIPROXY_VERSION, type ToxiproxyOptions, type ToxiproxyServer } from './control/toxiproxy-api.js';
export { ApiError, type ToxicJson as Toxic, type ToxicBody, type ToxicChange } from './control/config-toxics.js';
export type { ProxyJson } from './control/toxiproxy.js';
export { CODES, ProxyError } from './sys/index.js';
export type { Address } from './sys/index.js';
