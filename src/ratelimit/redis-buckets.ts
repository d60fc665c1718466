/**
 * The shared token bucket: one Lua script, atomic in Redis, timed by Redis's own clock (`TIME`) so that the
 * application servers' clocks never matter. Loaded with SCRIPT LOAD, called with EVALSHA, loaded again when
 * Redis answers NOSCRIPT (after a restart, failover or SCRIPT FLUSH).
 *
 * A bucket is a hash {tokens, at}: the tokens left after the last allowed request and when that was (Redis
 * time, ms). Refused requests write nothing. Each write sets PEXPIRE to the time the bucket takes to refill
 * completely: an idle key disappears exactly when it would be full anyway, so expiry loses nothing.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Decision } from './memory-buckets.js';
import { type BucketPolicy, IDLE_FORGET_MS } from './policy.js';

// KEYS[1] the bucket; ARGV: capacity, refill per second, ms to keep a bucket that never refills.
// Returns {allowed 0/1, whole tokens remaining, ms until a request is allowed, ms until full}.
export const TOKEN_BUCKET_LUA = `
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local forget_ms = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
elseif rate > 0 and now > at then
  tokens = tokens + (now - at) * rate / 1000
end
if tokens > capacity then tokens = capacity end
if tokens >= 1 then
  tokens = tokens - 1
  local full_ms = forget_ms
  if rate > 0 then full_ms = math.ceil((capacity - tokens) * 1000 / rate) end
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%d', now))
  redis.call('PEXPIRE', KEYS[1], math.max(full_ms, 1))
  return {1, math.floor(tokens), 0, full_ms}
end
local wait_ms
local full_ms
if rate > 0 then
  wait_ms = math.ceil((1 - tokens) * 1000 / rate)
  full_ms = math.ceil((capacity - tokens) * 1000 / rate)
else
  wait_ms = redis.call('PTTL', KEYS[1])
  if wait_ms < 1 then wait_ms = forget_ms end
  full_ms = wait_ms
end
return {0, 0, wait_ms, full_ms}
`;

const SCRIPT_SHA = createHash('sha1').update(TOKEN_BUCKET_LUA).digest('hex');

export class RedisTokenBuckets {
  private loading: Promise<unknown> | undefined;

  constructor(private readonly redis: Redis) {}

  /** SCRIPT LOAD; called once the connection is ready, and again after NOSCRIPT. */
  load(): Promise<unknown> {
    this.loading ??= this.redis.script('LOAD', TOKEN_BUCKET_LUA).finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  async take(key: string, policy: BucketPolicy): Promise<Decision> {
    const args = [key, policy.capacity, policy.refillPerSecond, IDLE_FORGET_MS] as const;
    let reply: unknown;
    try {
      reply = await this.redis.evalsha(SCRIPT_SHA, 1, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      await this.load();
      reply = await this.redis.evalsha(SCRIPT_SHA, 1, ...args);
    }
    return decisionFrom(reply);
  }
}

function decisionFrom(reply: unknown): Decision {
  if (!Array.isArray(reply) || reply.length !== 4) throw new Error('unexpected reply from the token bucket script');
  const [allowed, remaining, retryAfterMs, resetMs] = reply.map(Number) as [number, number, number, number];
  return { allowed: allowed === 1, remaining, retryAfterMs, resetMs };
}
