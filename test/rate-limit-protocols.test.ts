/**
 * RESOURCE_EXHAUSTED with a retry hint, over every protocol: through Connect clients, on the wire (Connect
 * JSON, Connect streaming, gRPC-Web, gRPC) and to a @grpc/grpc-js client. Helpers and setup:
 * ./support/rate-limit.ts; every server in this file shares one test database, each test its own Redis prefix.
 */
import http2 from 'node:http2';
import { create, toBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { CreateAccountRequestSchema } from '../gen/payment/v1/account_pb.js';
import { clientsFor, PROTOCOLS } from './support/clients.js';
import { credentialHeaders, defaultCredentialsFor } from './support/credentials.js';
import { key } from './support/fixtures.js';
import { CREATE_ACCOUNT, createAccount, defaultBackendOf, RateLimitHarness, refusal } from './support/rate-limit.js';

const harness = RateLimitHarness.forFile();

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
    const service = await harness.start(harness.freshPrefix(), limits);
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
    const service = await harness.start(harness.freshPrefix(), limits);
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
    const service = await harness.start(harness.freshPrefix(), limits);
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
    const service = await harness.start(harness.freshPrefix(), limits);
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
    const service = await harness.start(harness.freshPrefix(), limits);
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
    const service = await harness.start(harness.freshPrefix(), limits);
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
