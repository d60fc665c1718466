/**
 * Errors the service raises on purpose. Each kind says what went wrong in domain terms; the API layer maps
 * kinds to protocol codes in one place (src/api/errors.ts). Messages are written for clients: they never hold
 * SQL, stack traces or other internals.
 */
export type DomainErrorKind =
  | 'invalid_argument'
  | 'not_found'
  | 'idempotency_key_reused'
  | 'failed_precondition'
  | 'concurrent_request'
  | 'unavailable'
  | 'deadline_exceeded'
  | 'unauthenticated'
  | 'permission_denied'
  | 'resource_exhausted';

/**
 * Every reason an error can carry, by kind: a closed set. The client contract (the `reason` of
 * payment.v1.ErrorDetail, listed in proto/payment/v1/errors.proto) and the error table of docs/errors.md list exactly
 * these; test/unit/error-reasons.test.ts keeps the three in agreement.
 */
export const ERROR_REASONS = {
  invalid_argument: [
    'IDEMPOTENCY_KEY_MISSING',
    'IDEMPOTENCY_KEY_INVALID',
    'FIELD_REQUIRED',
    'FIELD_TOO_LONG',
    'FIELD_INVALID',
    'AMOUNT_REQUIRED',
    'AMOUNT_NOT_POSITIVE',
    'AMOUNT_ABOVE_LIMIT',
    'CURRENCY_REQUIRED',
    'CURRENCY_UNKNOWN',
    'SAME_ACCOUNT',
    'HOLD_DURATION_WITHOUT_HOLD',
    'HOLD_DURATION_OUT_OF_RANGE',
    'PAGE_SIZE_INVALID',
    'PAGE_TOKEN_INVALID',
    'STATUS_UNKNOWN',
    'TOO_MANY_STATUSES',
    'TIME_RANGE_EMPTY',
    'AFTER_VERSION_INVALID',
    'SCOPE_UNKNOWN',
  ],
  not_found: [
    'ACCOUNT_NOT_FOUND',
    'PAYMENT_NOT_FOUND',
    'REFUND_NOT_FOUND',
    'SETTLEMENT_NOT_FOUND',
    'OWNER_NOT_FOUND',
    'API_KEY_NOT_FOUND',
  ],
  idempotency_key_reused: ['IDEMPOTENCY_KEY_REUSED'],
  failed_precondition: [
    'PAYMENT_NOT_AUTHORIZED',
    'HOLD_EXPIRED',
    'AMOUNT_EXCEEDS_AUTHORIZED',
    'REFUND_EXCEEDS_CAPTURED',
    'PAYMENT_NOT_REFUNDABLE',
    'PAYEE_ACCOUNT_INACTIVE',
    'ACCOUNT_INACTIVE',
    'CURRENCY_MISMATCH',
    'BALANCE_LIMIT_EXCEEDED',
    'ACCOUNT_NOT_EMPTY',
    'ACCOUNT_CLOSED',
    'INSUFFICIENT_FUNDS',
    'HOLD_NOT_EXPIRED',
  ],
  resource_exhausted: ['TOO_MANY_WATCHERS_FOR_CALLER', 'TOO_MANY_WATCHERS', 'WATCHER_TOO_SLOW', 'SHUTTING_DOWN'],
  concurrent_request: ['REQUEST_IN_PROGRESS', 'LOCK_WAIT_TIMEOUT'],
  unauthenticated: ['CREDENTIALS_MISSING', 'CREDENTIALS_INVALID'],
  permission_denied: ['METHOD_NOT_ALLOWED', 'BACKEND_ONLY', 'SCOPE_MISSING'],
  unavailable: [
    'DATABASE_UNAVAILABLE',
    'LEDGER_OVERLOADED',
    'DB_POOL_EXHAUSTED',
    'LEDGER_BUSY',
    'LEDGER_CONTENDED',
    'AUTH_KEYS_UNAVAILABLE',
  ],
  deadline_exceeded: ['DEADLINE_EXCEEDED'],
} as const satisfies Record<DomainErrorKind, readonly string[]>;

/** The reasons an error of kind `K` may carry. */
export type ReasonOf<K extends DomainErrorKind> = (typeof ERROR_REASONS)[K][number];
/** Every reason: what `payment.v1.ErrorDetail.reason` can hold. */
export type ErrorReason = ReasonOf<DomainErrorKind>;

