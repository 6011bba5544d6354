// The transport layer: the one byte path, a slot's boxes, the one close path, and the handshakes that run
// before a protocol (the PROXY protocol today; TLS later). What the layers above may use.
export * from './boxes.js';
export * from './close.js';
export * from './io.js';
export { type Endpoint, type HandshakeContext, MAX_PROXY_HEADER, ProxyState, intake, intakeTimeout, sendHeader } from './proxied.js';
export { type TlsFrontend, configureTls, tlsAccept, tlsAfterProxy, tlsFailed, tlsReady, tlsStart } from './tls.js';
export { type TlsBackend, configureBackendTls, tlsConnectStart, tlsConnectStep, tlsConnecting } from './tls-client.js';
