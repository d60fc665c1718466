/**
 * Answers a request with an error before any handler runs (the rate limiter, the body-size precheck), in the
 * protocol the request came in, encoded with Connect's own protocol helpers. The error's metadata goes out
 * as HTTP headers (and so as gRPC response metadata):
 *
 * - gRPC (application/grpc*) over HTTP/2: a trailers-only response, one HEADERS frame with END_STREAM holding
 *   :status 200, grpc-status and grpc-message. This is what grpc-go sends for an early error and what both
 *   @grpc/grpc-js and Connect's clients read as the call's status (grpc-js needs the END_STREAM flag on that
 *   frame, which Node's compatibility response never sets for an empty body, hence the raw stream).
 * - gRPC-Web (application/grpc-web*): HTTP 200 with the status in the headers and no body (trailers-only).
 * - Connect streaming (application/connect+json|proto): HTTP 200 and an end-of-stream message with the error.
 * - Connect unary, Connect GET and anything else: the code's HTTP status with the JSON error body.
 *
 * grpc-message is percent-encoded as the gRPC spec says (only '%' and bytes outside printable ASCII), not
 * with encodeURIComponent as Connect does: grpc-js decodes with decodeURI, which would leave "%3A" in a
 * message that had a colon. Both decode the spec's form the same way.
 */
import type { Http2ServerResponse } from 'node:http2';
import type { ConnectError } from '@connectrpc/connect';
import { encodeEnvelope } from '@connectrpc/connect/protocol';
import {
  codeToHttpStatus,
  createEndStreamSerialization,
  endStreamFlag,
  errorToJsonBytes,
} from '@connectrpc/connect/protocol-connect';
import { setTrailerStatus } from '@connectrpc/connect/protocol-grpc';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { rpcProtocolOf } from '../observability/metrics.js';
import { procedureOfRoute, rpcAnswered } from './observe.js';

const endStreamSerialization = createEndStreamSerialization({});

type WireProtocol = 'grpc' | 'grpc-web' | 'connect-stream' | 'connect-unary';

function protocolOf(contentType: string): WireProtocol {
  if (contentType.startsWith('application/grpc-web')) return 'grpc-web';
  if (contentType.startsWith('application/grpc')) return 'grpc';
  if (contentType.startsWith('application/connect+')) return 'connect-stream';
  return 'connect-unary';
}

function headersObject(headers: Headers | Record<string, unknown>): Record<string, string> {
  const result: Record<string, string> = {};
  if (headers instanceof Headers) {
    headers.forEach((value, name) => {
      result[name] = value;
    });
    return result;
  }
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    result[name] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return result;
}

const GRPC_MESSAGE = 'grpc-message';
const PRINTABLE_ASCII_FIRST = 0x20;
const PRINTABLE_ASCII_LAST = 0x7e;
const PERCENT = 0x25;

/** Percent-encodes a status message for grpc-message the way the gRPC spec says (see the module comment). */
export function encodeGrpcMessage(message: string): string {
  let encoded = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    encoded +=
      byte >= PRINTABLE_ASCII_FIRST && byte <= PRINTABLE_ASCII_LAST && byte !== PERCENT
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return encoded;
}

/**
 * Re-encodes a grpc-message that Connect wrote with encodeURIComponent into the spec's form, in place.
 * A value that does not decode is left as it is.
 */
export function respecGrpcMessage(headers: Headers): Headers {
  const value = headers.get(GRPC_MESSAGE);
  if (value === null) return headers;
  try {
    headers.set(GRPC_MESSAGE, encodeGrpcMessage(decodeURIComponent(value)));
  } catch {
    // Not percent-encoded by Connect; nothing to fix.
  }
  return headers;
}

/** grpc-status, grpc-message (spec-encoded) and the error's metadata and details, as headers. */
function grpcStatusHeaders(error: ConnectError): Record<string, string> {
  return headersObject(respecGrpcMessage(setTrailerStatus(new Headers(), error)));
}

export interface EarlyAnswerOptions {
  /** The HTTP status of a Connect unary answer, instead of the code's (e.g. 404 for an unknown path). */
  httpStatus?: number;
}

/** Answers with `error` and ends the request; nothing after the calling hook runs. */
export function answerEarly(
  request: FastifyRequest,
  reply: FastifyReply,
  error: ConnectError,
  options: EarlyAnswerOptions = {},
): FastifyReply {
  const contentType = (request.headers['content-type'] ?? '').toLowerCase();
  // Never reaches the Connect interceptor that observes the others.
  rpcAnswered({
    procedure: procedureOfRoute(request.routeOptions.url),
    protocol: rpcProtocolOf(contentType),
    code: error.code,
    durationSeconds: reply.elapsedTime / 1000,
    log: request.log,
    principal: request.principal,
    replayed: false,
  });

  switch (protocolOf(contentType)) {
    case 'grpc':
      return answerGrpc(request, reply, error, contentType);
    case 'grpc-web':
      return reply.code(200).header('content-type', contentType).headers(grpcStatusHeaders(error)).send();
    case 'connect-stream': {
      const endStream = endStreamSerialization.serialize({ metadata: new Headers(), error });
      return reply
        .code(200)
        .header('content-type', contentType)
        .headers(headersObject(error.metadata))
        .send(Buffer.from(encodeEnvelope(endStreamFlag, endStream)));
    }
    case 'connect-unary':
      return reply
        .code(options.httpStatus ?? codeToHttpStatus(error.code))
        .header('content-type', 'application/json')
        .headers(headersObject(error.metadata))
        .send(Buffer.from(errorToJsonBytes(error, {})));
  }
}

/** A gRPC answer: trailers-only on HTTP/2, headers-only over HTTP/1.1. */
function answerGrpc(
  request: FastifyRequest,
  reply: FastifyReply,
  error: ConnectError,
  contentType: string,
): FastifyReply {
  const status = grpcStatusHeaders(error);
  const raw = reply.raw as unknown as Partial<Http2ServerResponse>;
  if (raw.stream !== undefined) {
    // Trailers-only: the CORS and request-id headers Fastify holds are sent along.
    reply.hijack();
    const stream = raw.stream;
    if (!stream.destroyed && !stream.headersSent) {
      stream.respond(
        Object.assign(
          headersObject(reply.getHeaders()),
          { ':status': 200, 'content-type': contentType, 'x-request-id': request.id },
          status,
        ),
        { endStream: true },
      );
    }
    // The request body is never read; drain it so the stream can close.
    request.raw.resume();
    return reply;
  }
  // gRPC needs HTTP/2; over HTTP/1.1 a headers-only answer is the best there is.
  return reply.code(200).header('content-type', contentType).headers(status).send();
}
