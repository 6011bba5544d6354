// The toxiproxy server's state (docs/toxiproxy.md): its proxies in the order they were created, each with
// its toxics in the order they were added, and every operation of toxiproxy-server 2.12's API on them, with
// its checks, their order and its words. The HTTP side is toxiproxy-api.ts; the workers' side is
// toxiproxy-host.ts. Changes run one after another; a read sees the last change that completed.
//
//   stored ── start: listen resolved and bound ──> running ── stop: listener and connections closed ──> stored
//   (enabled false; listen as the client            (listen is the address bound,        (toxics kept; listen kept, so a
//    wrote it: `localhost:0`)                         `127.0.0.1:41234`)                    start binds the same port again)
//
// A start that fails (the port is taken) leaves the proxy stored and answers 500; a change of listen,
// upstream or mode is a stop and a start. A call that fails changes nothing, except where Toxiproxy's own
// steps leave a stopped proxy behind (an update or a populate whose new listen cannot be bound).

import type { Logger } from '../core/log.js';
import { MODES, type Mode, type ToxicConfig } from '../route/index.js';
import { type Address, formatAddress } from '../sys/index.js';
import {
  ApiError, type ToxicJson, changeToxic, field, listOrder, modeProblem, objectOf, readToxic, stringField, toxicJson, unmarshal,
} from './config-toxics.js';
import { type HostedProxy, type ToxiproxyHost, resolveListen, resolveUpstream } from './toxiproxy-host.js';

/** A proxy as the API writes it. `mode` is ours (tcp unless said); Toxiproxy's clients ignore keys they do not know. */
export type ProxyJson = { name: string; listen: string; upstream: string; enabled: boolean; mode: Mode; toxics: ToxicJson[] };

/** A populate that stopped at an item: its status and words, and the proxies created or kept before it. */
export class PopulateError extends ApiError {
  constructor(
    e: ApiError,
    readonly proxies: ProxyJson[],
  ) {
    super(e.status, e.message);
    this.name = 'PopulateError';
  }
}

type Toxic = { config: ToxicConfig; stream: string };

type Proxy = {
  name: string;
  /** As the client wrote it while the proxy is stored; the address bound while it runs and after. */
  listen: string;
  /** As the client wrote it. */
  upstream: string;
  mode: Mode;
  toxics: Toxic[];
  /** While it runs: where it listens and where its connections go (resolved when it started). */
  run: { at: Address; dial: Address } | null;
};

/** A proxy body, read as Go reads it into Toxiproxy's struct, plus our `mode` and (populate) `toxics`. */
type ProxyBody = { name?: string; listen?: string; upstream?: string; enabled?: boolean; mode?: Mode; toxics?: unknown[] };

