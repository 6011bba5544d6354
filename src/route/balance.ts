// Picking a backend's server for a new connection (or a new HTTP request), in the worker, with no
// allocation and no message: each worker balances its own connections (as HAProxy's threads do with their
// own round-robin state; nginx's workers likewise), reading the servers' shared states.
//
// A server is a candidate when it is up, has a weight above 0, and is not the one a retry moves away from.
// Backup servers are candidates only when no other server is.
//
//   round-robin  nginx's smooth weighted round-robin: each pick adds every candidate's weight to its score,
//                takes the highest, and takes the total off it. Weights 1, 2 give a, b, b, a, b, b...
//   least-conn   the fewest connections carrying a client now, per unit of weight; ties go round the list
//   random-two   two candidates picked at random, the one with fewer connections per weight (Mitzenmacher's
//                power of two choices: nearly least-conn's balance, without every worker agreeing on one)
//   hash         rendezvous hashing of the client's address: each candidate scores -weight / ln(u), u from a
//                hash of the client and the server's name, and the highest wins. A server going down moves
//                only the clients it had; one coming back takes only those back.

import { BALANCE, type Backend, type RouteContext, SRV, type Server, mix } from './routes.js';

/** The server of `be` for a client whose address hashes to `clientKey`, avoiding server id `avoid` (-1: none); null when none can take it. */
export function pick(ctx: RouteContext, be: Backend, clientKey: number, avoid: number): Server | null {
  const state = ctx.serverState;
  for (let backup = 0; backup < 2; backup++) {
    const s = pickAmong(be, state, backup === 1, clientKey, avoid);
    if (s !== null) return s;
  }
  return null;
}

function eligible(s: Server, state: Int32Array, backup: boolean, avoid: number): boolean {
  return s.backup === backup && s.weight > 0 && s.id !== avoid && state[s.id] === SRV.UP;
}

function pickAmong(be: Backend, state: Int32Array, backup: boolean, clientKey: number, avoid: number): Server | null {
  switch (be.balance) {
    case BALANCE.LEAST_CONN:
      return leastConn(be, state, backup, avoid);
    case BALANCE.RANDOM_TWO:
      return randomTwo(be, state, backup, avoid);
    case BALANCE.HASH:
      return rendezvous(be, state, backup, clientKey, avoid);
    default:
      return roundRobin(be, state, backup, avoid);
  }
}

function roundRobin(be: Backend, state: Int32Array, backup: boolean, avoid: number): Server | null {
  let best: Server | null = null;
  let total = 0;
  for (const s of be.servers) {
    if (!eligible(s, state, backup, avoid)) continue;
    s.current += s.weight;
    total += s.weight;
    if (best === null || s.current > best.current) best = s;
  }
  if (best !== null) best.current -= total;
  return best;
}

/** a has fewer connections per unit of weight than b. */
function lighter(a: Server, b: Server): boolean {
  return a.active * b.weight < b.active * a.weight;
}

function leastConn(be: Backend, state: Int32Array, backup: boolean, avoid: number): Server | null {
  const n = be.servers.length;
  let best: Server | null = null;
  let at = 0;
  for (let k = 0; k < n; k++) {
    const i = (be.next + k) % n;
    const s = be.servers[i];
    if (!eligible(s, state, backup, avoid)) continue;
    if (best === null || lighter(s, best)) {
      best = s;
      at = i;
    }
  }
  if (best !== null) be.next = (at + 1) % n;
  return best;
}

function randomTwo(be: Backend, state: Int32Array, backup: boolean, avoid: number): Server | null {
  let n = 0;
  for (const s of be.servers) if (eligible(s, state, backup, avoid)) n++;
  if (n === 0) return null;
  const i = Math.floor(Math.random() * n);
  const a = nth(be, state, backup, avoid, i);
  if (n === 1) return a;
  // The second among the other n - 1: past a's place, one further on.
  const k = Math.floor(Math.random() * (n - 1));
  const b = nth(be, state, backup, avoid, k >= i ? k + 1 : k);
  return lighter(b, a) ? b : a;
}

/** The k-th candidate, in list order. */
function nth(be: Backend, state: Int32Array, backup: boolean, avoid: number, k: number): Server {
  let seen = 0;
  for (const s of be.servers) {
    if (!eligible(s, state, backup, avoid)) continue;
    if (seen++ === k) return s;
  }
  return be.servers[0]; // unreachable: k < the number of candidates
}

function rendezvous(be: Backend, state: Int32Array, backup: boolean, clientKey: number, avoid: number): Server | null {
  let best: Server | null = null;
  let bestScore = -Infinity;
  for (const s of be.servers) {
    if (!eligible(s, state, backup, avoid)) continue;
    // u in (0, 1) from 32 bits of hash; -ln(u) > 0, and a larger weight scales the score up.
    const u = (mix(clientKey ^ s.key) + 0.5) / 4294967296;
    const score = -s.weight / Math.log(u);
    if (score > bestScore) {
      best = s;
      bestScore = score;
    }
  }
  return best;
}
