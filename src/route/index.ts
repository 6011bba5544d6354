// The routing layer: frontends (a listener with its mode and options), backends (an address and a pool of
// idle connections), and the one connect path. What the protocols and the loop may use.
export * from './config.js';
export * from './connect.js';
export * from './routes.js';