export class ToxiproxyState {
  private proxies = new Map<string, Proxy>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly host: ToxiproxyHost,
    private readonly log: Logger,
  ) {}

  /** GET /proxies: every proxy, by name (sorted, as Go writes a map). */
  list(): Record<string, ProxyJson> {
    const names = [...this.proxies.keys()].sort();
    return Object.fromEntries(names.map((n) => [n, proxyJson(this.proxies.get(n)!)]));
  }

  get(name: string): ProxyJson {
    return proxyJson(this.proxy(name));
  }

  toxics(name: string): ToxicJson[] {
    return proxyJson(this.proxy(name)).toxics;
  }

  toxic(name: string, toxic: string): ToxicJson {
    const t = this.toxicOf(this.proxy(name), toxic);
    return toxicJson(t.config, t.stream);
  }

  /** POST /proxies: checks in Toxiproxy's order (the body, name, upstream, a name in use), then starts it unless `enabled: false`. */
  create(body: unknown): Promise<ProxyJson> {
    const b = readProxy(body, 'Proxy');
    const [name, upstream] = required(b, '');
    return this.serial(async () => {
      if (this.proxies.has(name)) throw new ApiError(409, 'proxy already exists');
      const p: Proxy = { name, listen: b.listen ?? '', upstream, mode: b.mode ?? 'tcp', toxics: [], run: null };
      if (b.enabled ?? true) await this.start(p);
      else this.proxies.set(name, p);
      this.log.info(`proxy ${name}: created${this.proxies.get(name)!.run ? '' : ' (disabled)'}`);
      return this.get(name);
    });
  }

  /**
   * POST|PATCH /proxies/NAME: `listen`, `upstream`, `mode` and `enabled` over the current ones (`name` is
   * ignored). A new listen (resolved: `localhost:X` is 127.0.0.1:X; port 0 is any port, so the current
   * one), upstream or mode stops the proxy; then it is started or stopped as `enabled` says.
   */
  update(name: string, body: unknown): Promise<ProxyJson> {
    const b = readProxy(body, 'Proxy');
    return this.serial(async () => {
      let p = this.proxy(name);
      const mode = b.mode ?? p.mode;
      for (const t of p.toxics) {
        const problem = modeProblem(t.config.type, mode);
        if (problem !== null) throw new ApiError(400, `${problem}: toxic ${t.config.name} is on it`);
      }
      const listen = b.listen ?? p.listen;
      const upstream = b.upstream ?? p.upstream;
      const enabled = b.enabled ?? p.run !== null;
      if (upstream !== p.upstream || mode !== p.mode || !(await sameListen(p, listen))) {
        if (p.run !== null) await this.stop(p);
        p = { ...this.proxy(name), listen: b.listen ?? p.listen, upstream, mode };
        this.proxies.set(name, p);
      }
      if (enabled && p.run === null) await this.start(p);
      else if (!enabled && p.run !== null) await this.stop(p);
      return this.get(name);
    });
  }

  /** DELETE /proxies/NAME: stopped (its connections closed), then forgotten with its toxics. */
  remove(name: string): Promise<void> {
    return this.serial(async () => {
      const p = this.proxy(name);
      const next = new Map(this.proxies);
      next.delete(name);
      await this.run(next, p.run ? [name] : []);
      this.log.info(`proxy ${name}: deleted`);
    });
  }

  /** POST /proxies/NAME/toxics. On a running proxy it acts on its live connections as well. */
  addToxic(name: string, body: unknown): Promise<ToxicJson> {
    return this.serial(async () => {
      const p = this.proxy(name);
      const t = readToxic(body, { mode: p.mode, taken: (n) => p.toxics.some((x) => x.config.name === n), strict: false });
      await this.put({ ...p, toxics: [...p.toxics, t] });
      return toxicJson(t.config, t.stream);
    });
  }

  /** POST|PATCH /proxies/NAME/toxics/TOXIC: `toxicity` and the attributes given (merged over the others). */
  updateToxic(name: string, toxic: string, body: unknown): Promise<ToxicJson> {
    return this.serial(async () => {
      const p = this.proxy(name);
      const t = this.toxicOf(p, toxic);
      const u = { config: changeToxic(t.config, body, false), stream: t.stream };
      await this.put({ ...p, toxics: p.toxics.map((x) => (x === t ? u : x)) });
      return toxicJson(u.config, u.stream);
    });
  }

  removeToxic(name: string, toxic: string): Promise<void> {
    return this.serial(async () => {
      const p = this.proxy(name);
      const t = this.toxicOf(p, toxic);
      await this.put({ ...p, toxics: p.toxics.filter((x) => x !== t) });
    });
  }

  /**
   * POST /reset: each proxy in turn is started if it is stopped and loses its toxics. A start that fails
   * answers 500 at once, the proxies after it untouched (as Toxiproxy does).
   */
  reset(): Promise<void> {
    return this.serial(async () => {
      for (const p of [...this.proxies.values()]) {
        if (p.run === null) await this.start({ ...p, toxics: [] });
        else if (p.toxics.length > 0) await this.put({ ...p, toxics: [] });
      }
      this.log.info('reset: every proxy enabled, every toxic removed');
    });
  }

  /**
   * POST /populate: a list of proxies, every item checked before anything changes. Then, in order: a new
   * name is created; a proxy whose listen, upstream and mode are the same is kept as it is, with its
   * connections and its toxics (or, when the item has `toxics`, with those); any other is stopped and
   * replaced. A failure (PopulateError) keeps what was done before it.
   */
  populate(body: unknown): Promise<ProxyJson[]> {
    if (!Array.isArray(body)) throw unmarshal(body, '', '[]toxiproxy.Proxy');
    const items = body.map((v, i) => readItem(v, i));
    return this.serial(async () => {
      const done: ProxyJson[] = [];
      for (const it of items) {
        try {
          await this.populateOne(it);
        } catch (e) {
          throw new PopulateError(e instanceof ApiError ? e : new ApiError(500, String(e)), done);
        }
        done.push(this.get(it.name));
      }
      return done;
    });
  }

  private async populateOne(it: Item): Promise<void> {
    const old = this.proxies.get(it.name);
    if (old !== undefined && old.upstream === it.upstream && old.mode === it.mode && (await sameListen(old, it.listen))) {
      if (it.toxics !== undefined) await this.put({ ...old, toxics: it.toxics });
      return;
    }
    if (old?.run) await this.stop(old);
    const p: Proxy = { name: it.name, listen: it.listen, upstream: it.upstream, mode: it.mode, toxics: it.toxics ?? [], run: null };
    if (!it.enabled) {
      this.proxies.set(p.name, p);
    } else if (old !== undefined) {
      // Replaced: stored first, so that a start that fails leaves it there, stopped, as an update would.
      this.proxies.set(p.name, p);
      await this.start(p);
    } else {
      await this.start(p);
    }
    this.log.info(`proxy ${p.name}: ${old ? 'replaced' : 'created'} by populate`);
  }

  private serial<T>(run: () => Promise<T>): Promise<T> {
    const next = this.queue.then(run);
    this.queue = next.catch(() => {});
    return next;
  }

  private proxy(name: string): Proxy {
    const p = this.proxies.get(name);
    if (p === undefined) throw new ApiError(404, 'proxy not found');
    return p;
  }

  private toxicOf(p: Proxy, name: string): Toxic {
    const t = p.toxics.find((x) => x.config.name === name);
    if (t === undefined) throw new ApiError(404, 'toxic not found');
    return t;
  }

  /** Starts `p` (stored or not yet): its listen resolved and bound, its upstream resolved. Throws ApiError 500. */
  private async start(p: Proxy): Promise<void> {
    const run = { at: await resolveListen(p.listen), dial: await resolveUpstream(p.upstream) };
    const next = new Map(this.proxies);
    next.set(p.name, { ...p, run });
    await this.run(next);
    const q = this.proxies.get(p.name)!;
    this.log.info(`proxy ${p.name}: listening on ${q.listen}, upstream ${p.upstream}${p.mode === 'http' ? ' (http)' : ''}`);
  }

  /** Stops `p`: its listener and every connection of it closed; it stays stored, with its toxics and listen. */
  private async stop(p: Proxy): Promise<void> {
    const next = new Map(this.proxies);
    next.set(p.name, { ...p, run: null });
    await this.run(next, [p.name]);
    this.log.info(`proxy ${p.name}: stopped`);
  }

  /** Puts `p` in place of the proxy of its name; one that runs takes the change live. */
  private async put(p: Proxy): Promise<void> {
    const next = new Map(this.proxies);
    next.set(p.name, p);
    await this.run(next);
  }

  /** Makes `next` the state: the workers run its running proxies (closing `kill`'s connections), each listen then the address bound. */
  private async run(next: Map<string, Proxy>, kill: string[] = []): Promise<void> {
    const running = [...next.values()].filter((p) => p.run !== null);
    const where = await this.host.apply(running.map(hosted), kill);
    for (const p of running) {
      const at = where.get(p.name);
      if (at === undefined) continue;
      next.set(p.name, { ...p, listen: formatAddress(at), run: { at, dial: p.run!.dial } });
    }
    this.proxies = next;
  }
}

