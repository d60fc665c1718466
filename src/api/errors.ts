/**
 * The one place where errors become protocol codes. Domain errors carry a client-safe message and a reason,
 * sent as an ErrorDetail; anything else is a bug or an outage and reaches the client only as a generic
 * INTERNAL, while the original is logged with the request.
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ContextValues, type Interceptor } from '@connectrpc/connect';
import { ErrorDetailSchema } from '../../gen/payment/v1/errors_pb.js';
import { isConnectionFailure, isPoolWaitTimeout } from '../db/errors.js';
import { DomainError, type DomainErrorKind, databasePoolExhausted, databaseUnavailable } from '../domain/errors.js';
import { endedBy } from './call-signal.js';
import { rpcLogKey } from './observe.js';

/** The protocol code of each kind of domain error. */
export const CODE_OF: Readonly<Record<DomainErrorKind, Code>> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  // A key reused for a different request is a conflict with something that already exists.
  idempotency_key_reused: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  // The same key is still being processed: safe and sensible to retry with the same key.
  concurrent_request: Code.Aborted,
  unavailable: Code.Unavailable,
  deadline_exceeded: Code.DeadlineExceeded,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
};

export function toConnectError(error: DomainError): ConnectError {
  const detail = create(ErrorDetailSchema, { reason: error.reason, field: error.field });
  return new ConnectError(error.message, CODE_OF[error.kind], undefined, [{ desc: ErrorDetailSchema, value: detail }]);
}

export interface ErrorLogger {
  error(details: object, message: string): void;
}

export function errorMappingInterceptor(logger: ErrorLogger): Interceptor {
  const mapped = (
    error: unknown,
    request: { url: string; contextValues: ContextValues; signal: AbortSignal },
  ): unknown => {
    if (error instanceof DomainError) return toConnectError(error);
    // Reads and authentication reach the pool outside the ledger core; a wait that timed out is retryable.
    if (isPoolWaitTimeout(error)) return toConnectError(databasePoolExhausted());
    // Errors we raised on purpose as ConnectErrors (e.g. from the protocol layer) pass through unchanged.
    if (error instanceof ConnectError && error.code !== Code.Internal && error.code !== Code.Unknown) return error;
    // Reading the body or writing the stream fails once the client has gone: its doing, not a bug to log.
    const ended = endedBy(request.signal);
    if (ended) return ended;
    // Reads reach the database outside the ledger core: an outage there is retryable too, not a bug.
    if (isConnectionFailure(error)) return toConnectError(databaseUnavailable());
    // The request's own logger carries request id, principal and procedure; the root one needs them said.
    const requestLog = request.contextValues.get(rpcLogKey);
    if (requestLog) requestLog.error({ err: error }, 'request failed with an internal error');
    else logger.error({ err: error, procedure: request.url }, 'request failed with an internal error');
    return new ConnectError('internal error', Code.Internal);
  };
  return (next) => async (request) => {
    try {
      const response = await next(request);
      // A server stream fails while it is read, after this function returned: map those errors too.
      if (!response.stream) return response;
      return Object.assign({}, response, {
        message: mapStreamErrors(response.message, (error) => mapped(error, request)),
      });
    } catch (error) {
      throw mapped(error, request);
    }
  };
}

async function* mapStreamErrors<T>(messages: AsyncIterable<T>, map: (error: unknown) => unknown): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (error) {
    throw map(error);
  }
}
