/**
 * Decides whether a request may go ahead: the shared Redis bucket when Redis is configured and answering,
 * otherwise the per-process in-memory bucket with the same policy.
 *
 * Failing open is deliberate: rate limiting protects capacity, the ledger protects money, so an outage of
 * Redis must not become an outage of payments. While Redis fails, each replica enforces the policy on its own
 * (a client spread over n replicas gets up to n times its burst). A failure logs one warning; the first
 * success afterwards logs one info line. After a failure Redis is left alone for a short pause and then
 * probed by one request at a time, so a slow Redis costs at most one timeout per pause rather than one per
 * request.
 */
import { metrics } from '../observability/metrics.js';
import type { Decision, MemoryTokenBuckets } from './memory-buckets.js';
import type { BucketPolicy } from './policy.js';
import type { RedisTokenBuckets } from './redis-buckets.js';

export interface LimiterLogger {
  warn(details: object, message: string): void;
  info(details: object, message: string): void;
}

export type DecisionSource = 'redis' | 'memory';

export interface LimiterDecision extends Decision {
  source: DecisionSource;
}

/** How long a failed Redis is bypassed before one request probes it again. */
export const DEFAULT_REDIS_RETRY_PAUSE_MS = 250;

export interface RateLimiterOptions {
  memory: MemoryTokenBuckets;
  redis: RedisTokenBuckets | undefined;
  logger: LimiterLogger;
  redisRetryPauseMs?: number;
}

export class RateLimiter {
  private readonly memory: MemoryTokenBuckets;
  private readonly redis: RedisTokenBuckets | undefined;
  private readonly logger: LimiterLogger;
  private readonly retryPauseMs: number;
  /** True from the first Redis failure until the next success: one warning and one recovery line per episode. */
  private degraded = false;
  private bypassUntil = 0;
  private probing = false;

  constructor(options: RateLimiterOptions) {
    this.memory = options.memory;
    this.redis = options.redis;
    this.logger = options.logger;
    this.retryPauseMs = options.redisRetryPauseMs ?? DEFAULT_REDIS_RETRY_PAUSE_MS;
  }

  /** Whether the last word from Redis was a failure (the in-memory buckets are in use). */
  get usingFallback(): boolean {
    return this.redis === undefined || this.degraded;
  }

  async take(key: string, policy: BucketPolicy): Promise<LimiterDecision> {
    const redis = this.redis;
    if (redis === undefined) return { ...this.memory.take(key, policy), source: 'memory' };
    if (this.degraded && (this.probing || performance.now() < this.bypassUntil)) {
      return { ...this.memory.take(key, policy), source: 'memory' };
    }
    const probe = this.degraded;
    if (probe) this.probing = true;
    try {
      const decision = await redis.take(key, policy);
      if (this.degraded) {
        this.degraded = false;
        metrics.rateLimitFallback(false);
        this.logger.info({}, 'rate limiter: Redis answers again; using the shared buckets');
      }
      return { ...decision, source: 'redis' };
    } catch (error) {
      this.bypassUntil = performance.now() + this.retryPauseMs;
      if (!this.degraded) {
        this.degraded = true;
        metrics.rateLimitFallback(true);
        this.logger.warn(
          { err: error },
          'rate limiter: Redis unavailable; failing open to per-process in-memory buckets until it answers again',
        );
      }
      return { ...this.memory.take(key, policy), source: 'memory' };
    } finally {
      if (probe) this.probing = false;
    }
  }
}