function hosted(p: Proxy): HostedProxy {
  const run = p.run!;
  return { name: p.name, mode: p.mode, listen: run.at, upstream: p.upstream, dial: run.dial, toxics: p.toxics.map((t) => t.config) };
}

function proxyJson(p: Proxy): ProxyJson {
  const toxics = listOrder(p.toxics, (t) => t.config.upstream).map((t) => toxicJson(t.config, t.stream));
  return { name: p.name, listen: p.listen, upstream: p.upstream, enabled: p.run !== null, mode: p.mode, toxics };
}

/**
 * Whether `text` names where `p` listens: the same text, or the same address once resolved; port 0 means
 * any port, so the one it has. (Toxiproxy counts every port-0 listen as new, and a populate of it then drops
 * the proxy's toxics.)
 */
async function sameListen(p: Proxy, text: string): Promise<boolean> {
  if (text === p.listen) return true;
  const want = await resolveListen(text).catch(() => null);
  const have = p.run?.at ?? (await resolveListen(p.listen).catch(() => null));
  if (want === null || have === null || want.family === 'unix' || have.family === 'unix') return false;
  return want.family === have.family && want.host === have.host && (want.port === have.port || want.port === 0);
}

/** A proxy body's fields, decoded (ApiError 400 `bad request body: ...` for a value of the wrong type). */
function readProxy(body: unknown, struct: string): ProxyBody {
  const o = objectOf(body, `toxiproxy.${struct}`);
  const enabled = field(o, 'enabled');
  if (enabled !== undefined && typeof enabled !== 'boolean') throw unmarshal(enabled, `${struct}.enabled`, 'bool');
  const mode = stringField(o, 'mode', struct);
  const toxics = field(o, 'toxics');
  if (toxics !== undefined && !Array.isArray(toxics)) throw unmarshal(toxics, `${struct}.toxics`, '[]toxics.ToxicWrapper');
  return {
    name: stringField(o, 'name', struct),
    listen: stringField(o, 'listen', struct),
    upstream: stringField(o, 'upstream', struct),
    enabled: enabled as boolean | undefined,
    mode: mode === undefined ? undefined : modeOf(mode),
    toxics: toxics as unknown[] | undefined,
  };
}

