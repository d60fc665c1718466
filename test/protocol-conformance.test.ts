/**
 * What real clients expect of each protocol (issue 12), checked with raw frames where a client library would
 * never send the bytes, and with @grpc/grpc-js and Connect clients where the client's own reading matters.
 */
import http2 from 'node:http2';
import https from 'node:https';
import { gzipSync } from 'node:zlib';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import {
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from '../gen/grpc/health/v1/health_pb.js';
import { AccountService } from '../gen/payment/v1/account_pb.js';
import { compressionDeflate } from '../src/server/compression.js';
import { clientsFor, withCredentials } from './support/clients.js';
import { openAccount } from './support/fixtures.js';
import { frame, grpcStatusOf, grpcWebFrames, h2Call } from './support/raw-calls.js';
import { createSelfSignedCert } from './support/self-signed-cert.js';
import { serverForFile, startTestServer } from './support/server.js';

const AUTHORIZE = '/payment.v1.PaymentService/AuthorizePayment';
const HEALTH_CHECK = '/grpc.health.v1.Health/Check';
const HEALTH_WATCH = '/grpc.health.v1.Health/Watch';
const INVALID_ARGUMENT = 3;
const UNIMPLEMENTED = 12;
const DEADLINE_MS = 10_000;
// A field-1 length-delimited tag with no length after it: undecodable as any message.
const TRUNCATED_PROTOBUF = Buffer.from([0x0a]);

const server = serverForFile();

const grpcHeaders = (extra: Record<string, string> = {}) => ({
  'content-type': 'application/grpc',
  te: 'trailers',
  'x-api-key': server.backendKey,
  ...extra,
});

async function grpcCall(path: string, body: Buffer, extra: Record<string, string> = {}) {
  return grpcStatusOf(await h2Call(server.url, path, grpcHeaders(extra), body));
}

async function grpcWebCall(path: string, body: Buffer, extra: Record<string, string> = {}) {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/grpc-web+proto', 'x-api-key': server.backendKey, ...extra },
    body,
  });
  const { trailer } = grpcWebFrames(Buffer.from(await response.arrayBuffer()));
  const source = trailer['grpc-status'] !== undefined ? trailer : Object.fromEntries(response.headers);
  return { code: Number(source['grpc-status']), message: decodeURIComponent(source['grpc-message'] ?? '') };
}

async function connectUnaryCall(path: string, body: Buffer, headers: Record<string, string>) {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'connect-protocol-version': '1', 'x-api-key': server.backendKey, ...headers },
    body,
  });
  return { status: response.status, error: (await response.json()) as { code: string; message: string } };
}

