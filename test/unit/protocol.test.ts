/** Pure pieces of protocol handling: grpc-message encoding, gRPC-Web text, body checks, failure classes. */
import { deflateSync, gzipSync } from 'node:zlib';
import { create, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { HealthCheckRequestSchema } from '../../gen/grpc/health/v1/health_pb.js';
import { encodeGrpcMessage, respecGrpcMessage } from '../../src/api/early-answer.js';
import { isConnectionFailure } from '../../src/db/errors.js';
import { ACCEPTED_COMPRESSIONS } from '../../src/server/compression.js';
import { decodeTextBody, encodeTextBody } from '../../src/server/grpc-web-text.js';
import { type BodyCheck, checkedBody } from '../../src/server/request-checks.js';

async function collect(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function* chunksOf(...chunks: (Buffer | string)[]): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
}

function frame(data: Uint8Array, flags = 0): Buffer {
  const header = Buffer.alloc(5);
  header[0] = flags;
  header.writeUInt32BE(data.byteLength, 1);
  return Buffer.concat([header, data]);
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'OK',
    (error: unknown) => Code[ConnectError.from(error).code],
  );
}

describe('grpc-message encoding', () => {
  it('leaves printable ASCII as is and percent-encodes "%" and everything else as UTF-8', () => {
    expect(encodeGrpcMessage('missing credentials: send "Authorization: Bearer <token>"')).toBe(
      'missing credentials: send "Authorization: Bearer <token>"',
    );
    expect(encodeGrpcMessage('100% sure\nnaïve €')).toBe('100%25 sure%0Ana%C3%AFve %E2%82%AC');
    expect(decodeURIComponent(encodeGrpcMessage('a;b/c?d=é'))).toBe('a;b/c?d=é');
  });

  it('re-encodes what Connect wrote with encodeURIComponent', () => {
    const headers = new Headers({ 'grpc-message': encodeURIComponent('a: b; c') });
    expect(respecGrpcMessage(headers).get('grpc-message')).toBe('a: b; c');
  });
});

describe('gRPC-Web text', () => {
  it('decodes base64 split anywhere and segments padded on their own', async () => {
    const one = Buffer.from('hello').toString('base64'); // aGVsbG8=
    const two = Buffer.from('world!').toString('base64');
    const text = `${one}${two}`;
    expect(
      (await collect(decodeTextBody(chunksOf(text.slice(0, 3), text.slice(3, 9), text.slice(9))))).toString(),
    ).toBe('helloworld!');
  });

  it('refuses a body that is not base64 or ends inside a quantum', async () => {
    expect(await codeOf(collect(decodeTextBody(chunksOf('!!!!'))))).toBe('InvalidArgument');
    expect(await codeOf(collect(decodeTextBody(chunksOf('aGV'))))).toBe('InvalidArgument');
  });

  it('encodes each chunk on its own', async () => {
    expect((await collect(encodeTextBody(chunksOf(Buffer.from('ab'), Buffer.from('c'))))).toString()).toBe('YWI=Yw==');
  });
});

describe('request body checks', () => {
  const message = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: 'x' }));
  const check = (overrides: Partial<BodyCheck> = {}): BodyCheck => ({
    input: HealthCheckRequestSchema,
    singleMessage: false,
    binary: true,
    enveloped: true,
    encoding: null,
    accepted: ACCEPTED_COMPRESSIONS,
    readMaxBytes: 1024,
    ...overrides,
  });

  it('passes valid frames through byte for byte, even split across chunks', async () => {
    const body = Buffer.concat([frame(message), frame(gzipSync(message), 1)]);
    const checked = checkedBody(
      chunksOf(body.subarray(0, 3), body.subarray(3, 9), body.subarray(9)),
      check({ encoding: 'gzip' }),
    );
    expect((await collect(checked)).equals(body)).toBe(true);
    const deflated = frame(deflateSync(message), 1);
    expect((await collect(checkedBody(chunksOf(deflated), check({ encoding: 'deflate' })))).equals(deflated)).toBe(
      true,
    );
  });

  it.each([
    ['a truncated message', frame(Buffer.from([0x0a])), null],
    ['a frame cut short', frame(message).subarray(0, 5), null],
    ['the compressed flag with no encoding', frame(message, 1), null],
    ['the compressed flag with identity', frame(message, 1), 'identity'],
    ['corrupt gzip', frame(Buffer.from([0x1f, 0x8b]), 1), 'gzip'],
  ])('refuses %s with INVALID_ARGUMENT', async (_what, body, encoding) => {
    expect(await codeOf(collect(checkedBody(chunksOf(body), check({ encoding }))))).toBe('InvalidArgument');
  });

  it('refuses a frame announcing more than the read limit with RESOURCE_EXHAUSTED', async () => {
    const header = Buffer.from([0, 0, 0, 0x10, 0]);
    expect(await codeOf(collect(checkedBody(chunksOf(header), check())))).toBe('ResourceExhausted');
  });

  it('refuses no message, or more than one, for a method that takes exactly one', async () => {
    const single = check({ singleMessage: true });
    expect(await codeOf(collect(checkedBody(chunksOf(frame(message)), single)))).toBe('OK');
    expect(await codeOf(collect(checkedBody(chunksOf(Buffer.alloc(0)), single)))).toBe('InvalidArgument');
    const two = Buffer.concat([frame(message), frame(message)]);
    expect(await codeOf(collect(checkedBody(chunksOf(two), single)))).toBe('InvalidArgument');
  });

  it('checks a bare Connect unary message, compressed or not', async () => {
    const unary = check({ enveloped: false });
    expect(await codeOf(collect(checkedBody(chunksOf(Buffer.from(message)), unary)))).toBe('OK');
    expect(await codeOf(collect(checkedBody(chunksOf(Buffer.from([0x0a])), unary)))).toBe('InvalidArgument');
    const gzip = check({ enveloped: false, encoding: 'gzip' });
    expect(await codeOf(collect(checkedBody(chunksOf(Buffer.from([0x1f, 0x8b])), gzip)))).toBe('InvalidArgument');
  });
});

describe('isConnectionFailure', () => {
  it('recognises an unreachable or vanished database through causes', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    expect(isConnectionFailure(new Error('Failed query: select 1', { cause: refused }))).toBe(true);
    expect(isConnectionFailure(Object.assign(new Error('terminating connection'), { code: '57P01' }))).toBe(true);
    expect(isConnectionFailure(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isConnectionFailure(Object.assign(new AggregateError([refused]), { code: undefined }))).toBe(true);
  });

  it('does not take a bad query or a constraint violation for an outage', () => {
    expect(isConnectionFailure(Object.assign(new Error('syntax error'), { code: '42601' }))).toBe(false);
    expect(isConnectionFailure(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBe(false);
    expect(isConnectionFailure(new Error('something else'))).toBe(false);
  });
});
