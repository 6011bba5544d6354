// The admin endpoint as `ffi-proxy top` reaches it: GET /stats and GET /connections over node:http, with the
// bearer token when one is given, a deadline, and one kept-alive socket. Every failure becomes a TopError
// whose message is one line a person can act on (nothing listening, a token needed or refused, a slow or
// wrong answer), and whose `code` tests and the CLI match on.

import http from 'node:http';
import type { ConnectionList, Sort, Stats } from './types.js';

export const TOP_ERRORS = {
  BAD_ADDRESS: 'TOP_BAD_ADDRESS',
  UNREACHABLE: 'TOP_UNREACHABLE',
  TOKEN: 'TOP_TOKEN',
  TIMEOUT: 'TOP_TIMEOUT',
  BAD_ANSWER: 'TOP_BAD_ANSWER',
} as const;
export type TopErrorCode = (typeof TOP_ERRORS)[keyof typeof TOP_ERRORS];

export class TopError extends Error {
  constructor(
    readonly code: TopErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type Target = { host: string; port: number; label: string };

/** `HOST:PORT`, `[IPv6]:PORT` or `http://HOST:PORT/`, as --admin takes it. Throws TopError BAD_ADDRESS. */
export function parseTarget(spec: string): Target {
  const s = spec.trim().replace(/^https?:\/\//, '').replace(/\/+$/, '');
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(s) ?? /^([^:[\]\s]+):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (m === null || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TopError(TOP_ERRORS.BAD_ADDRESS, `--admin ${spec}: give the admin endpoint's HOST:PORT, as 127.0.0.1:9901`);
  }
  return { host: m[1], port, label: s };
}

export type Poll = { stats: Stats; connections: ConnectionList };

/** The admin endpoint of one proxy; close() lets the process exit. */
export class AdminClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 2 });

  constructor(
    readonly target: Target,
    private readonly token: string | undefined,
    private readonly timeoutMs: number,
  ) {}

  /** Both answers one frame needs: the stats, and up to `limit` connections in the `sort` order. */
  async poll(limit: number, sort: Sort): Promise<Poll> {
    const n = Math.max(1, Math.min(10_000, Math.floor(limit)));
    const [stats, connections] = await Promise.all([
      this.get('/stats') as Promise<Stats>,
      this.get(`/connections?limit=${n}&sort=${sort}`) as Promise<ConnectionList>,
    ]);
    if (!Array.isArray(stats?.frontends) || !Array.isArray(stats?.backends) || !Array.isArray(connections?.connections)) {
      throw new TopError(TOP_ERRORS.BAD_ANSWER, `${this.target.label} answered, but not as an ffi-proxy admin endpoint does`);
    }
    return { stats, connections };
  }

  close(): void {
    this.agent.destroy();
  }

  private get(path: string): Promise<unknown> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (this.token !== undefined) headers.Authorization = `Bearer ${this.token}`;
    return new Promise((resolve, reject) => {
      const req = http.get({ host: this.target.host, port: this.target.port, path, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(this.failure(e)));
        res.on('end', () => {
          try {
            resolve(this.answer(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')));
          } catch (e) {
            reject(e);
          }
        });
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(new TopError(TOP_ERRORS.TIMEOUT, `${this.target.label} did not answer within ${this.timeoutMs / 1000}s`)));
      req.on('error', (e) => reject(this.failure(e)));
    });
  }

  private answer(status: number, body: string): unknown {
    if (status === 401) {
      const msg = this.token === undefined ? 'needs a token: give --admin-token TOKEN' : 'refused the token given with --admin-token';
      throw new TopError(TOP_ERRORS.TOKEN, `the admin endpoint at ${this.target.label} ${msg}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      throw new TopError(TOP_ERRORS.BAD_ANSWER, `${this.target.label} answered ${status} with something other than JSON: is it an ffi-proxy admin endpoint?`);
    }
    if (status !== 200) {
      const why = (json as { error?: unknown })?.error;
      throw new TopError(TOP_ERRORS.BAD_ANSWER, `${this.target.label} answered ${status}${typeof why === 'string' ? `: ${why}` : ''}`);
    }
    return json;
  }

  private failure(e: Error): TopError {
    if (e instanceof TopError) return e;
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ECONNREFUSED' ? 'nothing listens there (ECONNREFUSED): is the proxy running, with its admin endpoint there?'
      : code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? `no such host (${code})`
      : code === 'ECONNRESET' ? 'the connection was reset (ECONNRESET)'
      : e.message;
    return new TopError(TOP_ERRORS.UNREACHABLE, `cannot reach the admin endpoint at ${this.target.label}: ${why}`);
  }
}
