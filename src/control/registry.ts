// The route tables as the workers hold them, kept by the main thread across reloads: every frontend and
// backend at a stable index, every server at a stable id. A plan (control/plan.ts) names things; the
// workers' tables number them, and a connection open across a reload keeps the numbers it was made with.
//
//   a frontend keeps its index while its name and its listen address stay (its options may change; an
//   address given with port 0 the first time may be given again as 0, or as the port it got); one whose
//   address changes is taken out and added again (a new listener)
//   a backend keeps its index while its name stays
//   a server keeps its id while its backend, name and address stay; ids are never given to another server
//
// Taken out: the index holds null from then on, and is not given again, except when the frontend was
// retired (retire(): every connection it had was closed, as the Toxiproxy server does to a proxy disabled
// or deleted): then a new frontend may take the index, and each worker zeroes its counters when it does.

import type { BackendConfig, FrontendConfig, ToxicConfig } from '../route/index.js';
import { MAX_SERVERS } from '../route/index.js';
import { type Address, CODES, ProxyError, formatAddress } from '../sys/index.js';
import type { ProxyPlan } from './plan.js';

/** What a plan changes in the tables, for the supervisor to bind and tell the workers. */
export type TableChanges = {
  /** Frontend indices that are new: each needs its listening sockets. */
  added: number[];
  /** Frontend indices taken out. */
  removed: number[];
};

/** Tables prepare() made from a plan, to commit() once they could be applied. */
export type Prepared = {
  frontends: (FrontendConfig | null)[];
  backends: (BackendConfig | null)[];
  changes: TableChanges;
  ids: Map<string, number>;
  nextId: number;
  /** Retired indices still free after this plan. */
  free: number[];
};

export class RouteRegistry {
  readonly frontends: (FrontendConfig | null)[] = [];
  readonly backends: (BackendConfig | null)[] = [];
  private nextServerId = 0;
  private readonly serverIds = new Map<string, number>();
  // Toxics by frontend, name, type and direction: one changed only in its attributes or toxicity keeps its id,
  // and with it its state in live connections.
  private nextToxicId = 0;
  private readonly toxicIds = new Map<string, number>();
  /** Frontend indices retired: null, with no connection left, free to be given again. */
  private free: number[] = [];

  /**
   * The tables as `plan` would make them, and what changes; nothing is changed until commit() (a plan whose
   * frontends cannot be bound changes nothing). Throws ProxyError when the process has used up its server ids.
   */
  prepare(plan: ProxyPlan, bound: readonly (Address | null)[] = []): Prepared {
    const ids = new Map(this.serverIds);
    let nextId = this.nextServerId;
    // Backends by name: old indices kept, new ones appended.
    const backends = this.backends.map(() => null as BackendConfig | null);
    const beIndex: number[] = [];
    for (const b of plan.backends) {
      let i = this.backends.findIndex((old) => old !== null && old.name === b.name);
      if (i < 0) i = backends.push(null) - 1;
      beIndex.push(i);
      const servers = b.servers.map((s) => {
        const key = `${b.name}\u0000${s.name}\u0000${formatAddress(s.address)}`;
        let id = ids.get(key);
        if (id === undefined) {
          if (nextId >= MAX_SERVERS) throw new ProxyError(CODES.BAD_CONFIG, `more than ${MAX_SERVERS} servers over this process's life`);
          id = nextId++;
          ids.set(key, id);
        }
        return { ...s, id };
      });
      backends[i] = { ...b, servers };
    }
    // Frontends by name and address.
    const frontends = this.frontends.map(() => null as FrontendConfig | null);
    const changes: TableChanges = { added: [], removed: [] };
    const free = [...this.free];
    for (const f of plan.frontends) {
      const toxics = f.toxics.map((t) => ({ ...t, id: this.toxicId(f.name, t) }));
      const config = { ...f, toxics, backend: beIndex[f.backend], routes: f.routes.map((r) => ({ ...r, backend: beIndex[r.backend] })) };
      let i = this.frontends.findIndex((old, k) => old !== null && old.name === f.name && sameListen(old, f, bound[k] ?? null));
      if (i < 0) {
        i = free.length > 0 ? free.shift()! : frontends.push(null) - 1;
        changes.added.push(i);
      }
      frontends[i] = config;
    }
    this.frontends.forEach((old, i) => {
      if (old !== null && frontends[i] === null) changes.removed.push(i);
    });
    return { frontends, backends, changes, ids, nextId, free };
  }

  /**
   * Frontend index fe, taken out, had every connection closed (its workers were told after the plan that
   * took it out, and they read their mailbox in order): a later plan may give it to a new frontend.
   */
  retire(fe: number): void {
    if (this.frontends[fe] === null && !this.free.includes(fe)) this.free.push(fe);
  }

  private toxicId(frontend: string, t: ToxicConfig): number {
    const key = `${frontend}\u0000${t.name}\u0000${t.type}\u0000${t.upstream}`;
    let id = this.toxicIds.get(key);
    if (id === undefined) this.toxicIds.set(key, (id = this.nextToxicId++));
    return id;
  }

  /** Makes the tables prepare() returned the current ones. */
  commit(prepared: Prepared): void {
    this.frontends.length = 0;
    this.frontends.push(...prepared.frontends);
    this.backends.length = 0;
    this.backends.push(...prepared.backends);
    this.serverIds.clear();
    for (const [k, v] of prepared.ids) this.serverIds.set(k, v);
    this.nextServerId = prepared.nextId;
    this.free = prepared.free;
  }
}

function sameListen(a: FrontendConfig, b: FrontendConfig, bound: Address | null): boolean {
  const want = formatAddress(b.listen);
  return formatAddress(a.listen) === want || (bound !== null && formatAddress(bound) === want);
}