export class DomainError extends Error {
  constructor(
    readonly kind: DomainErrorKind,
    /** Stable, machine-readable, e.g. "AMOUNT_NOT_POSITIVE"; one of ERROR_REASONS[kind]. */
    readonly reason: ErrorReason,
    message: string,
    /** The request field at fault, when there is one. */
    readonly field: string = '',
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

export function invalidArgument(field: string, reason: ReasonOf<'invalid_argument'>, message: string): DomainError {
  return new DomainError('invalid_argument', reason, message, field);
}

/** Client input repeated in a message is cut to this many characters: an answer never grows with the input. */
export const MAX_ECHOED_INPUT_LENGTH = 40;

/** The one way a message quotes client input: at most MAX_ECHOED_INPUT_LENGTH characters of it. */
export function echoed(input: string): string {
  return input.length <= MAX_ECHOED_INPUT_LENGTH ? input : `${input.slice(0, MAX_ECHOED_INPUT_LENGTH)}…`;
}

/** `field` names the request field that held the id ("payer_account_id"), so a client can tell which. */
const NOT_FOUND_REASON = {
  account: 'ACCOUNT_NOT_FOUND',
  payment: 'PAYMENT_NOT_FOUND',
  settlement: 'SETTLEMENT_NOT_FOUND',
  api_key: 'API_KEY_NOT_FOUND',
  refund: 'REFUND_NOT_FOUND',
  owner: 'OWNER_NOT_FOUND',
} as const satisfies Record<string, ReasonOf<'not_found'>>;

export function notFound(resource: keyof typeof NOT_FOUND_REASON, id: string, field: string): DomainError {
  return new DomainError('not_found', NOT_FOUND_REASON[resource], `${resource} ${echoed(id)} not found`, field);
}

export function idempotencyKeyReused(field: string): DomainError {
  const detail = field ? ` (${field} differs)` : '';
  return new DomainError(
    'idempotency_key_reused',
    'IDEMPOTENCY_KEY_REUSED',
    `idempotency key was already used for a different request${detail}; use a new key for a new request`,
    field,
  );
}

export function failedPrecondition(reason: ReasonOf<'failed_precondition'>, message: string, field = ''): DomainError {
  return new DomainError('failed_precondition', reason, message, field);
}

export function concurrentRequest(): DomainError {
  return new DomainError(
    'concurrent_request',
    'REQUEST_IN_PROGRESS',
    'a request with this idempotency key is still in progress; retry with the same key',
  );
}

/**
 * A row lock was not granted in time. The holder may be a request with the same idempotency key or simply
 * another payment on a busy balance; the message must not claim to know which.
 */
export function lockWaitTimedOut(): DomainError {
  return new DomainError(
    'concurrent_request',
    'LOCK_WAIT_TIMEOUT',
    'a conflicting request (the same idempotency key or the same account) held the ledger too long; retry with the same idempotency key',
  );
}

export function serviceUnavailable(reason: ReasonOf<'unavailable'>, message: string): DomainError {
  return new DomainError('unavailable', reason, message);
}

/**
 * The caller's deadline passed (or it gave up) before its command was written. Per gRPC semantics a deadline can
 * also pass in the tiny window after the commit, so a client retries with the same idempotency key either way.
 */
export function deadlineExceeded(advice = 'retry with the same idempotency key'): DomainError {
  return new DomainError(
    'deadline_exceeded',
    'DEADLINE_EXCEEDED',
    `the request deadline passed before it was applied; ${advice}`,
  );
}

/**
 * Throws DEADLINE_EXCEEDED when `signal` (a request's deadline or cancellation) has fired. Called inside a
 * transaction just before its writes and commit, so a late request rolls back instead of committing unseen.
 */
export function throwIfPastDeadline(signal: AbortSignal | undefined, advice = 'nothing was changed'): void {
  if (signal?.aborted) throw deadlineExceeded(advice);
}

/** No database connection came free in time: nothing ran, so the same request may safely come again. */
export function databasePoolExhausted(): DomainError {
  return serviceUnavailable('DB_POOL_EXHAUSTED', 'the ledger is busy; retry with the same idempotency key');
}

/** The database could not be reached, or dropped the connection, while serving the request. */
export function databaseUnavailable(): DomainError {
  return serviceUnavailable(
    'DATABASE_UNAVAILABLE',
    'the database is unavailable; retry (a mutation with the same idempotency key)',
  );
}

/**
 * Missing or unusable credentials. The message names which credential, never why it failed; `field` names
 * the header that carries it ("authorization", "x-api-key").
 */
export function unauthenticated(reason: ReasonOf<'unauthenticated'>, message: string, field = ''): DomainError {
  return new DomainError('unauthenticated', reason, message, field);
}

export function permissionDenied(reason: ReasonOf<'permission_denied'>, message: string): DomainError {
  return new DomainError('permission_denied', reason, message);
}

/** A bounded resource (e.g. open watch streams) is used up; retrying later may succeed. */
export function resourceExhausted(reason: ReasonOf<'resource_exhausted'>, message: string): DomainError {
  return new DomainError('resource_exhausted', reason, message);
}
