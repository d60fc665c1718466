/**
 * The embedded mode's development credentials, so that the one-command start stays one command: an ES256
 * key pair kept in the data directory (generated on first start) and tokens signed with it for the demo
 * users. Never used outside the embedded mode: there the server refuses to start without real keys.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose';
import type { JsonWebKeyLike } from '../config/security.js';

export const DEV_ISSUER = 'payment-ledger-dev';
export const DEV_AUDIENCE = 'payment-ledger';
/** The key pair's file in a data directory. */
export const DEV_KEY_FILE = 'dev-jwt-key.json';
const TOKEN_LIFETIME = '24h';

export interface DevKeyPair {
  publicJwk: JsonWebKeyLike;
  privateJwk: JsonWebKeyLike;
}

export async function loadOrCreateDevKeyPair(dataDir: string): Promise<DevKeyPair> {
  const path = join(dataDir, DEV_KEY_FILE);
  if (existsSync(path)) return JSON.parse(readFileSync(path, 'utf8')) as DevKeyPair;
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const pair: DevKeyPair = {
    publicJwk: Object.assign(await exportJWK(publicKey), { alg: 'ES256', use: 'sig', kid: 'dev' }) as JsonWebKeyLike,
    privateJwk: Object.assign(await exportJWK(privateKey), { alg: 'ES256', kid: 'dev' }) as JsonWebKeyLike,
  };
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(path, JSON.stringify(pair), { mode: 0o600 });
  return pair;
}

export async function signDevToken(pair: DevKeyPair, subject: string): Promise<string> {
  const privateKey = await importJWK(pair.privateJwk, 'ES256');
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: 'dev' })
    .setSubject(subject)
    .setIssuer(DEV_ISSUER)
    .setAudience(DEV_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(TOKEN_LIFETIME)
    .sign(privateKey);
}
