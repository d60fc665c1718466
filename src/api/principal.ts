import { createContextKey } from '@connectrpc/connect';

/**
 * Who is calling. Idempotency keys are scoped by it. Until authentication exists every caller is the same
 * anonymous principal; the authentication interceptor will set it per request.
 */
export const ANONYMOUS_PRINCIPAL = 'anonymous';
export const principalKey = createContextKey<string>(ANONYMOUS_PRINCIPAL, { description: 'calling principal' });

/** Response header marking a response replayed from an earlier request with the same idempotency key. */
export const IDEMPOTENT_REPLAYED_HEADER = 'idempotent-replayed';
