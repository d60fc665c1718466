/** Rate limiting settings (src/ratelimit/): Redis, trusted proxies, bucket policies. */
import { isIP } from 'node:net';
import { ConfigError, type Env, readBool, readInt, readRate, readUrl } from './env.js';

export interface RateLimitBucketConfig {
  capacity: number;
  /** May be fractional; 0 = never refills (for tests and emergencies). */
  refillPerSecond: number;
}

/** Token buckets per client, one policy for money-moving RPCs and one for everything else (src/ratelimit/). */
export interface RateLimitConfig {
  enabled: boolean;
  writes: RateLimitBucketConfig;
  reads: RateLimitBucketConfig;
  redisTimeoutMs: number;
  /** The circuit breaker in front of Redis (src/ratelimit/circuit-breaker.ts). */
  redisBreaker: { failuresToOpen: number; coolDownMs: number; successesToClose: number };
  keyPrefix: string;
}

export function readRedisUrl(env: Env): string | undefined {
  return readUrl(env, 'REDIS_URL', ['redis:', 'rediss:'], 'redis://host:6379');
}

export function readTrustedProxies(env: Env): string[] {
  const raw = env.TRUSTED_PROXIES;
  if (!raw) return [];
  return raw
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry) => {
      const [address = '', prefix, extra] = entry.split('/');
      const family = isIP(address);
      const maxPrefix = family === 6 ? 128 : 32;
      const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= maxPrefix);
      if (family === 0 || !prefixOk || extra !== undefined) {
        throw new ConfigError('TRUSTED_PROXIES', `has "${entry}", which is not an IP address or CIDR block`);
      }
      return entry;
    });
}

export function readRateLimit(env: Env): RateLimitConfig {
  const keyPrefix = env.RATE_LIMIT_KEY_PREFIX ?? 'ratelimit:';
  if (keyPrefix.length > 100) throw new ConfigError('RATE_LIMIT_KEY_PREFIX', 'must be at most 100 characters');
  return {
    enabled: readBool(env, 'RATE_LIMIT_ENABLED', true),
    writes: {
      capacity: readInt(env, 'RATE_LIMIT_WRITE_CAPACITY', 20, 1, 1_000_000),
      refillPerSecond: readRate(env, 'RATE_LIMIT_WRITE_REFILL_PER_SECOND', 10),
    },
    reads: {
      capacity: readInt(env, 'RATE_LIMIT_READ_CAPACITY', 100, 1, 1_000_000),
      refillPerSecond: readRate(env, 'RATE_LIMIT_READ_REFILL_PER_SECOND', 50),
    },
    // Generous enough that a healthy Redis on a loaded 2-core machine does not miss it (p99.9 well under it);
    // a hung Redis costs at most RATE_LIMIT_REDIS_FAILURES_TO_OPEN timeouts before the circuit opens.
    redisTimeoutMs: readInt(env, 'RATE_LIMIT_REDIS_TIMEOUT_MS', 250, 1, 10_000),
    redisBreaker: {
      failuresToOpen: readInt(env, 'RATE_LIMIT_REDIS_FAILURES_TO_OPEN', 5, 1, 1_000),
      coolDownMs: readInt(env, 'RATE_LIMIT_REDIS_COOL_DOWN_MS', 2_000, 0, 600_000),
      successesToClose: readInt(env, 'RATE_LIMIT_REDIS_SUCCESSES_TO_CLOSE', 2, 1, 1_000),
    },
    keyPrefix,
  };
}
