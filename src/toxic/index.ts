// Fault injection (docs/toxiproxy.md): Toxiproxy's toxics acting on a tunnel's bytes, between the route
// layer (which carries each frontend's toxics) and the tunnel (which runs a toxic direction's turn here).
export * from './faults.js';
export { FaultClock } from './clock.js';
export { LANE_BYTES } from './lanes.js';
export { PUMP, faultTurn, pumpErrno } from './pump.js';
export { REQ, errorStatus, headHeld, requestFault, requestFaults, responseHeadCame } from './http.js';
