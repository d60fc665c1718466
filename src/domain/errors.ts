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
  | 'unauthenticated'
  | 'permission_denied';

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

export function notFound(resource: 'account' | 'payment' | 'settlement', id: string): DomainError {
  return new DomainError('not_found', `${resource.toUpperCase()}_NOT_FOUND`, `${resource} ${id} not found`);
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

/** The database could not be reached, or dropped the connection, while serving the request. */
export function databaseUnavailable(): DomainError {
  return serviceUnavailable(
    'DATABASE_UNAVAILABLE',
    'the database is unavailable; retry (a mutation with the same idempotency key)',
  );
}

/** Missing or unusable credentials. The message names which credential, never why it failed. */
export function unauthenticated(reason: string, message: string): DomainError {
  return new DomainError('unauthenticated', reason, message);
}

export function permissionDenied(reason: string, message: string): DomainError {
  return new DomainError('permission_denied', reason, message);
}
