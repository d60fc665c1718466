/**
 * Which bucket a request draws from. Every RPC is `/<package>.<Service>/<Method>`; the ones that move money
 * or create state are marked `write` in src/contract.ts (the one table to extend when an RPC is added), every
 * other route is a read. Health checks, reflection and CORS preflights are never limited.
 */
import type { RateLimitConfig } from '../config.js';
import { PUBLIC_SERVICE_DESCRIPTORS, RPCS } from '../contract.js';

export type PolicyName = 'writes' | 'reads';

export interface BucketPolicy {
  name: PolicyName;
  /** Burst: the most requests a client can make at once after being idle. */
  capacity: number;
  /** Tokens added per second (may be fractional; 0 = the bucket never refills, see IDLE_FORGET_MS). */
  refillPerSecond: number;
}

/** Money-moving and state-creating RPCs (`write` in src/contract.ts); any other route is a read. */
export const WRITE_PROCEDURES: ReadonlySet<string> = new Set(
  Object.entries(RPCS).flatMap(([procedure, rule]) => (!rule.public && rule.write ? [`/${procedure}`] : [])),
);

/** Liveness/readiness, metrics scrapes and the gRPC infrastructure services: probes and tooling must never be throttled. */
const EXEMPT_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);
const EXEMPT_PREFIXES = PUBLIC_SERVICE_DESCRIPTORS.map((service) => `/${service.typeName}/`);

/**
 * A bucket that never refills (refill 0) is forgotten after this long without an allowed request, so that
 * keys do not live forever; it is a testing and emergency setting, not a production one.
 */
export const IDLE_FORGET_MS = 60 * 60 * 1000;

export interface Policies {
  writes: BucketPolicy;
  reads: BucketPolicy;
}

export function policiesFrom(config: RateLimitConfig): Policies {
  return {
    writes: { name: 'writes', ...config.writes },
    reads: { name: 'reads', ...config.reads },
  };
}

/**
 * The policy for a request, or undefined when it is exempt. `path` is the matched route's path when Fastify
 * found one (so percent-encoded spellings of a write cannot pass as reads), otherwise the request path.
 */
export function policyFor(method: string, path: string, policies: Policies): BucketPolicy | undefined {
  if (method === 'OPTIONS') return undefined;
  if (EXEMPT_PATHS.has(path)) return undefined;
  for (const prefix of EXEMPT_PREFIXES) if (path.startsWith(prefix)) return undefined;
  return WRITE_PROCEDURES.has(path) ? policies.writes : policies.reads;
}
