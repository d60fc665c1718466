/**
 * Decides whether a request may go ahead: the shared Redis bucket when Redis is configured and answering,
 * otherwise the per-process in-memory bucket with the same policy.
 *
 * Failing open is deliberate: rate limiting protects capacity, the ledger protects money, so an outage of
 * Redis must not become an outage of payments. While Redis fails, each replica enforces the policy on its own
 * (a client spread over n replicas gets up to n times its burst).
 *
 * A request whose Redis call fails is decided from memory. Whether Redis is tried at all is a circuit
 * breaker's call (circuit-breaker.ts): after several consecutive failures it opens and requests go straight
 * to memory; after a cool-down one request at a time probes Redis, and a few successful probes close it.
 * A single slow answer on a busy machine therefore no longer switches the service between Redis and memory.
 * The circuit opening logs one warning, closing one info line; probe cycles while Redis stays down are
 * logged at debug and counted in stats().
 */

import { metrics } from '../observability/metrics.js';
import {
  type BreakerStats,
  CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitBreakerSettings,
} from './circuit-breaker.js';
import type { Decision, MemoryTokenBuckets } from './memory-buckets.js';
import type { BucketPolicy } from './policy.js';
import type { RedisTokenBuckets } from './redis-buckets.js';

export interface LimiterLogger {
  warn(details: object, message: string): void;
  info(details: object, message: string): void;
  debug?(details: object, message: string): void;
}

export type DecisionSource = 'redis' | 'memory';

export interface LimiterDecision extends Decision {
  source: DecisionSource;
}

export interface RateLimiterOptions {
  memory: MemoryTokenBuckets;
  redis: RedisTokenBuckets | undefined;
  logger: LimiterLogger;
  /** The Redis circuit breaker's thresholds; defaults in circuit-breaker.ts. */
  breaker?: Partial<CircuitBreakerSettings>;
  /** Monotonic ms, for the breaker's cool-down (tests inject one). */
  now?: () => number;
}

export class RateLimiter {
  private readonly memory: MemoryTokenBuckets;
  private readonly redis: RedisTokenBuckets | undefined;
  private readonly breaker: CircuitBreaker;

  constructor(options: RateLimiterOptions) {
    this.memory = options.memory;
    this.redis = options.redis;
    const logger = options.logger;
    const onStateChange: CircuitBreakerOptions['onStateChange'] = (from, to, cause) => {
      metrics.rateLimitFallback(to !== 'closed');
      const stats = this.breaker.stats();
      if (from === 'closed') {
        logger.warn(
          { err: cause, circuit: to, failuresToOpen: this.breaker.settings.failuresToOpen },
          'rate limiter: Redis unavailable; failing open to per-process in-memory buckets until it answers again',
        );
      } else if (to === 'closed') {
        logger.info(
          { circuit: to, opened: stats.opened },
          'rate limiter: Redis answers again; using the shared buckets',
        );
      } else {
        logger.debug?.({ circuit: to, err: cause }, `rate limiter: Redis circuit ${from} -> ${to}`);
      }
    };
    const now = options.now ? { now: options.now } : {};
    this.breaker = new CircuitBreaker(Object.assign({}, options.breaker, now, { onStateChange }));
  }

  /** Whether requests are being decided from memory rather than Redis (no Redis, or the circuit is not closed). */
  get usingFallback(): boolean {
    return this.redis === undefined || this.breaker.state !== 'closed';
  }

  /** The Redis circuit's state and counters, for metrics; undefined without Redis. */
  redisCircuit(): BreakerStats | undefined {
    return this.redis === undefined ? undefined : this.breaker.stats();
  }

  async take(key: string, policy: BucketPolicy): Promise<LimiterDecision> {
    const redis = this.redis;
    const permit = redis === undefined ? undefined : this.breaker.tryAcquire();
    if (redis === undefined || permit === undefined)
      return Object.assign({}, this.memory.take(key, policy), { source: 'memory' as const });
    try {
      const decision = await redis.take(key, policy);
      this.breaker.recordSuccess(permit);
      return Object.assign({}, decision, { source: 'redis' as const });
    } catch (error) {
      this.breaker.recordFailure(permit, error);
      return Object.assign({}, this.memory.take(key, policy), { source: 'memory' as const });
    }
  }
}
