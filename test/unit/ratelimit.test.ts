/** The rate limiter's pure parts: buckets, client addresses, classification, fallback episodes, headers, config. */
import type { FastifyRequest } from 'fastify';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { LEDGER_SERVICES } from '../../src/contract.js';
import {
  addressKey,
  clientAddress,
  clientKey,
  normalizeAddress,
  principalFromRequest,
  TrustedProxies,
} from '../../src/ratelimit/client-key.js';
import { type LimiterLogger, RateLimiter } from '../../src/ratelimit/limiter.js';
import { MemoryTokenBuckets } from '../../src/ratelimit/memory-buckets.js';
import {
  type BucketPolicy,
  IDLE_FORGET_MS,
  type Policies,
  policyFor,
  WRITE_PROCEDURES,
} from '../../src/ratelimit/policy.js';
import type { RedisTokenBuckets } from '../../src/ratelimit/redis-buckets.js';
import { rateLimitHeader, rateLimitPolicyHeader, retryAfterSeconds } from '../../src/ratelimit/respond.js';

const writes: BucketPolicy = { name: 'writes', capacity: 3, refillPerSecond: 10 };
const reads: BucketPolicy = { name: 'reads', capacity: 100, refillPerSecond: 50 };
const policies: Policies = { writes, reads };

