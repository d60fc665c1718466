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

export class DomainError extends Error {
  constructor(
    readonly kind: DomainErrorKind,
    /** Stable, machine-readable, e.g. "INVALID_AMOUNT". */
    readonly reason: string,
    message: string,
    /** The request field at fault, when there is one. */
    readonly field: string = '',
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

export function invalidArgument(field: string, reason: string, message: string): DomainError {
  return new DomainError('invalid_argument', reason, message, field);
}

/** Client input repeated in a message is cut to this many characters: an answer never grows with the input. */
export const MAX_ECHOED_INPUT_LENGTH = 40;

/** The one way a message quotes client input: at most MAX_ECHOED_INPUT_LENGTH characters of it. */
export function echoed(input: string): string {
  return input.length <= MAX_ECHOED_INPUT_LENGTH ? input : `${input.slice(0, MAX_ECHOED_INPUT_LENGTH)}…`;
}

/** `field` names the request field that held the id ("payer_account_id"), so a client can tell which. */
export function notFound(
  resource: 'account' | 'payment' | 'settlement' | 'api_key' | 'refund' | 'owner',
  id: string,
  field: string,
): DomainError {
  return new DomainError(
    'not_found',
    `${resource.toUpperCase()}_NOT_FOUND`,
    `${resource} ${echoed(id)} not found`,
    field,
  );
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

export function failedPrecondition(reason: string, message: string, field = ''): DomainError {
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

export function serviceUnavailable(reason: string, message: string): DomainError {
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

/**
 * Missing or unusable credentials. The message names which credential, never why it failed; `field` names
 * the header that carries it ("authorization", "x-api-key").
 */
export function unauthenticated(reason: string, message: string, field = ''): DomainError {
  return new DomainError('unauthenticated', reason, message, field);
}

export function permissionDenied(reason: string, message: string): DomainError {
  return new DomainError('permission_denied', reason, message);
}

/** A bounded resource (e.g. open watch streams) is used up; retrying later may succeed. */
export function resourceExhausted(reason: string, message: string): DomainError {
  return new DomainError('resource_exhausted', reason, message);
}
