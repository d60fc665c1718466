/**
 * The per-process token bucket: used when no REDIS_URL is configured, and as the fallback while Redis is
 * down or slow. Same algorithm and policy as the Redis script (redis-buckets.ts), on this process's
 * monotonic clock. Bounded: past `maxKeys` the least recently used bucket is dropped (a dropped client
 * starts again with a full bucket, which only ever errs on the side of serving).
 */
import { type BucketPolicy, IDLE_FORGET_MS } from './policy.js';

export interface Decision {
  allowed: boolean;
  /** Whole tokens left after this request. */
  remaining: number;
  /** Refused: milliseconds until a request would be allowed. 0 when allowed. */
  retryAfterMs: number;
  /** Milliseconds until the bucket is full again. */
  resetMs: number;
}

export const DEFAULT_MAX_MEMORY_KEYS = 10_000;

interface Bucket {
  tokens: number;
  /** performance.now() of the last allowed request. */
  at: number;
}

export class MemoryTokenBuckets {
  // A Map iterates in insertion order; re-inserting on every use makes its first key the least recently used.
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly maxKeys = DEFAULT_MAX_MEMORY_KEYS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get size(): number {
    return this.buckets.size;
  }

  take(key: string, policy: BucketPolicy): Decision {
    const now = this.now();
    const { capacity, refillPerSecond: rate } = policy;
    const bucket = this.buckets.get(key);
    let tokens = capacity;
    let at = now;
    if (bucket) {
      this.buckets.delete(key);
      at = bucket.at;
      if (rate > 0) tokens = Math.min(capacity, bucket.tokens + (Math.max(0, now - at) * rate) / 1000);
      else tokens = now - at >= IDLE_FORGET_MS ? capacity : Math.min(capacity, bucket.tokens);
    }

    if (tokens >= 1) {
      tokens -= 1;
      this.buckets.set(key, { tokens, at: now });
      if (this.buckets.size > this.maxKeys) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
      const resetMs = rate > 0 ? Math.ceil(((capacity - tokens) * 1000) / rate) : IDLE_FORGET_MS;
      return { allowed: true, remaining: Math.floor(tokens), retryAfterMs: 0, resetMs };
    }
    // Refused: nothing changes, so the bucket keeps refilling from its last allowed request.
    if (bucket) this.buckets.set(key, bucket);
    const retryAfterMs =
      rate > 0 ? Math.ceil(((1 - tokens) * 1000) / rate) : Math.max(1, Math.ceil(IDLE_FORGET_MS - (now - at)));
    const resetMs = rate > 0 ? Math.ceil(((capacity - tokens) * 1000) / rate) : retryAfterMs;
    return { allowed: false, remaining: 0, retryAfterMs, resetMs };
  }
}