function clock(start = 1_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('the in-memory token bucket', () => {
  it('allows the capacity at once, then refuses with the time until the next token', () => {
    const time = clock();
    const buckets = new MemoryTokenBuckets(10, time.now);
    expect([1, 2, 3].map(() => buckets.take('k', writes).allowed)).toEqual([true, true, true]);
    expect(buckets.take('k', writes)).toEqual({ allowed: false, remaining: 0, retryAfterMs: 100, resetMs: 300 });
    time.advance(40);
    expect(buckets.take('k', writes).retryAfterMs).toBe(60);
    time.advance(60);
    expect(buckets.take('k', writes)).toMatchObject({ allowed: true, remaining: 0 });
  });

  it('refills at the rate, up to the capacity', () => {
    const time = clock();
    const buckets = new MemoryTokenBuckets(10, time.now);
    for (let index = 0; index < 3; index++) buckets.take('k', writes);
    time.advance(10_000);
    expect(buckets.take('k', writes)).toEqual({ allowed: true, remaining: 2, retryAfterMs: 0, resetMs: 100 });
  });

  it('never refills at rate 0, until the bucket has been idle for IDLE_FORGET_MS', () => {
    const time = clock();
    const buckets = new MemoryTokenBuckets(10, time.now);
    const fixed: BucketPolicy = { name: 'writes', capacity: 1, refillPerSecond: 0 };
    expect(buckets.take('k', fixed).allowed).toBe(true);
    time.advance(60_000);
    expect(buckets.take('k', fixed)).toMatchObject({ allowed: false, retryAfterMs: IDLE_FORGET_MS - 60_000 });
    time.advance(IDLE_FORGET_MS);
    expect(buckets.take('k', fixed).allowed).toBe(true);
  });

  it('keeps at most maxKeys buckets, dropping the least recently used', () => {
    const buckets = new MemoryTokenBuckets(3, clock().now);
    for (const name of ['a', 'b', 'c']) buckets.take(name, writes);
    buckets.take('a', writes); // a is now the most recently used
    buckets.take('d', writes);
    expect(buckets.size).toBe(3);
    // b was dropped and starts again full (3 → 2 left); a kept its state (3 → 1 → 0 left).
    expect(buckets.take('b', writes).remaining).toBe(2);
    expect(buckets.take('a', writes).remaining).toBe(0);
  });
});

describe('the client address', () => {
  const trusted = new TrustedProxies(['127.0.0.1', '10.0.0.0/8', '2001:db8:ffff::/48']);

  it('is the peer when the peer is not a trusted proxy, whatever X-Forwarded-For says', () => {
    expect(clientAddress('192.0.2.1', '198.51.100.1', trusted)).toBe('192.0.2.1');
    expect(clientAddress('192.0.2.1', undefined, new TrustedProxies([]))).toBe('192.0.2.1');
  });

  it('behind trusted proxies is the right-most untrusted X-Forwarded-For entry', () => {
    expect(clientAddress('127.0.0.1', '198.51.100.1', trusted)).toBe('198.51.100.1');
    expect(clientAddress('127.0.0.1', '203.0.113.9, 198.51.100.1, 10.0.0.5', trusted)).toBe('198.51.100.1');
    expect(clientAddress('::ffff:127.0.0.1', ['203.0.113.9', '198.51.100.1'], trusted)).toBe('198.51.100.1');
    expect(clientAddress('127.0.0.1', '[2001:db8::7]:4711, 198.51.100.1:80', trusted)).toBe('198.51.100.1');
    expect(clientAddress('127.0.0.1', '2001:db8::7, 2001:db8:ffff::1', trusted)).toBe('2001:db8::7');
  });

  it('is the left-most entry when every hop is trusted, and the reporting proxy when an entry is malformed', () => {
    expect(clientAddress('127.0.0.1', '10.1.1.1, 10.2.2.2', trusted)).toBe('10.1.1.1');
    expect(clientAddress('127.0.0.1', '198.51.100.1, unknown, 10.2.2.2', trusted)).toBe('10.2.2.2');
    expect(clientAddress('127.0.0.1', 'garbage', trusted)).toBe('127.0.0.1');
    expect(clientAddress('127.0.0.1', '', trusted)).toBe('127.0.0.1');
  });

  it('normalizes addresses and keys IPv6 clients by their /64', () => {
    expect(normalizeAddress('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(normalizeAddress('FE80::1%eth0')).toBe('fe80::1');
    expect(normalizeAddress('not an address')).toBeUndefined();
    expect(addressKey('192.0.2.1')).toBe('192.0.2.1');
    expect(addressKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64');
  });

  it('gives the bucket to the authenticated principal when the request has one', () => {
    const request = (principal: string | undefined) =>
      ({ principal, socket: { remoteAddress: '192.0.2.1' }, headers: {} }) as unknown as FastifyRequest;
    expect(clientKey(request('user:alice'), trusted, principalFromRequest)).toBe('p:user:alice');
    expect(clientKey(request(undefined), trusted, principalFromRequest)).toBe('ip:192.0.2.1');
    expect(clientKey(request('anonymous'), trusted, principalFromRequest)).toBe('ip:192.0.2.1');
    expect(clientKey(request('x'.repeat(500)), trusted, principalFromRequest)).toMatch(/^p#[\w-]{43}$/);
  });
});

describe('classification', () => {
  it('limits listed writes as writes, other RPCs and unknown paths as reads, and exempts health and preflight', () => {
    expect(policyFor('POST', '/payment.v1.PaymentService/AuthorizePayment', policies)).toBe(writes);
    expect(policyFor('POST', '/payment.v1.AccountService/DepositFunds', policies)).toBe(writes);
    expect(policyFor('POST', '/payment.v1.AccountService/CreateAccount', policies)).toBe(writes);
    expect(policyFor('POST', '/payment.v1.PaymentService/GetPayment', policies)).toBe(reads);
    expect(policyFor('POST', '/payment.v1.PaymentService/SomeFutureRpc', policies)).toBe(reads);
    expect(policyFor('GET', '/nowhere', policies)).toBe(reads);
    for (const path of [
      '/healthz',
      '/readyz',
      '/grpc.health.v1.Health/Check',
      '/grpc.health.v1.Health/Watch',
      '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
      '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
    ]) {
      expect(policyFor('POST', path, policies)).toBeUndefined();
    }
    expect(policyFor('OPTIONS', '/payment.v1.PaymentService/AuthorizePayment', policies)).toBeUndefined();
  });

  it('lists every RPC of the contract whose name says it changes something as a write', () => {
    const mutating =
      /^(Authorize|Capture|Void|Refund|Create|Deposit|Withdraw|Transfer|Run|Update|Delete|Close|Freeze|Unfreeze|Payout|Revoke)/;
    for (const service of LEDGER_SERVICES) {
      for (const method of service.methods) {
        const path = `/${service.typeName}/${method.name}`;
        expect(WRITE_PROCEDURES.has(path), path).toBe(mutating.test(method.name));
      }
    }
  });
});

describe('failing open when Redis fails', () => {
  class Logger implements LimiterLogger {
    lines: string[] = [];
    warn(_details: object, message: string) {
      this.lines.push(`warn: ${message}`);
    }
    info(_details: object, message: string) {
      this.lines.push(`info: ${message}`);
    }
  }

  function fakeRedis() {
    const state = { failing: false, calls: 0 };
    const buckets = {
      take: async () => {
        state.calls++;
        if (state.failing) throw new Error('Connection is closed.');
        return { allowed: true, remaining: 7, retryAfterMs: 0, resetMs: 10 };
      },
    } as unknown as RedisTokenBuckets;
    return { state, buckets };
  }

  it('uses memory while Redis fails, logging one warning per episode and one line on recovery', async () => {
    const logger = new Logger();
    const { state, buckets } = fakeRedis();
    const limiter = new RateLimiter({
      memory: new MemoryTokenBuckets(),
      redis: buckets,
      logger,
      breaker: { failuresToOpen: 1, coolDownMs: 0, successesToClose: 1 },
    });
    expect((await limiter.take('k', writes)).source).toBe('redis');

    state.failing = true;
    const during = await Promise.all(Array.from({ length: 5 }, () => limiter.take('k', writes)));
    expect(during.map((decision) => decision.source)).toEqual(Array(5).fill('memory'));
    expect(during.filter((decision) => decision.allowed)).toHaveLength(writes.capacity);
    expect(limiter.usingFallback).toBe(true);

    state.failing = false;
    expect((await limiter.take('k', writes)).source).toBe('redis');
    expect((await limiter.take('k', writes)).source).toBe('redis');
    expect(logger.lines).toEqual([
      expect.stringMatching(/^warn: rate limiter: Redis unavailable/),
      expect.stringMatching(/^info: rate limiter: Redis answers again/),
    ]);

    state.failing = true;
    await limiter.take('k', writes);
    expect(logger.lines).toHaveLength(3);
  });

  it('leaves a failed Redis alone for the cool-down once the circuit is open', async () => {
    const { state, buckets } = fakeRedis();
    const limiter = new RateLimiter({
      memory: new MemoryTokenBuckets(),
      redis: buckets,
      logger: new Logger(),
      breaker: { failuresToOpen: 1, coolDownMs: 60_000 },
    });
    state.failing = true;
    await limiter.take('k', reads);
    await Promise.all(Array.from({ length: 10 }, () => limiter.take('k', reads)));
    expect(state.calls).toBe(1);
  });

  it('stays on Redis through occasional failures, and probes one request at a time after the cool-down', async () => {
    const logger = new Logger();
    const { state, buckets } = fakeRedis();
    let now = 0;
    const limiter = new RateLimiter({
      memory: new MemoryTokenBuckets(),
      redis: buckets,
      logger,
      breaker: { failuresToOpen: 3, coolDownMs: 1_000, successesToClose: 2 },
      now: () => now,
    });
    // Two failures in a row, then a success: below the threshold, nothing switches and nothing is logged.
    for (const failing of [true, true, false, true, true, false]) {
      state.failing = failing;
      expect((await limiter.take('k', reads)).source).toBe(failing ? 'memory' : 'redis');
    }
    expect(limiter.usingFallback).toBe(false);
    expect(logger.lines).toEqual([]);

    state.failing = true;
    for (let index = 0; index < 3; index++) await limiter.take('k', reads);
    expect(limiter.redisCircuit()).toMatchObject({ state: 'open', opened: 1 });
    const callsWhenOpened = state.calls;
    state.failing = false;
    now = 999;
    expect((await limiter.take('k', reads)).source).toBe('memory');
    expect(state.calls).toBe(callsWhenOpened);
    now = 1_000;
    // Half-open: of concurrent requests, only one probes Redis.
    const probing = await Promise.all(Array.from({ length: 4 }, () => limiter.take('k', reads)));
    expect(probing.map((decision) => decision.source).sort()).toEqual(['memory', 'memory', 'memory', 'redis']);
    expect(limiter.redisCircuit()?.state).toBe('half-open');
    expect((await limiter.take('k', reads)).source).toBe('redis');
    expect(limiter.redisCircuit()?.state).toBe('closed');
    expect(logger.lines).toEqual([
      expect.stringMatching(/^warn: rate limiter: Redis unavailable/),
      expect.stringMatching(/^info: rate limiter: Redis answers again/),
    ]);
  });

  it('uses memory only when there is no Redis', async () => {
    const limiter = new RateLimiter({ memory: new MemoryTokenBuckets(), redis: undefined, logger: new Logger() });
    expect((await limiter.take('k', writes)).source).toBe('memory');
  });
});

describe('the retry hint', () => {
  it('follows the RateLimit header draft', () => {
    expect(rateLimitPolicyHeader({ name: 'writes', capacity: 20, refillPerSecond: 10 })).toBe('"writes";q=20;w=2');
    expect(rateLimitPolicyHeader({ name: 'reads', capacity: 5, refillPerSecond: 0 })).toBe('"reads";q=5');
    const refused = { allowed: false, remaining: 0, retryAfterMs: 2_001, resetMs: 9_000 };
    expect(retryAfterSeconds(refused)).toBe(3);
    expect(retryAfterSeconds({ ...refused, retryAfterMs: 5 })).toBe(1);
    expect(rateLimitHeader(writes, refused)).toBe('"writes";r=0;t=3');
    expect(rateLimitHeader(writes, { allowed: true, remaining: 4, retryAfterMs: 0, resetMs: 1_500 })).toBe(
      '"writes";r=4;t=2',
    );
  });
});

describe('rate limit configuration', () => {
  it('has defaults', () => {
    const config = loadConfig({});
    expect(config.redisUrl).toBeUndefined();
    expect(config.trustedProxies).toEqual([]);
    expect(config.rateLimit).toEqual({
      enabled: true,
      writes: { capacity: 20, refillPerSecond: 10 },
      reads: { capacity: 100, refillPerSecond: 50 },
      redisTimeoutMs: 250,
      redisBreaker: { failuresToOpen: 5, coolDownMs: 2_000, successesToClose: 2 },
      keyPrefix: 'ratelimit:',
    });
  });

  it('reads every variable', () => {
    const config = loadConfig({
      REDIS_URL: 'redis://cache:6379/2',
      TRUSTED_PROXIES: ' 10.0.0.1 , 10.1.0.0/16,2001:db8::/32',
      RATE_LIMIT_ENABLED: 'false',
      RATE_LIMIT_WRITE_CAPACITY: '5',
      RATE_LIMIT_WRITE_REFILL_PER_SECOND: '0.5',
      RATE_LIMIT_READ_CAPACITY: '7',
      RATE_LIMIT_READ_REFILL_PER_SECOND: '0',
      RATE_LIMIT_REDIS_TIMEOUT_MS: '20',
      RATE_LIMIT_REDIS_FAILURES_TO_OPEN: '7',
      RATE_LIMIT_REDIS_COOL_DOWN_MS: '0',
      RATE_LIMIT_REDIS_SUCCESSES_TO_CLOSE: '1',
      RATE_LIMIT_KEY_PREFIX: 'rl:',
    });
    expect(config.redisUrl).toBe('redis://cache:6379/2');
    expect(config.trustedProxies).toEqual(['10.0.0.1', '10.1.0.0/16', '2001:db8::/32']);
    expect(config.rateLimit).toEqual({
      enabled: false,
      writes: { capacity: 5, refillPerSecond: 0.5 },
      reads: { capacity: 7, refillPerSecond: 0 },
      redisTimeoutMs: 20,
      redisBreaker: { failuresToOpen: 7, coolDownMs: 0, successesToClose: 1 },
      keyPrefix: 'rl:',
    });
  });

  it.each([
    ['REDIS_URL', 'http://cache:6379'],
    ['REDIS_URL', 'not a url'],
    ['TRUSTED_PROXIES', '10.0.0.1,proxy.internal'],
    ['TRUSTED_PROXIES', '10.0.0.0/33'],
    ['RATE_LIMIT_ENABLED', 'maybe'],
    ['RATE_LIMIT_WRITE_CAPACITY', '0'],
    ['RATE_LIMIT_READ_CAPACITY', 'many'],
    ['RATE_LIMIT_WRITE_REFILL_PER_SECOND', '-1'],
    ['RATE_LIMIT_READ_REFILL_PER_SECOND', '1e3'],
    ['RATE_LIMIT_REDIS_TIMEOUT_MS', '0'],
    ['RATE_LIMIT_KEY_PREFIX', 'x'.repeat(101)],
  ])('names %s when it is bad (%s)', (variable, value) => {
    const load = () => loadConfig({ [variable]: value });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(variable);
  });
});
