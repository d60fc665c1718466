/**
 * The answer to a refused request: RESOURCE_EXHAUSTED in the protocol the request came in, encoded with
 * Connect's own protocol helpers, with the retry hint as HTTP headers (and so as gRPC response metadata):
 *
 * - gRPC (application/grpc*) over HTTP/2: a trailers-only response, one HEADERS frame with END_STREAM holding
 *   :status 200, grpc-status 8, grpc-message and the hint. This is what grpc-go sends for an early error and
 *   what both @grpc/grpc-js and Connect's clients read as the call's status (grpc-js needs the END_STREAM
 *   flag on that frame, which Node's compatibility response never sets for an empty body, hence the raw
 *   stream).
 * - gRPC-Web (application/grpc-web*): HTTP 200 with the status in the headers and no body (trailers-only).
 * - Connect streaming (application/connect+json|proto): HTTP 200 and an end-of-stream message with the error.
 * - Connect unary, Connect GET and anything else: HTTP 429 with the JSON error body.
 *
 * Headers follow draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy: "writes";q=20;w=2` (q: the bucket's
 * capacity, w: seconds to refill it from empty) and `RateLimit: "writes";r=0;t=1` (r: requests left now;
 * t: seconds until a request is allowed when r=0, else until the bucket is full), plus `Retry-After`.
 */
import type { Http2ServerResponse } from 'node:http2';
import { Code, ConnectError } from '@connectrpc/connect';
import { encodeEnvelope } from '@connectrpc/connect/protocol';
import {
  codeToHttpStatus,
  createEndStreamSerialization,
  endStreamFlag,
  errorToJsonBytes,
} from '@connectrpc/connect/protocol-connect';
import { setTrailerStatus } from '@connectrpc/connect/protocol-grpc';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Decision } from './memory-buckets.js';
import type { BucketPolicy } from './policy.js';

/** Response headers browsers must be allowed to read (CORS exposed headers). */
export const RATE_LIMIT_RESPONSE_HEADERS = ['retry-after', 'ratelimit', 'ratelimit-policy'] as const;

const endStreamSerialization = createEndStreamSerialization({});
const policyHeaders = new WeakMap<BucketPolicy, string>();

/** `"writes";q=20;w=2`; w is left out for a bucket that never refills. */
export function rateLimitPolicyHeader(policy: BucketPolicy): string {
  let value = policyHeaders.get(policy);
  if (value === undefined) {
    value = `"${policy.name}";q=${policy.capacity}`;
    if (policy.refillPerSecond > 0) value += `;w=${Math.max(1, Math.ceil(policy.capacity / policy.refillPerSecond))}`;
    policyHeaders.set(policy, value);
  }
  return value;
}

export function retryAfterSeconds(decision: Decision): number {
  return Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
}

export function rateLimitHeader(policy: BucketPolicy, decision: Decision): string {
  const seconds = decision.allowed ? Math.max(0, Math.ceil(decision.resetMs / 1000)) : retryAfterSeconds(decision);
  return `"${policy.name}";r=${decision.remaining};t=${seconds}`;
}

type WireProtocol = 'grpc' | 'grpc-web' | 'connect-stream' | 'connect-unary';

function protocolOf(contentType: string): WireProtocol {
  if (contentType.startsWith('application/grpc-web')) return 'grpc-web';
  if (contentType.startsWith('application/grpc')) return 'grpc';
  if (contentType.startsWith('application/connect+')) return 'connect-stream';
  return 'connect-unary';
}

/** Answers the request with RESOURCE_EXHAUSTED and ends it; nothing after the hook runs. */
export function refuse(
  request: FastifyRequest,
  reply: FastifyReply,
  policy: BucketPolicy,
  decision: Decision,
): FastifyReply {
  const retryAfter = retryAfterSeconds(decision);
  const metadata = new Headers({
    'retry-after': String(retryAfter),
    'ratelimit-policy': rateLimitPolicyHeader(policy),
    ratelimit: rateLimitHeader(policy, decision),
  });
  // Only letters, digits, spaces and parentheses: Connect percent-encodes grpc-message with
  // encodeURIComponent, and grpc-js decodes it with decodeURI, which would leave e.g. ";" as "%3B".
  const error = new ConnectError(
    `rate limit exceeded for ${policy.name} (retry after ${retryAfter} s)`,
    Code.ResourceExhausted,
    metadata,
  );
  const contentType = (request.headers['content-type'] ?? '').toLowerCase();

  switch (protocolOf(contentType)) {
    case 'grpc': {
      const status = headersObject(setTrailerStatus(new Headers(), error));
      const raw = reply.raw as unknown as Partial<Http2ServerResponse>;
      if (raw.stream !== undefined) {
        // Trailers-only: the CORS and request-id headers Fastify holds are sent along.
        reply.hijack();
        const stream = raw.stream;
        if (!stream.destroyed && !stream.headersSent) {
          stream.respond(
            {
              ...headersObject(reply.getHeaders()),
              ':status': 200,
              'content-type': contentType,
              'x-request-id': request.id,
              ...status,
            },
            { endStream: true },
          );
        }
        // The request body is never read; drain it so the stream can close.
        request.raw.resume();
        return reply;
      }
      // gRPC needs HTTP/2; over HTTP/1.1 a headers-only answer is the best there is.
      return reply.code(200).header('content-type', contentType).headers(status).send();
    }
    case 'grpc-web':
      return reply
        .code(200)
        .header('content-type', contentType)
        .headers(headersObject(setTrailerStatus(new Headers(), error)))
        .send();
    case 'connect-stream': {
      const endStream = endStreamSerialization.serialize({ metadata: new Headers(), error });
      return reply
        .code(200)
        .header('content-type', contentType)
        .headers(headersObject(metadata))
        .send(Buffer.from(encodeEnvelope(endStreamFlag, endStream)));
    }
    case 'connect-unary':
      return reply
        .code(codeToHttpStatus(Code.ResourceExhausted))
        .header('content-type', 'application/json')
        .headers(headersObject(metadata))
        .send(Buffer.from(errorToJsonBytes(error, {})));
  }
}

function headersObject(headers: Headers | Record<string, unknown>): Record<string, string> {
  const result: Record<string, string> = {};
  if (headers instanceof Headers) {
    headers.forEach((value, name) => {
      result[name] = value;
    });
    return result;
  }
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    result[name] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return result;
}
