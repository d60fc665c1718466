/**
 * HTTP/2 session keep-alive policy (see src/server/keepalive.ts): when an idle session is closed, and how
 * often a client may ping.
 */
import { type Env, readInt } from './env.js';

export interface KeepaliveConfig {
  /** A session with no open stream for this long is closed with GOAWAY; pings do not count as activity. */
  idleTimeoutMs: number;
  /** Pings closer together than this are strikes. */
  minPingIntervalMs: number;
  /** More consecutive strikes than this: GOAWAY with ENHANCE_YOUR_CALM. */
  maxPingStrikes: number;
}

export function readKeepalive(env: Env): KeepaliveConfig {
  return {
    idleTimeoutMs: readInt(env, 'HTTP2_IDLE_TIMEOUT_MS', 60_000, 100, 3_600_000),
    minPingIntervalMs: readInt(env, 'HTTP2_MIN_PING_INTERVAL_MS', 500, 1, 3_600_000),
    maxPingStrikes: readInt(env, 'HTTP2_MAX_PING_STRIKES', 2, 0, 100),
  };
}
