/**
 * Refuses a request whose declared body is over the limit before anything else runs: before
 * authentication (which may look an API key up) and before any handler. A body sent without a declared
 * length is still bounded by Connect's readMaxBytes while it is read.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import type { FastifyInstance } from 'fastify';
import { answerEarly } from '../api/early-answer.js';

export function registerBodySizePrecheck(fastify: FastifyInstance, maxBytes: number): void {
  fastify.addHook('onRequest', async (request, reply) => {
    const declared = Number(request.headers['content-length'] ?? 0);
    if (!(declared > maxBytes)) return;
    // The body is never read; leave the connection rather than try to drain an oversized upload.
    reply.header('connection', request.raw.httpVersionMajor === 1 ? 'close' : undefined);
    return answerEarly(
      request,
      reply,
      new ConnectError(
        `request body of ${declared} bytes is larger than the limit of ${maxBytes}`,
        Code.ResourceExhausted,
      ),
    );
  });
}
