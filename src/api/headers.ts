/** Response header marking a response replayed from an earlier request with the same idempotency key. */
export const IDEMPOTENT_REPLAYED_HEADER = 'idempotent-replayed';
