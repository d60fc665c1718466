/**
 * Whatever fails outside a Connect handler (an onRequest hook such as authentication or the rate limiter,
 * Fastify's body parsing, a path no route serves) is answered in the caller's protocol (see
 * src/api/early-answer.ts), never with Fastify's default JSON: gRPC and gRPC-Web clients read a status,
 * Connect clients an error body.
 *
 * - A path no route serves: UNIMPLEMENTED (HTTP 404 for Connect and plain HTTP), known service or not.
 * - A missing or unsupported content type: INVALID_ARGUMENT (HTTP 415 for Connect and plain HTTP).
 * - The database unreachable: UNAVAILABLE, which clients retry.
 * - Anything else unexpected: INTERNAL with a generic message; the error itself goes to the log only, so
 *   SQL, stack traces and file paths never reach a client.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { answerEarly } from '../api/early-answer.js';
import { toConnectError } from '../api/errors.js';
import { isConnectionFailure } from '../db/errors.js';
import { DomainError } from '../domain/errors.js';

// Bounds what of the request is echoed back in a message.
const ECHO_MAX_CHARS = 120;
const HTTP_UNSUPPORTED_MEDIA_TYPE = 415;
const HTTP_NOT_FOUND = 404;
const SUPPORTED_CONTENT_TYPES =
  'application/json or application/proto (Connect), application/grpc, application/grpc-web or application/grpc-web-text';
// A streaming method takes Connect's enveloped types, never a unary one (told to use what it sent, a client
// would be stuck).
const SUPPORTED_STREAMING_CONTENT_TYPES =
  'application/connect+json or application/connect+proto (Connect streaming), application/grpc, application/grpc-web or application/grpc-web-text';

// Fastify's own client-error statuses, mapped to the code a client should see.
const CODE_OF_HTTP_STATUS: Record<number, Code> = {
  400: Code.InvalidArgument,
  404: Code.Unimplemented,
  405: Code.Unimplemented,
  408: Code.DeadlineExceeded,
  413: Code.ResourceExhausted,
  415: Code.InvalidArgument,
  429: Code.ResourceExhausted,
  431: Code.ResourceExhausted,
};

function echo(text: string): string {
  return text.length > ECHO_MAX_CHARS ? `${text.slice(0, ECHO_MAX_CHARS)}…` : text;
}

/**
 * The answer to a request whose content type the method's protocols do not use (or that has none): HTTP 415
 * for Connect. `streaming` (a streaming method) lists Connect's streaming types instead of its unary ones.
 */
export function unsupportedContentType(
  contentType: string | undefined,
  streaming = false,
): { error: ConnectError; httpStatus: number } {
  const supported = streaming ? SUPPORTED_STREAMING_CONTENT_TYPES : SUPPORTED_CONTENT_TYPES;
  const message = contentType
    ? `unsupported content type "${echo(contentType)}": use ${supported}`
    : `missing content type: use ${supported}`;
  return { error: new ConnectError(message, Code.InvalidArgument), httpStatus: HTTP_UNSUPPORTED_MEDIA_TYPE };
}

interface Classified {
  error: ConnectError;
  httpStatus?: number;
  /** How the failure is logged: a bug is an error, an outage a warning, a bad request not at all. */
  logLevel?: 'error' | 'warn';
}

function classify(error: FastifyError, request: FastifyRequest): Classified {
  if (error instanceof ConnectError) return { error };
  if (error instanceof DomainError)
    return { error: toConnectError(error), ...(error.kind === 'unavailable' ? { logLevel: 'warn' } : {}) };
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return unsupportedContentType(request.headers['content-type']);
  const status = error.statusCode ?? 500;
  // Fastify's FST_ errors below 500 describe the request (e.g. "Body cannot be empty"), never the server.
  if (status < 500 && typeof error.code === 'string' && error.code.startsWith('FST_')) {
    const code = CODE_OF_HTTP_STATUS[status] ?? Code.InvalidArgument;
    return { error: new ConnectError(echo(error.message), code), httpStatus: status };
  }
  if (isConnectionFailure(error)) {
    return {
      error: new ConnectError('a service the server depends on is unavailable; retry later', Code.Unavailable),
      logLevel: 'warn',
    };
  }
  return { error: new ConnectError('internal error', Code.Internal), logLevel: 'error' };
}

/** Installs the error and not-found handlers on the root instance (they apply to every route and hook). */
export function registerProtocolErrorAnswers(fastify: FastifyInstance): void {
  fastify.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?', 1)[0] ?? '';
    const error = new ConnectError(`no such method: ${echo(path)}`, Code.Unimplemented);
    return answerEarly(request, reply, error, { httpStatus: HTTP_NOT_FOUND });
  });

  fastify.setErrorHandler(answerFailure);
}

/** Answers a failure outside the handlers in the caller's protocol (see the module comment). */
function answerFailure(fastifyError: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { error, httpStatus, logLevel } = classify(fastifyError, request);
  if (logLevel !== undefined) {
    request.log[logLevel]({ err: fastifyError, code: Code[error.code] }, 'request failed outside the handler');
  }
  if (reply.sent || reply.raw.headersSent) return reply;
  return answerEarly(request, reply, error, httpStatus === undefined ? {} : { httpStatus });
}

/**
 * Fastify's `frameworkErrors`: what its router refuses before any hook runs (a path with a malformed
 * percent-escape, FST_ERR_BAD_URL; an over-long path parameter), answered like any other failure, with the
 * request id the hooks would have set. Without it Fastify writes its own JSON, which no gRPC client reads.
 */
export function answerFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  reply.header('x-request-id', request.id);
  answerFailure(error, request, reply);
}