describe('undecodable input is INVALID_ARGUMENT on every protocol', () => {
  it.each([
    ['a truncated message', frame(TRUNCATED_PROTOBUF), {}],
    ['the compressed flag with no encoding', frame(TRUNCATED_PROTOBUF, 1), {}],
    ['the compressed flag with identity encoding', frame(TRUNCATED_PROTOBUF, 1), { 'grpc-encoding': 'identity' }],
    ['corrupt gzip', frame(Buffer.from([0x1f, 0x8b]), 1), { 'grpc-encoding': 'gzip' }],
    ['gzip of an undecodable message', frame(gzipSync(TRUNCATED_PROTOBUF), 1), { 'grpc-encoding': 'gzip' }],
    ['a frame header with no data after it', Buffer.from([0, 0, 0, 0, 1]), {}],
  ])('gRPC: %s', async (_what, body, headers) => {
    for (const path of [AUTHORIZE, HEALTH_WATCH]) {
      const status = await grpcCall(path, body, headers);
      expect({ path, code: status.code }).toEqual({ path, code: INVALID_ARGUMENT });
      expect(status.message).not.toMatch(/internal|\.ts\b|at /);
    }
  });

  it.each([
    ['a truncated message', frame(TRUNCATED_PROTOBUF), {}],
    ['the compressed flag with no encoding', frame(TRUNCATED_PROTOBUF, 1), {}],
    ['corrupt gzip', frame(Buffer.from([0x1f, 0x8b]), 1), { 'grpc-encoding': 'gzip' }],
    ['a frame header with no data after it', Buffer.from([0, 0, 0, 0, 1]), {}],
  ])('gRPC-Web: %s', async (_what, body, headers) => {
    for (const path of [AUTHORIZE, HEALTH_WATCH]) {
      expect({ path, code: (await grpcWebCall(path, body, headers)).code }).toEqual({ path, code: INVALID_ARGUMENT });
    }
  });

  it.each([
    ['a truncated message', TRUNCATED_PROTOBUF, {}],
    ['corrupt gzip', Buffer.from([0x1f, 0x8b]), { 'content-encoding': 'gzip' }],
  ])('Connect unary (application/proto): %s', async (_what, body, headers) => {
    const answer = await connectUnaryCall(AUTHORIZE, body, { 'content-type': 'application/proto', ...headers });
    expect(answer.status).toBe(400);
    expect(answer.error.code).toBe('invalid_argument');
  });

  it('Connect streaming (application/connect+proto): a truncated message', async () => {
    const response = await fetch(`${server.url}${HEALTH_WATCH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/connect+proto', 'connect-protocol-version': '1' },
      body: frame(TRUNCATED_PROTOBUF),
    });
    const body = Buffer.from(await response.arrayBuffer());
    // The end-of-stream frame (flag 0x02) carries the error as JSON.
    const endStream = JSON.parse(body.subarray(5).toString('utf8')) as { error?: { code: string } };
    expect(endStream.error?.code).toBe('invalid_argument');
  });
});

describe('frame flags other than "compressed" are INVALID_ARGUMENT on every protocol', () => {
  // 0x02 is Connect's end of stream, 0x80 gRPC-Web's trailer: both only ever sent by a server. 0x03 was INTERNAL
  // ("received compressed envelope…", Connect-ES's own text), 0x80 was a message on gRPC and no message on
  // gRPC-Web, 0x04 and 0x40 were ignored.
  const FLAGS = [0x02, 0x03, 0x04, 0x40, 0x80, 0x81, 0xff];
  const flagged = (flags: number) => frame(Buffer.alloc(0), flags);
  // The default headers carry a valid key; the second one overrides it with a wrong one.
  const KEYS: Record<string, string>[] = [{}, { 'x-api-key': 'not-a-key' }];

  it.each(FLAGS)('gRPC and gRPC-Web, unary and streaming, with a valid or a wrong key: flags %d', async (flags) => {
    for (const path of [AUTHORIZE, HEALTH_WATCH]) {
      for (const key of KEYS) {
        const answers = {
          grpc: await grpcCall(path, flagged(flags), key),
          web: await grpcWebCall(path, flagged(flags), key),
        };
        for (const [protocol, status] of Object.entries(answers)) {
          expect({ protocol, path, code: status.code }).toEqual({ protocol, path, code: INVALID_ARGUMENT });
          expect(status.message).toMatch(/frame flags 0x[0-9a-f]{2} are not valid in a request/);
        }
      }
    }
  });

  it.each(FLAGS)('Connect streaming: flags %d', async (flags) => {
    const response = await fetch(`${server.url}${HEALTH_WATCH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/connect+proto', 'connect-protocol-version': '1' },
      body: flagged(flags),
    });
    const body = Buffer.from(await response.arrayBuffer());
    const endStream = JSON.parse(body.subarray(5).toString('utf8')) as { error?: { code: string; message: string } };
    expect(endStream.error?.code).toBe('invalid_argument');
    expect(endStream.error?.message).toMatch(/frame flags/);
  });
});

