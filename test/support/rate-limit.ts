/**
 * Shared helpers for the rate limiter's end-to-end tests (test/rate-limit-*.test.ts): real servers, real Redis
 * on 127.0.0.1:6379 (a fresh key prefix per test), real clients for every protocol.
 *
 * Authentication runs before the limiter: a request with valid credentials draws from its principal's bucket
 * (`p:apikey:<id>`, `p:user:<sub>`), any other from its address's (`ip:<address>`). Clients send the server's
 * backend key unless a test says otherwise.
 *
 * Vitest runs test files in parallel in separate processes, so each file opens its own harness: one test
 * database and one Redis connection for the whole file, with the servers, proxies and Redis keys of each test
 * cleaned up after it. At a test file's top level:
 *
 *   const harness = RateLimitHarness.forFile();
 */
import { randomUUID } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { createApiKey } from '../../src/auth/api-keys.js';
import { SCOPES } from '../../src/auth/caller.js';
import type { RunningService } from '../../src/server/start.js';
import type { Clients } from './clients.js';
import { type Credentials, defaultCredentialsFor } from './credentials.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { key } from './fixtures.js';
import { startTestReplica } from './server.js';
import type { TcpProxy } from './tcp-proxy.js';

export const REDIS_URL = 'redis://127.0.0.1:6379';
export const CREATE_ACCOUNT = '/payment.v1.AccountService/CreateAccount';

/** One test file's database, Redis connection, and what its tests started (stopped after each test). */
export class RateLimitHarness {
  private running: RunningService[] = [];
  private prefixes: string[] = [];
  private proxies: TcpProxy[] = [];

  private opened: { database: TestDatabase; redis: Redis } | undefined;

  private constructor() {}

  /**
   * The harness of one test file: registers the hooks that open it before the file's tests, clean up after
   * each test (cleanUp) and close it after the last. Call once, at the file's top level.
   */
  static forFile(): RateLimitHarness {
    const harness = new RateLimitHarness();
    beforeAll(async () => {
      harness.opened = { database: await createTestDatabase(), redis: new Redis(REDIS_URL) };
    });
    afterEach(() => harness.cleanUp());
    afterAll(() => harness.close());
    return harness;
  }

  /** Every server a test starts shares this database. */
  get database(): TestDatabase {
    return this.open().database;
  }

  /** A connection of the test's own, to look at the buckets. */
  get redis(): Redis {
    return this.open().redis;
  }

  private open(): { database: TestDatabase; redis: Redis } {
    if (!this.opened) throw new Error('RateLimitHarness used outside the tests of the file that made it (forFile)');
    return this.opened;
  }

  /** A Redis key prefix of the test's own; its keys are deleted after the test. */
  freshPrefix(): string {
    const prefix = `test-ratelimit:${randomUUID()}:`;
    this.prefixes.push(prefix);
    return prefix;
  }

  /**
   * A service with the limiter on against the shared test database; `prefix` is the Redis key prefix. Redis
   * gets 2 s to answer (not the default 250 ms): on a loaded machine one slow reply would fall back to the
   * in-memory bucket, as it should, and spoil a test's exact counts. Tests of that fallback set their own.
   */
  async start(prefix: string, overrides: Record<string, string> = {}): Promise<RunningService> {
    const service = await startTestReplica(this.database.url, {
      RATE_LIMIT_ENABLED: 'true',
      REDIS_URL,
      RATE_LIMIT_KEY_PREFIX: prefix,
      RATE_LIMIT_REDIS_TIMEOUT_MS: '2000',
      ...overrides,
    });
    this.running.push(service);
    return service;
  }

  /** Stops `proxy` after the test. */
  track(proxy: TcpProxy): TcpProxy {
    this.proxies.push(proxy);
    return proxy;
  }

  async accountsOwnedBy(ownerRef: string): Promise<number> {
    const [row] = await this.database.query<{ n: number }>(
      'select count(*)::int as n from accounts where owner_ref = $1',
      [ownerRef],
    );
    return row!.n;
  }

  /** After each test: stops its servers and proxies and deletes its Redis keys. */
  private async cleanUp(): Promise<void> {
    await Promise.all(this.running.map((service) => service.close()));
    await Promise.all(this.proxies.map((proxy) => proxy.stop()));
    for (const prefix of this.prefixes) {
      const keys = await this.redis.keys(`${prefix}*`);
      if (keys.length > 0) await this.redis.del(...keys);
    }
    this.running = [];
    this.prefixes = [];
    this.proxies = [];
  }

  /** After the file: closes the Redis connection and drops the database (if they were opened). */
  private async close(): Promise<void> {
    if (!this.opened) return;
    this.opened.redis.disconnect();
    await this.opened.database.drop();
  }
}

export interface Tally {
  /** Passed the limiter (answered, whether with a result or another error). */
  passed: number;
  refused: number;
}

export async function tally(calls: Promise<unknown>[]): Promise<Tally> {
  const results = await Promise.allSettled(calls);
  const counts: Tally = { passed: 0, refused: 0 };
  for (const result of results) {
    if (result.status === 'rejected' && ConnectError.from(result.reason).code === Code.ResourceExhausted) {
      counts.refused++;
    } else {
      counts.passed++;
    }
  }
  return counts;
}

/** How many calls ended with each code ('OK' for a result), where it matters who answered the ones that passed. */
export async function codeCounts(calls: Promise<unknown>[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const result of await Promise.allSettled(calls)) {
    const name = result.status === 'fulfilled' ? 'OK' : Code[ConnectError.from(result.reason).code];
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

/** A backend as the limiter sees it: the credentials it sends and the principal its bucket is named after. */
export interface Backend {
  apiKey: string;
  credentials: Credentials;
  principal: string;
}

function backendFrom(apiKey: string | undefined): Backend {
  const id = /^plk_([0-9a-f]{16})_/.exec(apiKey ?? '')?.[1];
  if (apiKey === undefined || id === undefined) throw new Error(`not an API key: ${apiKey}`);
  return { apiKey, credentials: { apiKey }, principal: `apikey:${id}` };
}

/** The backend whose key the server's clients send by default. */
export function defaultBackendOf(service: RunningService): Backend {
  return backendFrom(defaultCredentialsFor(service.url).apiKey);
}

/** Another principal: a new all-scopes API key in the shared database, so valid on every instance. */
export async function newBackend(service: RunningService): Promise<Backend> {
  const { key: apiKey } = await createApiKey(service.database.db, 'rate-limit-test', [...SCOPES]);
  return backendFrom(apiKey);
}

export function writesBucket(prefix: string, principal: string): string {
  return `${prefix}writes:p:${principal}`;
}

export function createAccount(clients: Clients, ownerRef: string, headers?: Record<string, string>) {
  return clients.accounts.createAccount({ idempotencyKey: key('rl'), ownerRef, currency: 'USD' }, { headers });
}

export async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  const error = await call.then(
    () => {
      throw new Error('expected RESOURCE_EXHAUSTED, but the call went through');
    },
    (caught: unknown) => ConnectError.from(caught),
  );
  expect(Code[error.code]).toBe(Code[Code.ResourceExhausted]);
  return error;
}

export async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; result: PromiseSettledResult<T> }> {
  const started = performance.now();
  const [result] = await Promise.allSettled([work()]);
  return { ms: performance.now() - started, result: result! };
}

export const pause = (ms: number) => new Promise((done) => setTimeout(done, ms));
