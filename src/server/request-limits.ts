/**
 * Refuses a request over a limit before anything else runs: before authentication (which may look an API
 * key up) and before any handler. Checked here: a declared body over the limit, and a deadline longer than
 * clients may ask for. A body without a declared length is still bounded by Connect's readMaxBytes while
 * it is read, and Connect checks deadlines again itself.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import { parseTimeout as parseConnectTimeout } from '@connectrpc/connect/protocol-connect';
import { parseTimeout as parseGrpcTimeout } from '@connectrpc/connect/protocol-grpc';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { answerEarly } from '../api/early-answer.js';

export interface RequestLimitSettings {
  maxBodyBytes: number;
  maxTimeoutMs: number;
}

function single(header: string | string[] | undefined): string | null {
  return (Array.isArray(header) ? header[0] : header) ?? null;
}

/**
 * Connect's own parsers, so a deadline is read exactly as the handler will read it, and only the header of the
 * caller's protocol: gRPC and gRPC-Web send grpc-timeout, Connect connect-timeout-ms; the other is ignored.
 */
function deadlineError(request: FastifyRequest, maxTimeoutMs: number): ConnectError | undefined {
  const grpcFamily = /^application\/grpc/i.test(single(request.headers['content-type']) ?? '');
  if (grpcFamily) {
    const grpcTimeout = single(request.headers['grpc-timeout']);
    return grpcTimeout === null ? undefined : parseGrpcTimeout(grpcTimeout, maxTimeoutMs).error;
  }
  const connectTimeout = single(request.headers['connect-timeout-ms']);
  return connectTimeout === null ? undefined : parseConnectTimeout(connectTimeout, maxTimeoutMs).error;
}

export function registerRequestLimits(fastify: FastifyInstance, limits: RequestLimitSettings): void {
  fastify.addHook('onRequest', async (request, reply) => {
    const declared = Number(request.headers['content-length'] ?? 0);
    if (declared > limits.maxBodyBytes) {
      // The body is never read; leave the connection rather than drain an oversized upload.
      if (request.raw.httpVersionMajor === 1) reply.header('connection', 'close');
      return answerEarly(
        request,
        reply,
        new ConnectError(
          `request body of ${declared} bytes is larger than the limit of ${limits.maxBodyBytes}`,
          Code.ResourceExhausted,
        ),
      );
    }
    const deadline = deadlineError(request, limits.maxTimeoutMs);
    if (deadline) return answerEarly(request, reply, deadline);
  });
}