describe("each protocol's deadline header is read only for that protocol", () => {
  const healthRequest = frame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: '' })));

  it("gRPC ignores Connect's connect-timeout-ms, and still refuses a bad grpc-timeout", async () => {
    expect((await grpcCall(HEALTH_CHECK, healthRequest, { 'connect-timeout-ms': 'abc' })).code).toBe(0);
    expect((await grpcCall(HEALTH_CHECK, healthRequest, { 'grpc-timeout': 'abc' })).code).toBe(INVALID_ARGUMENT);
  });

  it("Connect ignores gRPC's grpc-timeout, and still refuses a bad connect-timeout-ms", async () => {
    const check = (headers: Record<string, string>) =>
      fetch(`${server.url}${HEALTH_CHECK}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'connect-protocol-version': '1', ...headers },
        body: '{}',
      });
    expect((await check({ 'grpc-timeout': 'abc' })).status).toBe(200);
    expect((await check({ 'connect-timeout-ms': 'abc' })).status).toBe(400);
  });
});

describe("what Fastify's router or Connect refused bare is answered in the caller's protocol", () => {
  const BAD_URL = '/payment.v1.PaymentService/Get%zz';

  it('a path with a malformed percent-escape: INVALID_ARGUMENT on gRPC, gRPC-Web and Connect', async () => {
    expect((await grpcCall(BAD_URL, frame(Buffer.alloc(0)))).code).toBe(INVALID_ARGUMENT);
    expect((await grpcWebCall(BAD_URL, frame(Buffer.alloc(0)))).code).toBe(INVALID_ARGUMENT);
    const connect = await connectUnaryCall(BAD_URL, Buffer.from('{}'), { 'content-type': 'application/json' });
    expect(connect).toEqual({ status: 400, error: expect.objectContaining({ code: 'invalid_argument' }) });
  });

  it('GET (no method is marked side-effect free): UNIMPLEMENTED with Allow: POST, never a bare 405', async () => {
    // node:http2 ends a GET's stream with its headers, so this one is written out (h2Call sends a body).
    const session = http2.connect(server.url);
    try {
      const stream = session.request(Object.assign(grpcHeaders(), { ':method': 'GET', ':path': HEALTH_CHECK }));
      const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        stream.once('response', resolve);
        stream.once('error', reject);
      });
      expect(headers['grpc-status']).toBe(String(UNIMPLEMENTED));
    } finally {
      session.close();
    }
    const query = '?connect=v1&encoding=json&message=%7B%7D';
    const connectGet = await fetch(`${server.url}/payment.v1.PaymentService/GetAccountBalance${query}`, {
      headers: { 'x-api-key': server.backendKey },
    });
    expect(connectGet.status).toBe(405);
    expect(connectGet.headers.get('allow')).toBe('POST');
    expect(((await connectGet.json()) as { code: string }).code).toBe('unimplemented');
  });
});

describe('compression', () => {
  it('serves a grpc-js channel that compresses with deflate, and advertises the encodings in headers', async () => {
    const channelOptions = { 'grpc.default_compression_algorithm': 1 };
    const client = new grpc.Client(new URL(server.url).host, grpc.credentials.createInsecure(), channelOptions);
    try {
      const answer = await new Promise<{ status: number; headers: grpc.Metadata }>((resolve, reject) => {
        let headers = new grpc.Metadata();
        const call = client.makeUnaryRequest(
          HEALTH_CHECK,
          (value: Uint8Array) => Buffer.from(value),
          (bytes: Buffer) => fromBinary(HealthCheckResponseSchema, bytes),
          toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: '' })),
          new grpc.Metadata(),
          { deadline: Date.now() + DEADLINE_MS },
          (error, response) => (error ? reject(error) : resolve({ status: response!.status, headers })),
        );
        call.on('metadata', (metadata) => {
          headers = metadata;
        });
      });
      expect(HealthCheckResponse_ServingStatus[answer.status]).toBe('SERVING');
      expect(answer.headers.get('x-request-id')).toHaveLength(1);
    } finally {
      client.close();
    }
  });

  it('advertises grpc-accept-encoding in the response headers, where grpc-js reads it', async () => {
    const request = frame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: '' })));
    const answer = await h2Call(server.url, HEALTH_CHECK, grpcHeaders(), request);
    expect(grpcStatusOf(answer).code).toBe(0);
    expect(answer.headers['grpc-accept-encoding']?.split(',')).toEqual(
      expect.arrayContaining(['gzip', 'br', 'deflate']),
    );
  });

  it('serves a Connect client that sends deflate', async () => {
    const transport = createConnectTransport({
      baseUrl: server.url,
      httpVersion: '1.1',
      sendCompression: compressionDeflate,
      acceptCompression: [compressionDeflate],
      compressMinBytes: 0,
      interceptors: [withCredentials({ apiKey: server.backendKey })],
    });
    const accounts = createClient(AccountService, transport);
    const accountId = await openAccount(clientsFor('connect-json', server.url));
    const answer = await accounts.getAccount({ accountId });
    expect(answer.account?.id).toBe(accountId);
  });
});

describe('gRPC-Web text mode', () => {
  it('serves application/grpc-web-text like binary gRPC-Web, base64 both ways', async () => {
    const request = frame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: '' })));
    const response = await fetch(`${server.url}${HEALTH_CHECK}`, {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web-text', accept: 'application/grpc-web-text' },
      body: request.toString('base64'),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/grpc-web-text/);
    const text = await response.text();
    expect(text).toMatch(/^[A-Za-z0-9+/=]+$/);
    // Each chunk is padded on its own (as grpc-web proxies do): decode per 4-character quantum.
    const bytes = Buffer.concat((text.match(/.{1,4}/g) ?? []).map((quantum) => Buffer.from(quantum, 'base64')));
    const { messages, trailer } = grpcWebFrames(bytes);
    expect(trailer['grpc-status']).toBe('0');
    expect(messages).toHaveLength(1);
    const status = fromBinary(HealthCheckResponseSchema, messages[0]!).status;
    expect(HealthCheckResponse_ServingStatus[status]).toBe('SERVING');
  });

  it('refuses a text body that is not base64 with INVALID_ARGUMENT', async () => {
    const response = await fetch(`${server.url}${HEALTH_CHECK}`, {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web-text' },
      body: '!!!!',
    });
    const text = await response.text();
    const bytes = Buffer.concat((text.match(/.{1,4}/g) ?? []).map((quantum) => Buffer.from(quantum, 'base64')));
    expect(grpcWebFrames(bytes).trailer['grpc-status']).toBe(String(INVALID_ARGUMENT));
  });
});

describe('answers in the caller protocol', () => {
  it.each(['/payment.v1.PaymentService/NoSuchMethod', '/no.such.v1.Service/Method'])(
    'an unknown method %s is UNIMPLEMENTED for grpc-js, gRPC-Web and Connect',
    async (path) => {
      const client = new grpc.Client(new URL(server.url).host, grpc.credentials.createInsecure());
      try {
        const code = await new Promise<number>((resolve) => {
          client.makeUnaryRequest(
            path,
            (value: Buffer) => value,
            (bytes: Buffer) => bytes,
            Buffer.alloc(0),
            new grpc.Metadata(),
            { deadline: Date.now() + DEADLINE_MS },
            (error) => resolve(error?.code ?? 0),
          );
        });
        expect(code).toBe(UNIMPLEMENTED);
      } finally {
        client.close();
      }
      expect((await grpcWebCall(path, frame(Buffer.alloc(0)))).code).toBe(UNIMPLEMENTED);
      const connect = await connectUnaryCall(path, Buffer.from('{}'), { 'content-type': 'application/json' });
      expect(connect.status).toBe(404);
      expect(connect.error.code).toBe('unimplemented');
    },
  );

  it.each([
    ['no content type', {}],
    ['a plain-text content type', { 'content-type': 'text/plain' }],
    ['a content type no protocol uses', { 'content-type': 'text/plain' }],
  ])('a request with %s gets a Connect error body (HTTP 415), not Fastify JSON', async (_what, headers) => {
    const response = await fetch(`${server.url}${AUTHORIZE}`, {
      method: 'POST',
      headers: { 'x-api-key': server.backendKey, ...headers },
      // Bytes, not a string: fetch would add a text/plain content type to a string body.
      body: Buffer.from('hello'),
    });
    expect(response.status).toBe(415);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body.code).toBe('invalid_argument');
    expect(body.message).toMatch(/content type/);
    expect(body).not.toHaveProperty('statusCode');
  });

  it('gRPC-Web trailers carry grpc-message percent-encoded as the gRPC spec says (printable ASCII as is)', async () => {
    const response = await fetch(`${server.url}${AUTHORIZE}`, {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web+proto' },
      body: frame(Buffer.alloc(0)),
    });
    const { trailer } = grpcWebFrames(Buffer.from(await response.arrayBuffer()));
    expect(trailer['grpc-status']).toBe('16');
    expect(trailer['grpc-message']).toBe(
      'missing credentials: send "Authorization: Bearer <token>" or "x-api-key: <key>"',
    );
  });

  it('grpc-js shows error messages as written (no percent-encoding left in them)', async () => {
    const client = new grpc.Client(new URL(server.url).host, grpc.credentials.createInsecure());
    try {
      const details = await new Promise<string>((resolve) => {
        client.makeUnaryRequest(
          AUTHORIZE,
          (value: Buffer) => value,
          (bytes: Buffer) => bytes,
          Buffer.alloc(0),
          new grpc.Metadata(),
          { deadline: Date.now() + DEADLINE_MS },
          (error) => resolve(error?.details ?? ''),
        );
      });
      expect(details).toBe('missing credentials: send "Authorization: Bearer <token>" or "x-api-key: <key>"');
    } finally {
      client.close();
    }
  });
});

describe('HTTP/2 header blocks over MAX_HEADER_BYTES', () => {
  const MAX_HEADER_BYTES = 16 * 1024;
  const healthRequest = () =>
    frame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: '' })));

  it('are refused over h2c: gRPC gets RESOURCE_EXHAUSTED, others 431; a block under the limit is served', async () => {
    const big = { 'x-padding': 'a'.repeat(20_000) };
    const grpcAnswer = await h2Call(server.url, HEALTH_CHECK, grpcHeaders(big), healthRequest());
    expect(grpcAnswer.headers['grpc-status']).toBe('8');
    const connectAnswer = await h2Call(
      server.url,
      HEALTH_CHECK,
      { 'content-type': 'application/proto', ...big },
      healthRequest(),
    );
    expect(connectAnswer.status).toBe(431);
    const small = { 'x-padding': 'a'.repeat(MAX_HEADER_BYTES / 2) };
    expect(grpcStatusOf(await h2Call(server.url, HEALTH_CHECK, grpcHeaders(small), healthRequest())).code).toBe(0);
  });

  it('are refused over TLS (ALPN h2) too, where undecodable input and unknown methods answer as over h2c', async () => {
    const cert = await createSelfSignedCert();
    const secure = await startTestServer({
      TLS_CERT_FILE: cert.certFile,
      TLS_KEY_FILE: cert.keyFile,
      MAX_HEADER_BYTES: '4096',
    });
    try {
      const grpcOverTls = { 'content-type': 'application/grpc', te: 'trailers' };
      const tlsCall = (path: string, headers: Record<string, string>, body: Buffer) =>
        h2Call(secure.url, path, headers, body, { ca: cert.cert });
      const big = { ...grpcOverTls, 'x-padding': 'a'.repeat(40_000) };
      expect((await tlsCall(HEALTH_CHECK, big, healthRequest())).headers['grpc-status']).toBe('8');
      // HTTP/1.1 over TLS (the same server's fallback) keeps the configured limit too.
      const http1Status = (padding: number) =>
        new Promise<number>((resolve, reject) => {
          const request = https.get(`${secure.url}/healthz`, {
            ca: cert.cert,
            headers: { 'x-padding': 'a'.repeat(padding) },
          });
          request.on('response', (response) => {
            response.resume();
            resolve(response.statusCode ?? 0);
          });
          request.on('error', reject);
        });
      expect(await http1Status(8_000)).toBe(431);
      expect(await http1Status(1_000)).toBe(200);
      expect(grpcStatusOf(await tlsCall(HEALTH_WATCH, grpcOverTls, frame(TRUNCATED_PROTOBUF))).code).toBe(
        INVALID_ARGUMENT,
      );
      expect(grpcStatusOf(await tlsCall('/no.such.v1.Service/Method', grpcOverTls, frame(Buffer.alloc(0)))).code).toBe(
        UNIMPLEMENTED,
      );
    } finally {
      await secure.stop();
    }
  });
});
