/**
 * Real credentials for tests: an ES256 key pair per test process whose public key the servers are configured
 * with (the same path production takes with AUTH_JWT_PUBLIC_KEY_FILE), tokens signed with it, and a backend
 * API key with every scope created in each test server's database. Clients look a server's backend key up
 * by its URL, so a test that does not care about authentication reads like one that does not have to.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { createApiKey } from '../../src/auth/api-keys.js';
import { SCOPES, type Scope } from '../../src/auth/caller.js';
import type { RunningService } from '../../src/server/start.js';

export const TEST_ISSUER = 'https://issuer.test';
export const TEST_AUDIENCE = 'payment-ledger-test';

const keyPair = await generateKeyPair('ES256');
const keyDir = mkdtempSync(join(tmpdir(), 'ledger-test-keys-'));
export const TEST_PUBLIC_KEY_FILE = join(keyDir, 'public.pem');
writeFileSync(TEST_PUBLIC_KEY_FILE, await exportSPKI(keyPair.publicKey));

/** What a client sends: a bearer token, an API key, both (to test refusals) or nothing. */
export interface Credentials {
  token?: string;
  apiKey?: string;
}

/** Environment that makes a server trust this process's test key. */
export const TEST_AUTH_ENV: Record<string, string> = {
  AUTH_JWT_PUBLIC_KEY_FILE: TEST_PUBLIC_KEY_FILE,
  AUTH_JWT_ALGORITHM: 'ES256',
  AUTH_JWT_ISSUER: TEST_ISSUER,
  AUTH_JWT_AUDIENCE: TEST_AUDIENCE,
};

export interface TokenOptions {
  issuer?: string;
  audience?: string;
  /** Seconds from now; negative for an expired token. */
  expiresIn?: number;
  notBefore?: number;
}

export async function signToken(subject: string, options: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg: 'ES256' })
    .setSubject(subject)
    .setIssuer(options.issuer ?? TEST_ISSUER)
    .setAudience(options.audience ?? TEST_AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresIn ?? 3600));
  if (options.notBefore !== undefined) jwt.setNotBefore(now + options.notBefore);
  return jwt.sign(keyPair.privateKey);
}

/** A token signed by a key the server does not trust. */
export async function signForeignToken(subject: string): Promise<string> {
  const foreign = await generateKeyPair('ES256');
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256' })
    .setSubject(subject)
    .setIssuer(TEST_ISSUER)
    .setAudience(TEST_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(foreign.privateKey);
}

const backendKeyByUrl = new Map<string, string>();

/** Creates a backend key in the service's database and remembers it as that server's default credential. */
export async function registerBackendKey(service: RunningService, scopes: Scope[] = [...SCOPES]): Promise<string> {
  const { key } = await createApiKey(service.database.db, 'test-backend', scopes);
  backendKeyByUrl.set(service.url, key);
  return key;
}

export function defaultCredentialsFor(baseUrl: string): Credentials {
  const apiKey = backendKeyByUrl.get(baseUrl);
  return apiKey ? { apiKey } : {};
}

/** The same credentials as HTTP headers, for raw fetch, curl or grpc-js. */
export function credentialHeaders(credentials: Credentials): Record<string, string> {
  return {
    ...(credentials.token ? { authorization: `Bearer ${credentials.token}` } : {}),
    ...(credentials.apiKey ? { 'x-api-key': credentials.apiKey } : {}),
  };
}
