/**
 * Verifies wallet users' bearer tokens with jose: signature against the configured keys, expiry, not-before,
 * issuer and audience; the subject is the user id. Failures are reported only as "invalid": a client is
 * never told why a signature did not verify.
 */
import { readFileSync } from 'node:fs';
import {
  type CryptoKey,
  createLocalJWKSet,
  createRemoteJWKSet,
  importSPKI,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import type { JwtKeySource } from '../config/security.js';
import { serviceUnavailable } from '../domain/errors.js';

export interface JwtSettings {
  source: JwtKeySource;
  issuer: string;
  audience: string;
}

const CLOCK_TOLERANCE_SECONDS = 30;
// A remote key set is fetched with a bound and cached; an unknown kid refetches at most once a minute.
const JWKS_FETCH_TIMEOUT_MS = 2_000;
const JWKS_COOLDOWN_MS = 60_000;

export type JwtVerifier = (token: string) => Promise<{ subject: string } | undefined>;

async function keyFor(
  source: JwtKeySource,
): Promise<{ key: CryptoKey | Uint8Array | JWTVerifyGetKey; algorithms: string[] }> {
  switch (source.kind) {
    case 'jwks-file':
      return {
        key: createLocalJWKSet(JSON.parse(readFileSync(source.path, 'utf8'))),
        algorithms: ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'],
      };
    case 'jwks-url':
      return {
        key: createRemoteJWKSet(new URL(source.url), {
          timeoutDuration: JWKS_FETCH_TIMEOUT_MS,
          cooldownDuration: JWKS_COOLDOWN_MS,
        }),
        algorithms: ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'],
      };
    case 'public-key-file':
      return {
        key: await importSPKI(readFileSync(source.path, 'utf8'), source.algorithm),
        algorithms: [source.algorithm],
      };
    case 'hs256':
      return { key: new TextEncoder().encode(source.secret), algorithms: ['HS256'] };
    case 'dev-key':
      return { key: createLocalJWKSet({ keys: [source.publicJwk] }), algorithms: ['ES256'] };
  }
}

export async function createJwtVerifier(settings: JwtSettings): Promise<JwtVerifier> {
  const { key, algorithms } = await keyFor(settings.source);
  return async (token) => {
    try {
      const { payload } = await jwtVerify(token, key as Parameters<typeof jwtVerify>[1], {
        issuer: settings.issuer,
        audience: settings.audience,
        algorithms,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['sub', 'exp'],
      });
      return payload.sub ? { subject: payload.sub } : undefined;
    } catch (error) {
      // Not the token's fault: the key set could not be fetched. Say so rather than blame the client.
      if (error instanceof joseErrors.JWKSTimeout) {
        throw serviceUnavailable('AUTH_KEYS_UNAVAILABLE', 'token keys are unavailable; retry later');
      }
      return undefined;
    }
  };
}
