/**
 * The rate limiter when Redis is in trouble: unreachable from the start, gone and back, hanging and answering
 * again. Redis is reached through a TCP proxy the test can stop or stall; each backend is a principal with a
 * bucket of its own. Helpers and setup: ./support/rate-limit.ts; every server in this file shares one test
 * database, each test its own Redis prefix.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { clientsFor } from './support/clients.js';
import { credentialHeaders } from './support/credentials.js';
import {
  type Backend,
  createAccount,
  newBackend,
  pause,
  RateLimitHarness,
  tally,
  timed,
  writesBucket,
} from './support/rate-limit.js';
import { startTcpProxy } from './support/tcp-proxy.js';

const harness = RateLimitHarness.forFile();

describe('when Redis is in trouble', () => {
  const limits = {
    RATE_LIMIT_WRITE_CAPACITY: '3',
    RATE_LIMIT_WRITE_REFILL_PER_SECOND: '0',
    TRUSTED_PROXIES: '127.0.0.1',
    // The default, which the answers' time bounds below are scaled to (the harness's own is longer).
    RATE_LIMIT_REDIS_TIMEOUT_MS: '250',
  };

  it('keeps serving from the in-memory bucket, with the same policy, when Redis is unreachable', async () => {
    const started = performance.now();
    const service = await harness.start(harness.freshPrefix(), { ...limits, REDIS_URL: 'redis://127.0.0.1:1' });
    expect(performance.now() - started).toBeLessThan(5_000);
    const clients = clientsFor('connect-json', service.url);
    const outcomes: string[] = [];
    for (let index = 0; index < 6; index++) {
      const { ms, result } = await timed(() => createAccount(clients, 'user:rl'));
      expect(ms).toBeLessThan(1_000);
      outcomes.push(result.status === 'fulfilled' ? 'ok' : Code[ConnectError.from(result.reason).code]);
    }
    expect(outcomes).toEqual(['ok', 'ok', 'ok', 'ResourceExhausted', 'ResourceExhausted', 'ResourceExhausted']);
  });

  it('falls back while Redis is gone and shares the bucket again once it is back', async () => {
    const proxy = await startTcpProxy(6379);
    harness.track(proxy);
    const prefix = harness.freshPrefix();
    const config = { ...limits, REDIS_URL: proxy.url('redis') };
    const first = await harness.start(prefix, config);
    const clients = clientsFor('grpc', first.url, {});
    // Each backend is a principal with a bucket of its own; every key is valid on every instance.
    const as = (backend: Backend) => createAccount(clients, 'user:rl', credentialHeaders(backend.credentials));

    const before = await newBackend(first);
    await as(before);
    expect(await harness.redis.hget(writesBucket(prefix, before.principal), 'tokens')).toMatch(/^2(\.0+)?$/);

    await proxy.stop();
    const during = await newBackend(first);
    const outcomes: string[] = [];
    for (let index = 0; index < 5; index++) {
      const { ms, result } = await timed(() => as(during));
      expect(ms).toBeLessThan(1_000);
      outcomes.push(result.status === 'fulfilled' ? 'ok' : Code[ConnectError.from(result.reason).code]);
    }
    expect(outcomes).toEqual(['ok', 'ok', 'ok', 'ResourceExhausted', 'ResourceExhausted']);
    expect(await harness.redis.exists(writesBucket(prefix, during.principal))).toBe(0);

    // Back: the limiter reconnects by itself; poll with fresh backends until the buckets of two in a row
    // appear in Redis (the circuit closes after two successful probes; before, most requests use memory).
    await proxy.start();
    const deadline = performance.now() + 15_000;
    for (let inRedis = 0; inRedis < 2; ) {
      const probe = await newBackend(first);
      await as(probe).catch(() => {});
      inRedis = (await harness.redis.exists(writesBucket(prefix, probe.principal))) === 1 ? inRedis + 1 : 0;
      if (performance.now() > deadline) throw new Error('the limiter did not return to Redis within 15 s');
      if (inRedis === 0) await pause(50);
    }

    // Shared again: a second instance draws from the same bucket as the first.
    const second = await harness.start(prefix, config);
    const secondClients = clientsFor('connect-json', second.url, {});
    const after = await newBackend(first);
    const onSecond = () => createAccount(secondClients, 'user:rl', credentialHeaders(after.credentials));
    const shared = await tally([as(after), as(after), onSecond(), onSecond()]);
    expect(shared).toEqual({ passed: 3, refused: 1 });
  });

  it('stops calling a hung Redis after N consecutive timeouts: the circuit opens, memory decides', async () => {
    const proxy = await startTcpProxy(6379);
    harness.track(proxy);
    const prefix = harness.freshPrefix();
    const service = await harness.start(prefix, {
      RATE_LIMIT_WRITE_CAPACITY: '1000',
      RATE_LIMIT_WRITE_REFILL_PER_SECOND: '0',
      TRUSTED_PROXIES: '127.0.0.1',
      REDIS_URL: proxy.url('redis'),
      RATE_LIMIT_REDIS_TIMEOUT_MS: '500',
      RATE_LIMIT_REDIS_FAILURES_TO_OPEN: '3',
      // Longer than the test: once open, the circuit stays open, whatever the machine's speed.
      RATE_LIMIT_REDIS_COOL_DOWN_MS: '600000',
    });
    const clients = clientsFor('grpc', service.url, {});
    const backend = await newBackend(service);
    const call = () => createAccount(clients, 'user:rl', credentialHeaders(backend.credentials));
    await call();
    const circuit = async () =>
      ((await (await fetch(`${service.url}/readyz`)).json()) as { rateLimit?: { redisCircuit?: string } }).rateLimit
        ?.redisCircuit;
    expect(await circuit()).toBe('closed');

    proxy.stall();
    // A hung Redis still runs every command it receives (only its replies are held back), so the bucket
    // in Redis counts exactly the calls the limiter made.
    // Sequential, so each failure is counted before the next call: 3 reach Redis, then the circuit is open.
    for (let index = 0; index < 10; index++) await call();
    expect(await circuit()).toBe('open');
    proxy.resume();
    expect(await harness.redis.hget(writesBucket(prefix, backend.principal), 'tokens')).toMatch(/^996(\.0+)?$/);
  });

  it('answers within the timeout scale when Redis hangs, and recovers when it answers again', async () => {
    const proxy = await startTcpProxy(6379);
    harness.track(proxy);
    const prefix = harness.freshPrefix();
    const service = await harness.start(prefix, { ...limits, REDIS_URL: proxy.url('redis') });
    const clients = clientsFor('grpc', service.url, {});
    const as = (backend: Backend) => createAccount(clients, 'user:rl', credentialHeaders(backend.credentials));

    const during = await newBackend(service);
    proxy.stall();
    const outcomes: string[] = [];
    for (let index = 0; index < 5; index++) {
      const { ms, result } = await timed(() => as(during));
      expect(ms).toBeLessThan(1_000);
      outcomes.push(result.status === 'fulfilled' ? 'ok' : Code[ConnectError.from(result.reason).code]);
    }
    expect(outcomes).toEqual(['ok', 'ok', 'ok', 'ResourceExhausted', 'ResourceExhausted']);

    proxy.resume();
    const deadline = performance.now() + 10_000;
    for (;;) {
      const probe = await newBackend(service);
      await as(probe).catch(() => {});
      if ((await harness.redis.exists(writesBucket(prefix, probe.principal))) === 1) break;
      if (performance.now() > deadline) throw new Error('the limiter did not return to Redis within 10 s');
      await pause(50);
    }
  });
});
