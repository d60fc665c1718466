/**
 * The rate limiter end to end: real servers, real Redis on 127.0.0.1:6379 (a fresh key prefix per test),
 * real clients for every protocol. Every server here shares one test database; each test starts the servers
 * it needs with its own limits.
 *
 * Authentication runs before the limiter: a request with valid credentials draws from its principal's bucket
 * (`p:apikey:<id>`, `p:user:<sub>`), any other from its address's (`ip:<address>`). Clients send the server's
 * backend key unless a test says otherwise; the address tests send none, and count what passed the limiter
 * (then refused UNAUTHENTICATED) against what it refused.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import http2 from 'node:http2';
import { create, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import * as grpc from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Health } from '../gen/grpc/health/v1/health_pb.js';
import { CreateAccountRequestSchema } from '../gen/payment/v1/account_pb.js';
import { createApiKey } from '../src/auth/api-keys.js';
import { SCOPES } from '../src/auth/caller.js';
import { IDLE_FORGET_MS } from '../src/ratelimit/policy.js';
import { RedisTokenBuckets } from '../src/ratelimit/redis-buckets.js';
import type { RunningService } from '../src/server/service.js';
import { type Clients, clientsFor, PROTOCOLS } from './support/clients.js';
import {
  type Credentials,
  credentialHeaders,
  defaultCredentialsFor,
  signForeignToken,
  signToken,
} from './support/credentials.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { key } from './support/fixtures.js';
import { startTestReplica } from './support/server.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const CREATE_ACCOUNT = '/payment.v1.AccountService/CreateAccount';

let database: TestDatabase;
let redis: Redis;
let running: RunningService[] = [];
let prefixes: string[] = [];
let proxies: TcpProxy[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  redis = new Redis(REDIS_URL);
});

afterEach(async () => {
  await Promise.all(running.map((service) => service.close()));
  await Promise.all(proxies.map((proxy) => proxy.stop()));
  for (const prefix of prefixes) {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  running = [];
  prefixes = [];
  proxies = [];
});

afterAll(async () => {
  redis?.disconnect();
  await database?.drop();
});

function freshPrefix(): string {
  const prefix = `test-ratelimit:${randomUUID()}:`;
  prefixes.push(prefix);
  return prefix;
}

/** A service with the limiter on against the shared test database; `prefix` is the Redis key prefix. */
async function start(prefix: string, overrides: Record<string, string> = {}): Promise<RunningService> {
  const service = await startTestReplica(database.url, {
    RATE_LIMIT_ENABLED: 'true',
    REDIS_URL,
    RATE_LIMIT_KEY_PREFIX: prefix,
    ...overrides,
  });
  running.push(service);
  return service;
}

interface Tally {
  /** Passed the limiter (answered, whether with a result or another error). */
  passed: number;
  refused: number;
}

