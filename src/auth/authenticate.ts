/**
 * Turns a request's credentials into a caller, once per request: a bearer JWT (wallet users), an API key
 * (backends) or a verified client certificate (backends over mTLS). The result is only recorded here; the
 * Connect interceptor (interceptor.ts) is where a request without a usable credential is refused, in
 * whatever protocol it came.
 */
import type { LedgerDb } from '../db/client.js';
import { isPoolWaitTimeout } from '../db/errors.js';
import { DomainError, databasePoolExhausted } from '../domain/errors.js';
import { verifyApiKey } from './api-keys.js';
import type { Caller, Scope } from './caller.js';
import type { JwtVerifier } from './jwt.js';

export type AuthResult =
  | { status: 'anonymous' }
  | { status: 'authenticated'; caller: Caller }
  /** Which credential was unusable; never why. */
  | { status: 'invalid'; credential: 'bearer token' | 'API key' | 'credentials' }
  | { status: 'error'; error: DomainError };

export interface PresentedCredentials {
  authorization: string | undefined;
  apiKey: string | undefined;
  /** A client certificate the TLS layer verified against the configured CA, if any. */
  certificateSubject: string | undefined;
  /** A credential header came more than once (HTTP keeps the first Authorization and joins x-api-key). */
  repeated: boolean;
}

export interface AuthenticatorOptions {
  db: LedgerDb;
  verifyJwt: JwtVerifier;
  /** Scopes granted to each verified client-certificate subject (its CN). */
  certificateScopes: ReadonlyMap<string, readonly Scope[]>;
  /** Verifies a presented API key (e.g. through an ApiKeyCache); default: a database query every time. */
  verifyApiKey?: (presented: string) => Promise<Caller | undefined>;
}

// The scheme is case-insensitive, then one or more spaces (RFC 9110 §11.4, §11.6.2).
const BEARER = /^Bearer +([A-Za-z0-9_.-]{1,8192})$/i;
const MAX_API_KEY_LENGTH = 200;

export class Authenticator {
  constructor(private readonly options: AuthenticatorOptions) {}

  async authenticate(credentials: PresentedCredentials): Promise<AuthResult> {
    try {
      if (credentials.repeated || (credentials.authorization !== undefined && credentials.apiKey !== undefined)) {
        return { status: 'invalid', credential: 'credentials' };
      }
      if (credentials.authorization !== undefined) {
        const token = BEARER.exec(credentials.authorization)?.[1];
        const verified = token ? await this.options.verifyJwt(token) : undefined;
        if (!verified) return { status: 'invalid', credential: 'bearer token' };
        return {
          status: 'authenticated',
          caller: { kind: 'user', principal: `user:${verified.subject}`, userId: verified.subject },
        };
      }
      if (credentials.apiKey !== undefined) {
        const caller =
          credentials.apiKey.length <= MAX_API_KEY_LENGTH
            ? await (this.options.verifyApiKey ?? ((key) => verifyApiKey(this.options.db, key)))(credentials.apiKey)
            : undefined;
        return caller ? { status: 'authenticated', caller } : { status: 'invalid', credential: 'API key' };
      }
      if (credentials.certificateSubject !== undefined) {
        const scopes = this.options.certificateScopes.get(credentials.certificateSubject) ?? [];
        return {
          status: 'authenticated',
          caller: { kind: 'backend', principal: `cert:${credentials.certificateSubject}`, scopes: new Set(scopes) },
        };
      }
      return { status: 'anonymous' };
    } catch (error) {
      if (error instanceof DomainError) return { status: 'error', error };
      // No connection came free to look the key up: retryable, answered in the caller's protocol.
      if (isPoolWaitTimeout(error)) return { status: 'error', error: databasePoolExhausted() };
      throw error;
    }
  }
}
