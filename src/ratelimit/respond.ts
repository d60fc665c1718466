/**
 * The answer to a refused request: RESOURCE_EXHAUSTED in the protocol the request came in (see
 * src/api/early-answer.ts), with the retry hint as HTTP headers (and so as gRPC response metadata).
 *
 * Headers follow draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy: "writes";q=20;w=2` (q: the bucket's
 * capacity, w: seconds to refill it from empty) and `RateLimit: "writes";r=0;t=1` (r: requests left now;
 * t: seconds until a request is allowed when r=0, else until the bucket is full), plus `Retry-After`.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { answerEarly } from '../api/early-answer.js';
import type { Decision } from './memory-buckets.js';
import type { BucketPolicy } from './policy.js';

/** Response headers browsers must be allowed to read (CORS exposed headers). */
export const RATE_LIMIT_RESPONSE_HEADERS = ['retry-after', 'ratelimit', 'ratelimit-policy'] as const;

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
  // Plain words: every client shows it as written (grpc-message is spec-encoded, see early-answer.ts).
  const error = new ConnectError(
    `rate limit exceeded for ${policy.name} (retry after ${retryAfter} s)`,
    Code.ResourceExhausted,
    metadata,
  );
  return answerEarly(request, reply, error);
}
