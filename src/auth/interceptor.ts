/**
 * Authentication and authorization for every RPC in every protocol, in one Connect interceptor: public
 * services pass; otherwise the request needs a usable credential (UNAUTHENTICATED) and the method must be
 * open to the caller (PERMISSION_DENIED). The caller then travels to the handlers in the context values.
 */
import { createContextKey, type Interceptor } from '@connectrpc/connect';
import { permissionDenied, unauthenticated } from '../domain/errors.js';
import type { AuthResult } from './authenticate.js';
import { ANONYMOUS_PRINCIPAL, type Caller } from './caller.js';
import { METHOD_RULES, PUBLIC_SERVICES } from './policy.js';

/** What the authentication hook found; set per request from the Fastify request. */
export const authResultKey = createContextKey<AuthResult>({ status: 'anonymous' }, { description: 'auth result' });

const NO_CALLER: Caller = { kind: 'backend', principal: ANONYMOUS_PRINCIPAL, scopes: new Set() };
/** The authenticated caller; handlers of non-public methods always find a real one here. */
export const callerKey = createContextKey<Caller>(NO_CALLER, { description: 'authenticated caller' });

/** The header that carried the unusable credential, for ErrorDetail.field. */
const CREDENTIAL_HEADER = { 'bearer token': 'authorization', 'API key': 'x-api-key', credentials: 'authorization' };

export function authInterceptor(): Interceptor {
  return (next) => async (request) => {
    if (PUBLIC_SERVICES.has(request.service.typeName)) return next(request);
    const auth = request.contextValues.get(authResultKey);
    if (auth.status === 'error') throw auth.error;
    if (auth.status === 'anonymous') {
      throw unauthenticated(
        'CREDENTIALS_MISSING',
        'missing credentials: send "Authorization: Bearer <token>" or "x-api-key: <key>"',
        'authorization',
      );
    }
    if (auth.status === 'invalid') {
      const message =
        auth.credential === 'credentials'
          ? 'send exactly one credential: one Authorization (Bearer) header or one x-api-key header'
          : `invalid ${auth.credential}`;
      throw unauthenticated('CREDENTIALS_INVALID', message, CREDENTIAL_HEADER[auth.credential]);
    }
    const { caller } = auth;
    const method = `${request.service.typeName}/${request.method.name}`;
    const rule = METHOD_RULES[method];
    if (!rule) throw permissionDenied('METHOD_NOT_ALLOWED', `${method} is not open to any caller`);
    if (caller.kind === 'user' && !rule.users) {
      throw permissionDenied('BACKEND_ONLY', `${method} is for backends, not wallet users`);
    }
    if (caller.kind === 'backend' && !caller.scopes.has(rule.scope)) {
      throw permissionDenied('SCOPE_MISSING', `${method} needs the scope ${rule.scope}`);
    }
    request.contextValues.set(callerKey, caller);
    return next(request);
  };
}
