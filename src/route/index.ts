// The routing layer: frontends (a listener with its mode, options and HTTP routes), backends (servers, how
// one is picked, their health), and the one connect path. What the protocols and the loop may use.
export * from './config.js';
export * from './connect.js';
export { matchRoute, type Route } from './match.js';
export * from './routes.js';
