/**
 * Authenticates each request once, in an onRequest hook that runs before the rate limiter, so that buckets
 * belong to verified principals. The hook only records the result; the Connect interceptor refuses. A JWT
 * verifies without I/O; an API key costs one primary-key lookup, then none while cached (ApiKeyCache; a malformed
 * one costs nothing).
 */
import type { TLSSocket } from 'node:tls';
import { createContextValues } from '@connectrpc/connect';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Authenticator, AuthResult } from './authenticate.js';
import { authResultKey } from './interceptor.js';

declare module 'fastify' {
  interface FastifyRequest {
    auth?: AuthResult;
  }
}

function single(header: string | string[] | undefined): string | undefined {
  return Array.isArray(header) ? header[0] : header;
}

const CREDENTIAL_HEADERS = new Set(['authorization', 'x-api-key']);

/** Whether a credential header came more than once; `rawHeaders` alternates names and values. */
function credentialRepeated(rawHeaders: readonly string[]): boolean {
  let seen = 0;
  for (let index = 0; index < rawHeaders.length; index += 2) {
    if (CREDENTIAL_HEADERS.has(rawHeaders[index]!.toLowerCase())) seen++;
  }
  return seen > 1;
}

/** The CN of a client certificate that the TLS layer verified against the configured CA. */
function verifiedCertificateSubject(request: FastifyRequest): string | undefined {
  const socket = request.raw.socket as TLSSocket | undefined;
  if (!socket?.authorized || typeof socket.getPeerCertificate !== 'function') return undefined;
  const subject = socket.getPeerCertificate()?.subject?.CN;
  return typeof subject === 'string' && subject !== '' ? subject : undefined;
}

export function registerAuthentication(fastify: FastifyInstance, authenticator: Authenticator): void {
  fastify.addHook('onRequest', async (request) => {
    const auth = await authenticator.authenticate({
      authorization: single(request.headers.authorization),
      apiKey: single(request.headers['x-api-key']),
      certificateSubject: verifiedCertificateSubject(request),
      repeated: credentialRepeated(request.raw.rawHeaders),
    });
    request.auth = auth;
    if (auth.status === 'authenticated') request.principal = auth.caller.principal;
  });
}

/** Hands the hook's result to the Connect interceptor. */
export function authContextValues(request: FastifyRequest) {
  return createContextValues().set(authResultKey, request.auth ?? { status: 'anonymous' });
}
