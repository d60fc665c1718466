/**
 * The one place where errors become protocol codes. Domain errors carry a client-safe message and a reason,
 * sent as an ErrorDetail; anything else is a bug or an outage and reaches the client only as a generic
 * INTERNAL, while the original is logged with the request.
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { ErrorDetailSchema } from '../../gen/payment/v1/errors_pb.js';
import { isConnectionFailure } from '../db/errors.js';
import { DomainError, type DomainErrorKind, databaseUnavailable } from '../domain/errors.js';

const CODE_OF: Record<DomainErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  // A key reused for a different request is a conflict with something that already exists.
  idempotency_key_reused: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  // The same key is still being processed: safe and sensible to retry with the same key.
  concurrent_request: Code.Aborted,
  unavailable: Code.Unavailable,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
};

export function toConnectError(error: DomainError): ConnectError {
  const detail = create(ErrorDetailSchema, { reason: error.reason, field: error.field });
  return new ConnectError(error.message, CODE_OF[error.kind], undefined, [{ desc: ErrorDetailSchema, value: detail }]);
}

export interface ErrorLogger {
  error(details: object, message: string): void;
}

export function errorMappingInterceptor(logger: ErrorLogger): Interceptor {
  return (next) => async (request) => {
    try {
      return await next(request);
    } catch (error) {
      if (error instanceof DomainError) throw toConnectError(error);
      // Errors we raised on purpose as ConnectErrors (e.g. from the protocol layer) pass through unchanged.
      if (error instanceof ConnectError && error.code !== Code.Internal && error.code !== Code.Unknown) throw error;
      // Reads reach the database outside the ledger core: an outage there is retryable too, not a bug.
      if (isConnectionFailure(error)) throw toConnectError(databaseUnavailable());
      logger.error({ err: error, procedure: request.url }, 'request failed with an internal error');
      throw new ConnectError('internal error', Code.Internal);
    }
  };
}