async function tally(calls: Promise<unknown>[]): Promise<Tally> {
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
async function codeCounts(calls: Promise<unknown>[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const result of await Promise.allSettled(calls)) {
    const name = result.status === 'fulfilled' ? 'OK' : Code[ConnectError.from(result.reason).code];
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

/** A backend as the limiter sees it: the credentials it sends and the principal its bucket is named after. */
interface Backend {
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
function defaultBackendOf(service: RunningService): Backend {
  return backendFrom(defaultCredentialsFor(service.url).apiKey);
}

/** Another principal: a new all-scopes API key in the shared database, so valid on every instance. */
async function newBackend(service: RunningService): Promise<Backend> {
  const { key: apiKey } = await createApiKey(service.database.db, 'rate-limit-test', [...SCOPES]);
  return backendFrom(apiKey);
}

function writesBucket(prefix: string, principal: string): string {
  return `${prefix}writes:p:${principal}`;
}

function createAccount(clients: Clients, ownerRef: string, headers?: Record<string, string>) {
  return clients.accounts.createAccount({ idempotencyKey: key('rl'), ownerRef, currency: 'USD' }, { headers });
}

async function accountsOwnedBy(ownerRef: string): Promise<number> {
  const [row] = await database.query<{ n: number }>('select count(*)::int as n from accounts where owner_ref = $1', [
    ownerRef,
  ]);
  return row!.n;
}

async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  const error = await call.then(
    () => {
      throw new Error('expected RESOURCE_EXHAUSTED, but the call went through');
    },
    (caught: unknown) => ConnectError.from(caught),
  );
  expect(Code[error.code]).toBe(Code[Code.ResourceExhausted]);
  return error;
}

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; result: PromiseSettledResult<T> }> {
  const started = performance.now();
  const [result] = await Promise.allSettled([work()]);
  return { ms: performance.now() - started, result: result! };
}

const pause = (ms: number) => new Promise((done) => setTimeout(done, ms));

describe('the token bucket script', () => {
  it('takes a token atomically, and expires an idle key when it would be full again', async () => {
    const prefix = freshPrefix();
    const buckets = new RedisTokenBuckets(redis);
    const policy = { name: 'writes', capacity: 10, refillPerSecond: 5 } as const;
    const bucket = `${prefix}a`;
    expect(await buckets.take(bucket, policy)).toEqual({ allowed: true, remaining: 9, retryAfterMs: 0, resetMs: 200 });
    const ttl = await redis.pttl(bucket);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(200);

    const burst = await Promise.all(Array.from({ length: 20 }, () => buckets.take(bucket, policy)));
    expect(burst.filter((decision) => decision.allowed).length).toBeGreaterThanOrEqual(9);
    expect(burst.filter((decision) => decision.allowed).length).toBeLessThanOrEqual(10);
    const refused = burst.find((decision) => !decision.allowed)!;
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(200);
    expect(await redis.pttl(bucket)).toBeLessThanOrEqual(2_000);
  });

  it('writes nothing for a refused request', async () => {
    const prefix = freshPrefix();
    const buckets = new RedisTokenBuckets(redis);
    const policy = { name: 'writes', capacity: 1, refillPerSecond: 0 } as const;
    const bucket = `${prefix}b`;
    await buckets.take(bucket, policy);
    const before = await redis.hgetall(bucket);
    const refused = await buckets.take(bucket, policy);
    expect(refused.allowed).toBe(false);
    expect(await redis.hgetall(bucket)).toEqual(before);
    // A bucket that never refills is kept for IDLE_FORGET_MS after its last allowed request.
    expect(refused.retryAfterMs).toBeGreaterThan(IDLE_FORGET_MS - 5_000);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(IDLE_FORGET_MS);
  });

  it('honours a capacity lowered since the bucket was written', async () => {
    const prefix = freshPrefix();
    const buckets = new RedisTokenBuckets(redis);
    const bucket = `${prefix}c`;
    await buckets.take(bucket, { name: 'reads', capacity: 100, refillPerSecond: 1 });
    expect((await buckets.take(bucket, { name: 'reads', capacity: 3, refillPerSecond: 1 })).remaining).toBe(2);
  });
});

describe('a shared bucket in Redis', () => {
  it('lets exactly N of 5×N concurrent writes through; refused ones write nothing', async () => {
    const N = 10;
    const prefix = freshPrefix();
    const service = await start(prefix, {
      RATE_LIMIT_WRITE_CAPACITY: String(N),
      RATE_LIMIT_WRITE_REFILL_PER_SECOND: '0',
    });
    const clients = clientsFor('grpc', service.url);
    const owner = `user:rl-${randomUUID()}`;

    const burst = await tally(Array.from({ length: 5 * N }, () => createAccount(clients, owner)));
    expect(burst).toEqual({ passed: N, refused: 4 * N });
    expect(await accountsOwnedBy(owner)).toBe(N);

    // No refill: the bucket stays empty.
    await pause(150);
    expect(await tally([createAccount(clients, owner)])).toEqual({ passed: 0, refused: 1 });
    expect(await accountsOwnedBy(owner)).toBe(N);
    expect(await redis.keys(`${prefix}*`)).toEqual([writesBucket(prefix, defaultBackendOf(service).principal)]);
  });

  it('lets exactly N through across two server instances sharing Redis', async () => {
    const N = 10;
    const prefix = freshPrefix();
    const limits = { RATE_LIMIT_WRITE_CAPACITY: String(N), RATE_LIMIT_WRITE_REFILL_PER_SECOND: '0' };
    const first = await start(prefix, limits);
    const second = await start(prefix, limits);
    // One principal calling both: the first instance's key, valid on the second too (they share the database).
    const backend = defaultBackendOf(first);
    const firstClients = clientsFor('grpc', first.url, backend.credentials);
    const secondClients = clientsFor('connect-json', second.url, backend.credentials);
    const owner = `user:rl-${randomUUID()}`;

    const burst = await tally(
      Array.from({ length: 5 * N }, (_, index) => createAccount(index % 2 ? firstClients : secondClients, owner)),
    );
    expect(burst).toEqual({ passed: N, refused: 4 * N });
    expect(await accountsOwnedBy(owner)).toBe(N);
    expect(await redis.keys(`${prefix}*`)).toEqual([writesBucket(prefix, backend.principal)]);
  });

  it('refills at the configured rate', async () => {
    const capacity = 4;
    const service = await start(freshPrefix(), {
      RATE_LIMIT_WRITE_CAPACITY: String(capacity),
      RATE_LIMIT_WRITE_REFILL_PER_SECOND: '20',
    });
    const clients = clientsFor('grpc', service.url);
    const owner = `user:rl-${randomUUID()}`;
    const burst = () => tally(Array.from({ length: 3 * capacity }, () => createAccount(clients, owner)));

    const first = await burst();
    // The burst itself takes a few milliseconds, in which a token may come back (one per 50 ms).
    expect(first.passed).toBeGreaterThanOrEqual(capacity);
    expect(first.passed).toBeLessThanOrEqual(capacity + 2);

    // 150 ms at 20/s is 3 tokens: some capacity is back, but never more than the bucket holds.
    await pause(150);
    const second = await burst();
    expect(second.passed).toBeGreaterThanOrEqual(3);
    expect(second.passed).toBeLessThanOrEqual(capacity + 2);
    expect(await accountsOwnedBy(owner)).toBe(first.passed + second.passed);
  });

  it('reloads the script when Redis has forgotten it (NOSCRIPT)', async () => {
    const prefix = freshPrefix();
    const service = await start(prefix, { RATE_LIMIT_WRITE_CAPACITY: '5', RATE_LIMIT_WRITE_REFILL_PER_SECOND: '0' });
    const clients = clientsFor('connect-json', service.url);
    const bucket = writesBucket(prefix, defaultBackendOf(service).principal);
    await createAccount(clients, 'user:rl');
    await redis.script('FLUSH');
    await createAccount(clients, 'user:rl');
    expect(await redis.hget(bucket, 'tokens')).toMatch(/^3(\.0+)?$/);
    const ttl = await redis.pttl(bucket);
    expect(ttl).toBeGreaterThan(0);
  });
});

describe('RESOURCE_EXHAUSTED with a retry hint', () => {
  // One write, then a token every 2 s: the second write is refused with Retry-After 2.
  const limits = {
    RATE_LIMIT_WRITE_CAPACITY: '1',
    RATE_LIMIT_WRITE_REFILL_PER_SECOND: '0.5',
    TRUSTED_PROXIES: '127.0.0.1',
    CORS_ORIGINS: 'https://wallet.example',
  };
  const POLICY = '"writes";q=1;w=2';

  it.each(PROTOCOLS)('over %s, through Connect clients', async (protocol) => {
    const service = await start(freshPrefix(), limits);
    const clients = clientsFor(protocol, service.url);
    const headers = { 'x-forwarded-for': '203.0.113.7' };

    let allowedHeader: Headers | undefined;
    await clients.accounts.createAccount(
      { idempotencyKey: key('rl'), ownerRef: 'user:rl', currency: 'USD' },
      { headers, onHeader: (header) => (allowedHeader = header) },
    );
    expect(allowedHeader?.get('ratelimit-policy')).toBe(POLICY);
    expect(allowedHeader?.get('ratelimit')).toBe('"writes";r=0;t=2');

    const error = await refusal(createAccount(clients, 'user:rl', headers));
    expect(error.rawMessage).toBe('rate limit exceeded for writes (retry after 2 s)');
    expect(error.metadata.get('retry-after')).toBe('2');
    expect(error.metadata.get('ratelimit-policy')).toBe(POLICY);
    expect(error.metadata.get('ratelimit')).toBe('"writes";r=0;t=2');
  });

  it('over Connect JSON on the wire: HTTP 429, a JSON error body and the headers, readable cross-origin', async () => {
    const service = await start(freshPrefix(), limits);
    const post = () =>
      fetch(`${service.url}${CREATE_ACCOUNT}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'connect-protocol-version': '1',
          origin: 'https://wallet.example',
          ...credentialHeaders(defaultCredentialsFor(service.url)),
        },
        body: JSON.stringify({ idempotencyKey: key('rl'), ownerRef: 'user:rl', currency: 'USD' }),
      });
    expect((await post()).status).toBe(200);
    const response = await post();
    expect(response.status).toBe(429);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(await response.json()).toEqual({
      code: 'resource_exhausted',
      message: 'rate limit exceeded for writes (retry after 2 s)',
    });
    expect(response.headers.get('retry-after')).toBe('2');
    expect(response.headers.get('ratelimit-policy')).toBe(POLICY);
    expect(response.headers.get('ratelimit')).toBe('"writes";r=0;t=2');
    expect(response.headers.get('access-control-allow-origin')).toBe('https://wallet.example');
    const exposed = response.headers.get('access-control-expose-headers')?.toLowerCase().split(/,\s*/);
    expect(exposed).toEqual(expect.arrayContaining(['retry-after', 'ratelimit', 'ratelimit-policy']));
  });

  it('over Connect streaming content types: an end-of-stream message with the error', async () => {
    const service = await start(freshPrefix(), limits);
    const post = () =>
      fetch(`${service.url}${CREATE_ACCOUNT}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/connect+json',
          'connect-protocol-version': '1',
          ...credentialHeaders(defaultCredentialsFor(service.url)),
        },
        body: new Uint8Array(5),
      });
    await (await post()).arrayBuffer();
    const response = await post();
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/connect+json');
    expect(response.headers.get('retry-after')).toBe('2');
    const bytes = new Uint8Array(await response.arrayBuffer());
    expect(bytes[0]).toBe(0b10); // end-of-stream flag
    const length = new DataView(bytes.buffer).getUint32(1);
    const endStream = JSON.parse(new TextDecoder().decode(bytes.subarray(5, 5 + length)));
    expect(endStream.error).toEqual({
      code: 'resource_exhausted',
      message: 'rate limit exceeded for writes (retry after 2 s)',
    });
    expect(endStream.metadata['retry-after']).toEqual(['2']);
  });

  it('over gRPC-Web on the wire: HTTP 200, trailers-only with grpc-status 8', async () => {
    const service = await start(freshPrefix(), limits);
    const post = () =>
      fetch(`${service.url}${CREATE_ACCOUNT}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/grpc-web+proto',
          'x-grpc-web': '1',
          ...credentialHeaders(defaultCredentialsFor(service.url)),
        },
        body: new Uint8Array(5),
      });
    await (await post()).arrayBuffer();
    const response = await post();
    expect(response.status).toBe(200);
    expect(response.headers.get('grpc-status')).toBe('8');
    expect(decodeURIComponent(response.headers.get('grpc-message')!)).toBe(
      'rate limit exceeded for writes (retry after 2 s)',
    );
    expect(response.headers.get('retry-after')).toBe('2');
    expect(response.headers.get('ratelimit')).toBe('"writes";r=0;t=2');
    expect((await response.arrayBuffer()).byteLength).toBe(0);
  });

  it('over gRPC on the wire: one HEADERS frame with END_STREAM (trailers-only), as grpc-js needs', async () => {
    const service = await start(freshPrefix(), limits);
    const session = http2.connect(service.url);
    try {
      const post = () =>
        new Promise<{ headers: http2.IncomingHttpHeaders; endStream: boolean }>((resolve, reject) => {
          const stream = session.request({
            ':method': 'POST',
            ':path': CREATE_ACCOUNT,
            'content-type': 'application/grpc',
            te: 'trailers',
            ...credentialHeaders(defaultCredentialsFor(service.url)),
          });
          let first: { headers: http2.IncomingHttpHeaders; endStream: boolean } | undefined;
          stream.on('response', (headers, flags) => {
            first = { headers, endStream: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0 };
          });
          stream.on('error', reject);
          stream.on('close', () => (first ? resolve(first) : reject(new Error('no response'))));
          stream.resume();
          stream.end(Buffer.alloc(5));
        });
      await post();
      const refused = await post();
      expect(refused.endStream).toBe(true);
      expect(refused.headers[':status']).toBe(200);
      expect(refused.headers['grpc-status']).toBe('8');
      expect(refused.headers['retry-after']).toBe('2');
      expect(refused.headers['ratelimit-policy']).toBe(POLICY);
    } finally {
      session.close();
    }
  });

  it('over gRPC to a @grpc/grpc-js client: status 8 and the hint in the metadata', async () => {
    const service = await start(freshPrefix(), limits);
    const definition = {
      CreateAccount: {
        path: CREATE_ACCOUNT,
        requestStream: false,
        responseStream: false,
        requestSerialize: (value: Uint8Array) => Buffer.from(value),
        requestDeserialize: (bytes: Buffer) => bytes,
        responseSerialize: (value: Buffer) => value,
        responseDeserialize: (bytes: Buffer) => bytes,
      },
    } satisfies grpc.ServiceDefinition;
    const Client = grpc.makeGenericClientConstructor(definition, 'payment.v1.AccountService');
    const client = new Client(new URL(service.url).host, grpc.credentials.createInsecure());
    const { apiKey } = defaultBackendOf(service);
    const call = () =>
      new Promise<grpc.ServiceError | undefined>((resolve) => {
        const metadata = new grpc.Metadata();
        metadata.set('x-api-key', apiKey);
        const request = toBinary(
          CreateAccountRequestSchema,
          create(CreateAccountRequestSchema, { idempotencyKey: key('rl'), ownerRef: 'user:rl', currency: 'USD' }),
        );
        const method = (client as unknown as Record<string, (...args: unknown[]) => unknown>).CreateAccount!;
        method.call(client, request, metadata, { deadline: Date.now() + 10_000 }, (error: unknown) =>
          resolve((error ?? undefined) as grpc.ServiceError | undefined),
        );
      });
    try {
      expect(await call()).toBeUndefined();
      const error = await call();
      expect(error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(error?.details).toBe('rate limit exceeded for writes (retry after 2 s)');
      expect(error?.metadata.get('retry-after')).toEqual(['2']);
      expect(error?.metadata.get('ratelimit')).toEqual(['"writes";r=0;t=2']);
    } finally {
      client.close();
    }
  });
});

describe('who shares a bucket', () => {
  const limits = { RATE_LIMIT_WRITE_CAPACITY: '2', RATE_LIMIT_WRITE_REFILL_PER_SECOND: '0' };

  it('gives each client behind a trusted proxy its own bucket, keyed by the right-most untrusted address', async () => {
    const prefix = freshPrefix();
    const service = await start(prefix, { ...limits, TRUSTED_PROXIES: '127.0.0.1,10.0.0.0/8' });
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
    expect((await redis.keys(`${prefix}*`)).sort()).toEqual([
      `${prefix}writes:ip:198.51.100.1`,
      `${prefix}writes:ip:198.51.100.2`,
      `${prefix}writes:ip:198.51.100.3`,
    ]);
  });

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', async () => {
    const prefix = freshPrefix();
    const service = await start(prefix, limits);
    const clients = clientsFor('connect-json', service.url, {});
    const spoofed = Array.from({ length: 6 }, (_, index) =>
      createAccount(clients, 'user:rl', { 'x-forwarded-for': `198.51.100.${index + 10}` }),
    );
    expect(await codeCounts(spoofed)).toEqual({ Unauthenticated: 2, ResourceExhausted: 4 });
    expect(await redis.keys(`${prefix}*`)).toEqual([`${prefix}writes:ip:127.0.0.1`]);
  });

  it('gives different principals different buckets, even from one address', async () => {
    const prefix = freshPrefix();
    const service = await start(prefix, limits);
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
    expect((await redis.keys(`${prefix}*`)).sort()).toEqual(
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
    const prefix = freshPrefix();
    const service = await start(prefix, { ...limits, TRUSTED_PROXIES: '127.0.0.1' });
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
    expect((await redis.keys(`${prefix}*`)).sort()).toEqual(
      [writesBucket(prefix, backend.principal), `${prefix}writes:ip:198.51.100.30`].sort(),
    );
  });

  it('keeps reads and writes in separate buckets', async () => {
    const service = await start(freshPrefix(), {
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
    const service = await start(freshPrefix(), {
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

describe('when Redis is in trouble', () => {
  const limits = {
    RATE_LIMIT_WRITE_CAPACITY: '3',
    RATE_LIMIT_WRITE_REFILL_PER_SECOND: '0',
    TRUSTED_PROXIES: '127.0.0.1',
  };

  it('keeps serving from the in-memory bucket, with the same policy, when Redis is unreachable', async () => {
    const started = performance.now();
    const service = await start(freshPrefix(), { ...limits, REDIS_URL: 'redis://127.0.0.1:1' });
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
    proxies.push(proxy);
    const prefix = freshPrefix();
    const config = { ...limits, REDIS_URL: proxy.url('redis') };
    const first = await start(prefix, config);
    const clients = clientsFor('grpc', first.url, {});
    // Each backend is a principal with a bucket of its own; every key is valid on every instance.
    const as = (backend: Backend) => createAccount(clients, 'user:rl', credentialHeaders(backend.credentials));

    const before = await newBackend(first);
    await as(before);
    expect(await redis.hget(writesBucket(prefix, before.principal), 'tokens')).toMatch(/^2(\.0+)?$/);

    await proxy.stop();
    const during = await newBackend(first);
    const outcomes: string[] = [];
    for (let index = 0; index < 5; index++) {
      const { ms, result } = await timed(() => as(during));
      expect(ms).toBeLessThan(1_000);
      outcomes.push(result.status === 'fulfilled' ? 'ok' : Code[ConnectError.from(result.reason).code]);
    }
    expect(outcomes).toEqual(['ok', 'ok', 'ok', 'ResourceExhausted', 'ResourceExhausted']);
    expect(await redis.exists(writesBucket(prefix, during.principal))).toBe(0);

    // Back: the limiter reconnects by itself; poll with fresh backends until one's bucket appears in Redis.
    await proxy.start();
    const deadline = performance.now() + 10_000;
    for (;;) {
      const probe = await newBackend(first);
      await as(probe).catch(() => {});
      if ((await redis.exists(writesBucket(prefix, probe.principal))) === 1) break;
      if (performance.now() > deadline) throw new Error('the limiter did not return to Redis within 10 s');
      await pause(50);
    }

    // Shared again: a second instance draws from the same bucket as the first.
    const second = await start(prefix, config);
    const secondClients = clientsFor('connect-json', second.url, {});
    const after = await newBackend(first);
    const onSecond = () => createAccount(secondClients, 'user:rl', credentialHeaders(after.credentials));
    const shared = await tally([as(after), as(after), onSecond(), onSecond()]);
    expect(shared).toEqual({ passed: 3, refused: 1 });
  });

  it('answers within the timeout scale when Redis hangs, and recovers when it answers again', async () => {
    const proxy = await startTcpProxy(6379);
    proxies.push(proxy);
    const prefix = freshPrefix();
    const service = await start(prefix, { ...limits, REDIS_URL: proxy.url('redis') });
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
      if ((await redis.exists(writesBucket(prefix, probe.principal))) === 1) break;
      if (performance.now() > deadline) throw new Error('the limiter did not return to Redis within 10 s');
      await pause(50);
    }
  });
});
