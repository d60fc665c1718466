/**
 * Rate limiting as a Fastify onRequest hook, in front of the Connect handlers: a refused request is answered
 * from here and never reaches a handler, the body parser or the database. Register it after CORS (so a
 * refusal still carries the CORS headers a browser needs to read it) and after authentication, once there
 * is one (so that `request.principal` is set; see client-key.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { metrics } from '../observability/metrics.js';
import { clientKey, type PrincipalOf, principalFromRequest, TrustedProxies } from './client-key.js';
import { type LimiterLogger, RateLimiter } from './limiter.js';
import { MemoryTokenBuckets } from './memory-buckets.js';
import { type Policies, policiesFrom, policyFor } from './policy.js';
import { RedisTokenBuckets } from './redis-buckets.js';
import { rateLimitHeader, rateLimitPolicyHeader, refuse } from './respond.js';

export interface RateLimitHookOptions {
  limiter: RateLimiter;
  policies: Policies;
  trustedProxies: TrustedProxies;
  /** Prepended to every bucket key, e.g. "ratelimit:" → "ratelimit:writes:ip:192.0.2.1". */
  keyPrefix: string;
  principalOf?: PrincipalOf;
}

export function rateLimitHook(options: RateLimitHookOptions) {
  const { limiter, policies, trustedProxies, keyPrefix } = options;
  const principalOf = options.principalOf ?? principalFromRequest;
  return async function rateLimit(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    // The matched route, not the raw URL: a percent-encoded write must not count as a read.
    const path = request.routeOptions.url ?? pathOf(request.url);
    const policy = policyFor(request.method, path, policies);
    if (policy === undefined) return undefined;
    const key = `${keyPrefix}${policy.name}:${clientKey(request, trustedProxies, principalOf)}`;
    const decision = await limiter.take(key, policy);
    metrics.rateLimitDecision(policy.name, decision.allowed, decision.source);
    if (!decision.allowed) return refuse(request, reply, policy, decision);
    reply.header('ratelimit-policy', rateLimitPolicyHeader(policy));
    reply.header('ratelimit', rateLimitHeader(policy, decision));
    return undefined;
  };
}

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

export interface RateLimitSetup {
  config: Config;
  /** The shared buckets' connection (start.ts owns and closes it); undefined = in-memory buckets only. */
  redis: Redis | undefined;
  logger: LimiterLogger;
}

/** The limiter over Redis (when given) with its circuit breaker's `breaker` thresholds, memory otherwise. */
export function createRateLimiter({
  redis,
  logger,
  breaker,
}: Pick<RateLimitSetup, 'redis' | 'logger'> & { breaker?: Config['rateLimit']['redisBreaker'] }): RateLimiter {
  let shared: RedisTokenBuckets | undefined;
  if (redis) {
    const buckets = new RedisTokenBuckets(redis);
    // Loaded up front on every (re)connection; EVALSHA reloads it on NOSCRIPT anyway.
    const load = () => void buckets.load().catch(() => {});
    redis.on('ready', load);
    if (redis.status === 'ready') load();
    shared = buckets;
  }
  return new RateLimiter({ memory: new MemoryTokenBuckets(), redis: shared, logger, ...(breaker ? { breaker } : {}) });
}

/** Adds the onRequest hook to `fastify` (call it after CORS is registered and before the routes). */
export function registerRateLimit(fastify: FastifyInstance, setup: RateLimitSetup): RateLimiter {
  const { config } = setup;
  const limiter = createRateLimiter(Object.assign({}, setup, { breaker: config.rateLimit.redisBreaker }));
  fastify.addHook(
    'onRequest',
    rateLimitHook({
      limiter,
      policies: policiesFrom(config.rateLimit),
      trustedProxies: new TrustedProxies(config.trustedProxies),
      keyPrefix: config.rateLimit.keyPrefix,
    }),
  );
  return limiter;
}