function modeOf(v: string): Mode {
  if ((MODES as readonly string[]).includes(v)) return v as Mode;
  throw new ApiError(400, `mode must be tcp or http, not ${JSON.stringify(v)}`);
}

/** A create's or populate item's name and upstream, or 400 `missing required field: name` (`where`: ` at proxy 2`). */
function required(b: ProxyBody, where: string): [string, string] {
  if (!b.name) throw new ApiError(400, `missing required field: name${where}`);
  if (!b.upstream) throw new ApiError(400, `missing required field: upstream${where}`);
  return [b.name, b.upstream];
}

type Item = { name: string; listen: string; upstream: string; enabled: boolean; mode: Mode; toxics: Toxic[] | undefined };

/** Populate item `i`, checked whole (its toxics too) before anything changes. */
function readItem(v: unknown, i: number): Item {
  const where = ` at proxy ${i + 1}`;
  try {
    const b = readProxy(v, 'Proxy');
    const [name, upstream] = required(b, '');
    const mode = b.mode ?? 'tcp';
    let toxics: Toxic[] | undefined;
    if (b.toxics !== undefined) {
      toxics = [];
      for (const t of b.toxics) {
        const list = toxics;
        list.push(readToxic(t, { mode, taken: (n) => list.some((x) => x.config.name === n), strict: false }));
      }
    }
    return { name, listen: b.listen ?? '', upstream, enabled: b.enabled ?? true, mode, toxics };
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    throw new PopulateError(new ApiError(e.status, `${e.message}${where}`), []);
  }
}
