/** Builds the authenticator from configuration; in the embedded mode without keys, from the dev key pair. */
import type { Config } from '../config.js';
import type { LedgerDb } from '../db/client.js';
import { ApiKeyCache } from './api-keys.js';
import { Authenticator } from './authenticate.js';
import { DEV_AUDIENCE, DEV_ISSUER, type DevKeyPair, loadOrCreateDevKeyPair } from './dev-keys.js';
import { createJwtVerifier, type JwtSettings } from './jwt.js';

export interface AuthSetup {
  authenticator: Authenticator;
  /** Present only in the embedded mode with no configured keys: signs the demo users' tokens. */
  devKeyPair: DevKeyPair | undefined;
  /** Verified API keys; the service clears it on every revocation notification. */
  apiKeyCache: ApiKeyCache;
}

export async function setUpAuthentication(config: Config, db: LedgerDb): Promise<AuthSetup> {
  const { auth } = config;
  let devKeyPair: DevKeyPair | undefined;
  let settings: JwtSettings;
  if (auth.jwtSource && auth.issuer && auth.audience) {
    settings = { source: auth.jwtSource, issuer: auth.issuer, audience: auth.audience };
  } else {
    // loadConfig already refused to start outside the embedded mode without keys.
    devKeyPair = await loadOrCreateDevKeyPair(config.dataDir);
    settings = {
      source: { kind: 'dev-key', publicJwk: devKeyPair.publicJwk },
      issuer: DEV_ISSUER,
      audience: DEV_AUDIENCE,
    };
  }
  const apiKeyCache = new ApiKeyCache(db, config.apiKeyCacheTtlMs);
  const authenticator = new Authenticator({
    db,
    verifyApiKey: (presented) => apiKeyCache.verify(presented),
    verifyJwt: await createJwtVerifier(settings),
    certificateScopes: auth.certificateScopes,
  });
  return { authenticator, devKeyPair, apiKeyCache };
}
