/** The principal of a request without credentials (public endpoints, or one about to be refused). */
export const ANONYMOUS_PRINCIPAL = 'anonymous';

/** Response header marking a response replayed from an earlier request with the same idempotency key. */
export const IDEMPOTENT_REPLAYED_HEADER = 'idempotent-replayed';
