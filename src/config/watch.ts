/** WatchAccount's bounds and how often the watchers' balances are polled (docs/api.md, "Live balance updates"). */
import { type Env, readInt } from './env.js';

export interface WatchConfig {
  /** Open WatchAccount streams per principal (a user or a backend), at most. */
  maxPerPrincipal: number;
  /** Open WatchAccount streams per process, at most. */
  maxTotal: number;
  /** How often the process reads the balance versions of all watched accounts (one query per tick). */
  pollIntervalMs: number;
}

export function readWatch(env: Env): WatchConfig {
  return {
    maxPerPrincipal: readInt(env, 'WATCH_MAX_PER_PRINCIPAL', 5, 1, 1_000),
    maxTotal: readInt(env, 'WATCH_MAX_TOTAL', 1_000, 1, 100_000),
    pollIntervalMs: readInt(env, 'WATCH_POLL_INTERVAL_MS', 250, 20, 60_000),
  };
}
