/**
 * The rate limiter's buckets end to end (helpers and setup: ./support/rate-limit.ts): the token bucket script,
 * exact counts and refill in a bucket shared through Redis, and who shares a bucket — principals, addresses
 * behind trusted proxies, reads versus writes — and what is never limited. Every server in this file shares one
 * test database; each test starts the servers it needs with its own limits and its own Redis key prefix.
 *
 * Clients send the server's backend key unless a test says otherwise; the address tests send none, and count
 * what passed the limiter (then refused UNAUTHENTICATED) against what it refused.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { describe, expect, it } from 'vitest';
import { Health } from '../gen/grpc/health/v1/health_pb.js';
import { IDLE_FORGET_MS } from '../src/ratelimit/policy.js';
import { RedisTokenBuckets } from '../src/ratelimit/redis-buckets.js';
import { clientsFor } from './support/clients.js';
import { type Credentials, credentialHeaders, signForeignToken, signToken } from './support/credentials.js';
import {
  CREATE_ACCOUNT,
  codeCounts,
  createAccount,
  defaultBackendOf,
  newBackend,
  pause,
  RateLimitHarness,
  tally,
  writesBucket,
} from './support/rate-limit.js';

const harness = RateLimitHarness.forFile();

describe('the token bucket script', () => {
  it('takes a token atomically, and expires an idle key when it would be full again', async () => {
    const prefix = harness.freshPrefix();
    const buckets = new RedisTokenBuckets(harness.redis);
    const policy = { name: 'writes', capacity: 10, refillPerSecond: 5 } as const;
    const bucket = `${prefix}a`;
    const started = performance.now();
    expect(await buckets.take(bucket, policy)).toEqual({ allowed: true, remaining: 9, retryAfterMs: 0, resetMs: 200 });
    const ttl = await harness.redis.pttl(bucket);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(200);

    const burst = await Promise.all(Array.from({ length: 20 }, () => buckets.take(bucket, policy)));
    // The 9 left, plus whatever came back (5/s) in the time this measurably took on a possibly loaded machine.
    const refilledAtMost = Math.floor(((performance.now() - started) / 1000) * policy.refillPerSecond) + 1;
    expect(burst.filter((decision) => decision.allowed).length).toBeGreaterThanOrEqual(9);
    expect(burst.filter((decision) => decision.allowed).length).toBeLessThanOrEqual(9 + refilledAtMost);
    const refused = burst.find((decision) => !decision.allowed)!;
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(200);
    expect(await harness.redis.pttl(bucket)).toBeLessThanOrEqual(2_000);
  });

  it('writes nothing for a refused request', async () => {
    const prefix = harness.freshPrefix();
    const buckets = new RedisTokenBuckets(harness.redis);
    const policy = { name: 'writes', capacity: 1, refillPerSecond: 0 } as const;
    const bucket = `${prefix}b`;
    await buckets.take(bucket, policy);
    const before = await harness.redis.hgetall(bucket);
    const refused = await buckets.take(bucket, policy);
    expect(refused.allowed).toBe(false);
    expect(await harness.redis.hgetall(bucket)).toEqual(before);
    // A bucket that never refills is kept for IDLE_FORGET_MS after its last allowed request.
    expect(refused.retryAfterMs).toBeGreaterThan(IDLE_FORGET_MS - 5_000);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(IDLE_FORGET_MS);
  });

  it('honours a capacity lowered since the bucket was written', async () => {
    const prefix = harness.freshPrefix();
    const buckets = new RedisTokenBuckets(harness.redis);
    const bucket = `${prefix}c`;
    await buckets.take(bucket, { name: 'reads', capacity: 100, refillPerSecond: 1 });
    expect((await buckets.take(bucket, { name: 'reads', capacity: 3, refillPerSecond: 1 })).remaining).toBe(2);
  });
});

describe('a shared bucket in Redis', () => {
  it('lets exactly N of 5×N concurrent writes through; refused ones write nothing', async () => {
    const N = 10;
    const prefix = harness.freshPrefix();
    const service = await harness.start(prefix, {
      RATE_LIMIT_WRITE_CAPACITY: String(N),
      RATE_LIMIT_WRITE_REFILL_PER_SECOND: '0',
    });
    const clients = clientsFor('grpc', service.url);
    const owner = `user:rl-${randomUUID()}`;

    const burst = await tally(Array.from({ length: 5 * N }, () => createAccount(clients, owner)));
    expect(burst).toEqual({ passed: N, refused: 4 * N });
    expect(await harness.accountsOwnedBy(owner)).toBe(N);

    // No refill: the bucket stays empty.
    await pause(150);
    expect(await tally([createAccount(clients, owner)])).toEqual({ passed: 0, refused: 1 });
    expect(await harness.accountsOwnedBy(owner)).toBe(N);
    expect(await harness.redis.keys(`${prefix}*`)).toEqual([writesBucket(prefix, defaultBackendOf(service).principal)]);
  });

  it('lets exactly N through across two server instances sharing Redis', async () => {
    const N = 10;
    const prefix = harness.freshPrefix();
    const limits = { RATE_LIMIT_WRITE_CAPACITY: String(N), RATE_LIMIT_WRITE_REFILL_PER_SECOND: '0' };
    const first = await harness.start(prefix, limits);
    const second = await harness.start(prefix, limits);
    // One principal calling both: the first instance's key, valid on the second too (they share the database).
    const backend = defaultBackendOf(first);
    const firstClients = clientsFor('grpc', first.url, backend.credentials);
    const secondClients = clientsFor('connect-json', second.url, backend.credentials);
    const owner = `user:rl-${randomUUID()}`;

    const burst = await tally(
      Array.from({ length: 5 * N }, (_, index) => createAccount(index % 2 ? firstClients : secondClients, owner)),
    );
    expect(burst).toEqual({ passed: N, refused: 4 * N });
    expect(await harness.accountsOwnedBy(owner)).toBe(N);
    expect(await harness.redis.keys(`${prefix}*`)).toEqual([writesBucket(prefix, backend.principal)]);
  });

  it('refills at the configured rate', async () => {
    const capacity = 4;
    const refillPerSecond = 20;
    const service = await harness.start(harness.freshPrefix(), {
      RATE_LIMIT_WRITE_CAPACITY: String(capacity),
      RATE_LIMIT_WRITE_REFILL_PER_SECOND: String(refillPerSecond),
    });
    const clients = clientsFor('grpc', service.url);
    const owner = `user:rl-${randomUUID()}`;
    // Tokens come back while a burst runs, and a loaded machine makes a burst slow: each burst's bound is the
    // bucket plus what can have come back in the time it measurably took (never a fixed allowance).
    const burst = async () => {
      const started = performance.now();
      const counts = await tally(Array.from({ length: 3 * capacity }, () => createAccount(clients, owner)));
      const refilledAtMost = Math.floor(((performance.now() - started) / 1000) * refillPerSecond) + 1;
      return { ...counts, refilledAtMost };
    };

    const first = await burst();
    expect(first.passed).toBeGreaterThanOrEqual(capacity);
    expect(first.passed).toBeLessThanOrEqual(capacity + first.refilledAtMost);

    // At least 150 ms at 20/s is at least 3 tokens: capacity comes back, but never more than the bucket holds.
    await pause(150);
    const second = await burst();
    expect(second.passed).toBeGreaterThanOrEqual(3);
    expect(second.passed).toBeLessThanOrEqual(capacity + second.refilledAtMost);
    expect(await harness.accountsOwnedBy(owner)).toBe(first.passed + second.passed);
  });

  it('reloads the script when Redis has forgotten it (NOSCRIPT)', async () => {
    const prefix = harness.freshPrefix();
    const service = await harness.start(prefix, {
      RATE_LIMIT_WRITE_CAPACITY: '5',
      RATE_LIMIT_WRITE_REFILL_PER_SECOND: '0',
    });
    const clients = clientsFor('connect-json', service.url);
    const bucket = writesBucket(prefix, defaultBackendOf(service).principal);
    await createAccount(clients, 'user:rl');
    await harness.redis.script('FLUSH');
    await createAccount(clients, 'user:rl');
    expect(await harness.redis.hget(bucket, 'tokens')).toMatch(/^3(\.0+)?$/);
    const ttl = await harness.redis.pttl(bucket);
    expect(ttl).toBeGreaterThan(0);
  });
});

describe('who shares a bucket', () => {
  const limits = { RATE_LIMIT_WRITE_CAPACITY: '2', RATE_LIMIT_WRITE_REFILL_PER_SECOND: '0' };

  it('gives each client behind a trusted proxy its own bucket, keyed by the right-most untrusted address', async () => {
    const prefix = harness.freshPrefix();
    const service = await harness.start(prefix, { ...limits, TRUSTED_PROXIES: '127.0.0.1,10.0.0.0/8' });
    // No credentials, so buckets are per address; what passes the limiter is then refused UNAUTHENTICATED.
    const clients = clientsFor('grpc', service.url, {});
    const as = (forwardedFor: string, count: number) =>
      codeCounts(
        Array.from({ length: count }, () => createAccount(clients, 'user:rl', { 'x-forwarded-for': forwardedFor })),
      );

    expect(await as('198.51.100.1', 5)).toEqual({ Unauthenticated: 2, ResourceExhausted: 3 });
    expect(await as('198.51.100.2', 5)).toEqual({ Unauthenticated: 2, ResourceExhausted: 3 });
    // A client cannot escape by prepending addresses, and trusted inner proxies are skipped.
    expect(await as('192.0.2.99, 198.51.100.1', 2)).toEqual({ ResourceExhausted: 2 });
    expect(await as('198.51.100.3, 10.1.2.3', 5)).toEqual({ Unauthenticated: 2, ResourceExhausted: 3 });
    expect((await harness.redis.keys(`${prefix}*`)).sort()).toEqual([
      `${prefix}writes:ip:198.51.100.1`,
      `${prefix}writes:ip:198.51.100.2`,
      `${prefix}writes:ip:198.51.100.3`,
    ]);
  });

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', async () => {
    const prefix = harness.freshPrefix();
    const service = await harness.start(prefix, limits);
    const clients = clientsFor('connect-json', service.url, {});
    const spoofed = Array.from({ length: 6 }, (_, index) =>
      createAccount(clients, 'user:rl', { 'x-forwarded-for': `198.51.100.${index + 10}` }),
    );
    expect(await codeCounts(spoofed)).toEqual({ Unauthenticated: 2, ResourceExhausted: 4 });
    expect(await harness.redis.keys(`${prefix}*`)).toEqual([`${prefix}writes:ip:127.0.0.1`]);
  });

  it('gives different principals different buckets, even from one address', async () => {
    const prefix = harness.freshPrefix();
    const service = await harness.start(prefix, limits);
    const clients = clientsFor('grpc', service.url, {});
    const first = defaultBackendOf(service);
    const second = await newBackend(service);
    const burst = (credentials: Credentials) =>
      codeCounts(Array.from({ length: 5 }, () => createAccount(clients, 'user:rl', credentialHeaders(credentials))));

    // All at once from 127.0.0.1: two backends, two wallet users and a caller without credentials.
    const [forFirst, forSecond, forAlice, forBob, forNobody] = await Promise.all([
      burst(first.credentials),
      burst(second.credentials),
      burst({ token: await signToken('rl-alice') }),
      burst({ token: await signToken('rl-bob') }),
      burst({}),
    ]);
    expect(forFirst).toEqual({ OK: 2, ResourceExhausted: 3 });
    expect(forSecond).toEqual({ OK: 2, ResourceExhausted: 3 });
    // Users may not create accounts: authenticated, so past the limiter, then refused by authorization.
    expect(forAlice).toEqual({ PermissionDenied: 2, ResourceExhausted: 3 });
    expect(forBob).toEqual({ PermissionDenied: 2, ResourceExhausted: 3 });
    expect(forNobody).toEqual({ Unauthenticated: 2, ResourceExhausted: 3 });
    expect((await harness.redis.keys(`${prefix}*`)).sort()).toEqual(
      [
        writesBucket(prefix, first.principal),
        writesBucket(prefix, second.principal),
        writesBucket(prefix, 'user:rl-alice'),
        writesBucket(prefix, 'user:rl-bob'),
        `${prefix}writes:ip:127.0.0.1`,
      ].sort(),
    );
  });

  it('keys a principal by who it is, not where it calls from; credentials that do not verify count as none', async () => {
    const prefix = harness.freshPrefix();
    const service = await harness.start(prefix, { ...limits, TRUSTED_PROXIES: '127.0.0.1' });
    const clients = clientsFor('connect-json', service.url, {});
    const backend = defaultBackendOf(service);
    const from = (forwardedFor: string, credentials: Credentials) =>
      createAccount(clients, 'user:rl', { 'x-forwarded-for': forwardedFor, ...credentialHeaders(credentials) });

    // One backend behind the proxy from six addresses: one bucket.
    const moving = Array.from({ length: 6 }, (_, index) => from(`198.51.100.${index + 20}`, backend.credentials));
    expect(await codeCounts(moving)).toEqual({ OK: 2, ResourceExhausted: 4 });

    // A client cannot mint buckets by sending made-up credentials: unknown keys and untrusted tokens are
    // keyed by its address, like no credentials at all.
    const unknownKey = () => `plk_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`;
    // Signed before any call starts: an await among started calls would leave early failures unobserved.
    const foreignToken = await signForeignToken('rl-mallory');
    const madeUp = [
      from('198.51.100.30', { apiKey: unknownKey() }),
      from('198.51.100.30', { apiKey: unknownKey() }),
      from('198.51.100.30', { token: foreignToken }),
      from('198.51.100.30', { token: 'not-a-jwt' }),
      from('198.51.100.30', {}),
    ];
    expect(await codeCounts(madeUp)).toEqual({ Unauthenticated: 2, ResourceExhausted: 3 });
    expect((await harness.redis.keys(`${prefix}*`)).sort()).toEqual(
      [writesBucket(prefix, backend.principal), `${prefix}writes:ip:198.51.100.30`].sort(),
    );
  });

  it('keeps reads and writes in separate buckets', async () => {
    const service = await harness.start(harness.freshPrefix(), {
      ...limits,
      RATE_LIMIT_READ_CAPACITY: '3',
      RATE_LIMIT_READ_REFILL_PER_SECOND: '0',
    });
    const clients = clientsFor('grpc', service.url);
    expect(await tally(Array.from({ length: 4 }, () => createAccount(clients, 'user:rl')))).toEqual({
      passed: 2,
      refused: 2,
    });
    const reads = Array.from({ length: 5 }, () => clients.payments.getPayment({ paymentId: 'pay_missing' }));
    expect(await tally(reads)).toEqual({ passed: 3, refused: 2 });
  });

  it('never limits health checks, readiness, gRPC health or CORS preflights', async () => {
    const N = 2;
    const service = await harness.start(harness.freshPrefix(), {
      RATE_LIMIT_READ_CAPACITY: String(N),
      RATE_LIMIT_READ_REFILL_PER_SECOND: '0',
      CORS_ORIGINS: 'https://wallet.example',
    });
    const health = createClient(Health, createGrpcTransport({ baseUrl: service.url }));
    for (let round = 0; round < 5 * N; round++) {
      expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${service.url}/readyz`)).status).toBe(200);
      await health.check({});
      const preflight = await fetch(`${service.url}${CREATE_ACCOUNT}`, {
        method: 'OPTIONS',
        headers: {
          origin: 'https://wallet.example',
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,connect-protocol-version',
        },
      });
      expect(preflight.status).toBe(204);
    }
    // The limiter is on all the same: reads beyond the bucket are refused.
    const reads = Array.from({ length: N + 1 }, () =>
      clientsFor('grpc', service.url).payments.getPayment({ paymentId: 'pay_x' }),
    );
    expect(await tally(reads)).toEqual({ passed: N, refused: 1 });
  });
});
