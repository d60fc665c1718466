/**
 * The rate limiter's Redis connection, set up to fail fast rather than wait: every command has a short
 * timeout (RATE_LIMIT_REDIS_TIMEOUT_MS), nothing is queued while the connection is down (commands fail at
 * once and the limiter falls back to memory), no command is retried, and reconnection goes on in the
 * background with a capped backoff so the shared buckets come back by themselves.
 */
import { Redis } from 'ioredis';

const RECONNECT_MAX_DELAY_MS = 1_000;
const CONNECT_TIMEOUT_MS = 1_000;
/** How long the server's start waits for a first connection before it serves with the fallback. */
const STARTUP_WAIT_MS = 2_000;

export function createRateLimitRedis(url: string, commandTimeoutMs: number): Redis {
  const redis = new Redis(url, {
    commandTimeout: commandTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: CONNECT_TIMEOUT_MS,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), RECONNECT_MAX_DELAY_MS),
    connectionName: 'payment-ledger:ratelimit',
  });
  // The limiter reports failures (once per episode); without a listener ioredis would print every one.
  redis.on('error', () => {});
  return redis;
}

/**
 * Resolves once the connection is ready, or fails, or after a short wait: a server never waits long for
 * Redis to start, but when Redis is there the first requests already share its buckets.
 */
export function waitForRedis(redis: Redis, timeoutMs = STARTUP_WAIT_MS): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ready: boolean) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onError);
      resolve(ready);
    };
    const onReady = () => done(true);
    const onError = () => done(false);
    const timer = setTimeout(() => done(false), timeoutMs);
    redis.once('ready', onReady);
    redis.once('error', onError);
  });
}
