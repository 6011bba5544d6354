// What a proxy runs, checked and resolved: its frontends and backends and the process-wide settings. The
// flags (control/config.ts) and a config file (control/config-file.ts) both come down to one of these, so
// the flags are a shorthand for a config with one frontend and one backend.

import type { LevelName } from '../core/log.js';
import type { BackendConfig, FrontendConfig } from '../route/index.js';

export type ProxyPlan = {
  frontends: FrontendConfig[];
  backends: BackendConfig[];
  /** Worker threads per process. */
  workers: number;
  /** Processes sharing each port (the CLI's --processes; the library runs one). */
  processes: number;
  /** How long a stop lets open connections finish. */
  drainTimeoutMs: number;
  logLevel: LevelName;
  /** Upper bound on proxied connections per worker; null: what the open-file limit allows. */
  maxConnections: number | null;
  /** Listen even where other SO_REUSEPORT listeners already hold a port (StartOptions.join). */
  join: boolean;
  /** The admin endpoint: `HOST:PORT`, `auto` (127.0.0.1:9901 when free), `off`; null: not said (off, or the CLI's auto). */
  admin: string | null;
  /** The bearer token the admin endpoint requires (required off loopback). */
  adminToken: string | null;
};
