/**
 * Security settings: TLS (and client certificates), who can sign tokens, and request limits. Outside the
 * embedded mode the server refuses to start without real token-verification keys.
 */

import { createPublicKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { isScope, type Scope } from '../contract.js';
import { ConfigError, type Env, readBool, readInt, readUrl, reportConfigError } from './env.js';

export interface TlsConfig {
  certFile: string;
  keyFile: string;
  /** Client certificates (mTLS): verified against this CA when set. */
  clientCaFile: string | undefined;
  /** Refuse a TLS connection without a trusted client certificate (otherwise it is optional). */
  clientCertRequired: boolean;
}

export interface AuthConfig {
  /** Undefined: the embedded mode's generated development key (src/auth/dev-keys.ts). */
  jwtSource: JwtKeySource | undefined;
  issuer: string | undefined;
  audience: string | undefined;
  /** Scopes granted to client-certificate subjects (CN). */
  certificateScopes: Map<string, Scope[]>;
}

export interface RequestLimits {
  /** Largest deadline a client may ask for; a larger one is refused before any work. */
  maxTimeoutMs: number;
  maxHeaderBytes: number;
  maxConnections: number;
  /** Open connections one client address may hold (trusted proxies exempt); more are closed at once. */
  maxConnectionsPerClient: number;
  /** A request's headers (and a TLS handshake, and HTTP/2's first request) must arrive within this. */
  headersTimeoutMs: number;
  /** After its headers, a request's body must have arrived within this. */
  requestBodyTimeoutMs: number;
}

function readFile(env: Env, name: string): string | undefined {
  const path = env[name] || undefined;
  if (path !== undefined && !existsSync(path)) {
    reportConfigError(new ConfigError(name, `names a file that does not exist: ${path}`));
    return undefined;
  }
  return path;
}

export function readTls(env: Env): TlsConfig | undefined {
  const certFile = readFile(env, 'TLS_CERT_FILE');
  const keyFile = readFile(env, 'TLS_KEY_FILE');
  const clientCaFile = readFile(env, 'TLS_CLIENT_CA_FILE');
  const clientCertRequired = readBool(env, 'TLS_CLIENT_CERT_REQUIRED', false);
  if (clientCertRequired && !clientCaFile) {
    reportConfigError(
      new ConfigError('TLS_CLIENT_CERT_REQUIRED', 'needs TLS_CLIENT_CA_FILE to verify client certificates'),
    );
  }
  if (!certFile && !keyFile) {
    if (clientCaFile) reportConfigError(new ConfigError('TLS_CLIENT_CA_FILE', 'needs TLS_CERT_FILE and TLS_KEY_FILE'));
    return undefined;
  }
  if (!certFile || !keyFile) {
    if (env.TLS_CERT_FILE && env.TLS_KEY_FILE) return undefined; // one of them does not exist: reported above
    const [missing, given] = certFile ? ['TLS_KEY_FILE', 'TLS_CERT_FILE'] : ['TLS_CERT_FILE', 'TLS_KEY_FILE'];
    reportConfigError(new ConfigError(missing, `must be set when ${given} is`));
    return undefined;
  }
  checkKeyPair(certFile, keyFile);
  if (clientCaFile) checkCaFile(clientCaFile);
  return { certFile, keyFile, clientCaFile, clientCertRequired };
}

/** A key that does not match its certificate stops the start here, instead of failing every handshake. */
function checkKeyPair(certFile: string, keyFile: string): void {
  let cert: Buffer;
  let key: Buffer;
  try {
    cert = readFileSync(certFile);
    key = readFileSync(keyFile);
  } catch (error) {
    reportConfigError(new ConfigError('TLS_CERT_FILE', `or TLS_KEY_FILE cannot be read: ${(error as Error).message}`));
    return;
  }
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    const reason = (error as Error).message;
    if (/key values mismatch/i.test(reason)) {
      reportConfigError(
        new ConfigError('TLS_KEY_FILE', `does not match the certificate in TLS_CERT_FILE (${certFile})`),
      );
    } else if (/PEM|no start line|bad base64|asn1/i.test(reason) && /key/i.test(reason)) {
      reportConfigError(new ConfigError('TLS_KEY_FILE', `is not a PEM private key (${keyFile}): ${reason}`));
    } else {
      reportConfigError(
        new ConfigError('TLS_CERT_FILE', `with TLS_KEY_FILE is not a usable certificate and key: ${reason}`),
      );
    }
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The client CA file must hold PEM certificates; anything else would start a server that can never verify a
 * client (Node does not complain until a handshake).
 */
function checkCaFile(path: string): void {
  try {
    const blocks = readFileSync(path, 'utf8').match(PEM_CERTIFICATE) ?? [];
    if (blocks.length === 0) throw new Error('no PEM certificate in it');
    for (const block of blocks) new X509Certificate(block);
  } catch (error) {
    const reason = (error as Error).message;
    reportConfigError(
      new ConfigError('TLS_CLIENT_CA_FILE', `is not a file of PEM CA certificates (${path}): ${reason}`),
    );
  }
}

/** A JWKS file must hold JSON with a non-empty "keys" array; checked here so the start names the variable. */
function checkJwksFile(path: string): void {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as { keys?: unknown };
    if (!Array.isArray(parsed.keys) || parsed.keys.length === 0) throw new Error('no "keys" array');
    for (const key of parsed.keys) createPublicKey({ key, format: 'jwk' });
  } catch (error) {
    reportConfigError(
      new ConfigError('AUTH_JWKS_FILE', `is not a JWKS with usable public keys (${path}): ${(error as Error).message}`),
    );
  }
}

// What each algorithm verifies with: key type, and for EC the curve (RFC 7518 §3.4, RFC 8037).
const KEY_OF_ALGORITHM: Readonly<Record<string, { types: string[]; curve?: string }>> = {
  RS256: { types: ['rsa'] },
  PS256: { types: ['rsa', 'rsa-pss'] },
  ES256: { types: ['ec'], curve: 'prime256v1' },
  ES384: { types: ['ec'], curve: 'secp384r1' },
  EdDSA: { types: ['ed25519', 'ed448'] },
};

/** A PEM public key (SPKI, as the verifier imports it) of the kind `algorithm` verifies with. */
function checkPublicKeyFile(path: string, algorithm: string): void {
  try {
    const pem = readFileSync(path, 'utf8');
    // createPublicKey would also take a private key (deriving its public half); the verifier would not.
    if (!pem.includes('-----BEGIN PUBLIC KEY-----')) throw new Error('no "BEGIN PUBLIC KEY" block (SPKI)');
    const key = createPublicKey(pem);
    const expected = KEY_OF_ALGORITHM[algorithm];
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (
      expected &&
      (!expected.types.includes(key.asymmetricKeyType ?? '') || (expected.curve && curve !== expected.curve))
    ) {
      throw new Error(
        `a ${key.asymmetricKeyType}${curve ? ` ${curve}` : ''} key cannot verify ${algorithm} (AUTH_JWT_ALGORITHM)`,
      );
    }
  } catch (error) {
    reportConfigError(
      new ConfigError(
        'AUTH_JWT_PUBLIC_KEY_FILE',
        `is not a usable PEM public key (${path}): ${(error as Error).message}`,
      ),
    );
  }
}

const JWT_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];

function readJwtSource(env: Env): JwtKeySource | undefined {
  const jwksFile = readFile(env, 'AUTH_JWKS_FILE');
  const jwksUrl = readUrl(env, 'AUTH_JWKS_URL', ['https:', 'http:'], 'https://issuer.example/.well-known/jwks.json');
  const publicKeyFile = readFile(env, 'AUTH_JWT_PUBLIC_KEY_FILE');
  const hs256Secret = env.AUTH_JWT_HS256_SECRET || undefined;
  const sources = [jwksFile, jwksUrl, publicKeyFile, hs256Secret].filter((source) => source !== undefined);
  if (sources.length > 1) {
    reportConfigError(
      new ConfigError(
        'AUTH_JWKS_FILE',
        'set only one of AUTH_JWKS_FILE, AUTH_JWKS_URL, AUTH_JWT_PUBLIC_KEY_FILE, AUTH_JWT_HS256_SECRET',
      ),
    );
    return undefined;
  }
  if (jwksFile) {
    checkJwksFile(jwksFile);
    return { kind: 'jwks-file', path: jwksFile };
  }
  if (jwksUrl) return { kind: 'jwks-url', url: jwksUrl };
  if (publicKeyFile) {
    const algorithm = env.AUTH_JWT_ALGORITHM || 'ES256';
    if (!JWT_ALGORITHMS.includes(algorithm)) {
      throw new ConfigError('AUTH_JWT_ALGORITHM', `must be one of ${JWT_ALGORITHMS.join(', ')}, got "${algorithm}"`);
    }
    checkPublicKeyFile(publicKeyFile, algorithm);
    return { kind: 'public-key-file', path: publicKeyFile, algorithm };
  }
  if (env.AUTH_JWT_ALGORITHM) {
    // Only a PEM key leaves the algorithm open; JWKS keys carry theirs, and a secret is HS256.
    reportConfigError(new ConfigError('AUTH_JWT_ALGORITHM', 'applies only with AUTH_JWT_PUBLIC_KEY_FILE'));
  }
  if (hs256Secret) {
    if (hs256Secret.length < 32) throw new ConfigError('AUTH_JWT_HS256_SECRET', 'must be at least 32 characters');
    return { kind: 'hs256', secret: hs256Secret };
  }
  return undefined;
}

/** "subject=scope scope;subject=scope" → scopes per client-certificate subject. */
function readCertificateScopes(env: Env): Map<string, Scope[]> {
  const scopes = new Map<string, Scope[]>();
  // Without a CA no client certificate is verified, so the scopes would silently grant nothing.
  if (env.TLS_CLIENT_SCOPES && !env.TLS_CLIENT_CA_FILE) {
    reportConfigError(new ConfigError('TLS_CLIENT_SCOPES', 'needs TLS_CLIENT_CA_FILE to verify client certificates'));
  }
  for (const entry of (env.TLS_CLIENT_SCOPES ?? '').split(';').filter((item) => item.trim() !== '')) {
    const [subject, granted = ''] = entry.split('=');
    const names = granted.split(/[\s,]+/).filter((name) => name !== '');
    const unknown = names.find((name) => !isScope(name));
    if (!subject?.trim() || unknown !== undefined) {
      throw new ConfigError(
        'TLS_CLIENT_SCOPES',
        `has "${entry}": expected subject=scope scope (unknown: ${unknown ?? 'subject'})`,
      );
    }
    scopes.set(subject.trim(), names as Scope[]);
  }
  return scopes;
}

export function readAuth(env: Env, embedded: boolean): AuthConfig {
  const jwtSource = readJwtSource(env);
  const issuer = env.AUTH_JWT_ISSUER || undefined;
  const audience = env.AUTH_JWT_AUDIENCE || undefined;
  const keyGiven = ['AUTH_JWKS_FILE', 'AUTH_JWKS_URL', 'AUTH_JWT_PUBLIC_KEY_FILE', 'AUTH_JWT_HS256_SECRET'].some(
    (name) => env[name],
  );
  if (!keyGiven && !embedded) {
    reportConfigError(
      new ConfigError(
        'AUTH_JWKS_FILE',
        '(or AUTH_JWKS_URL, AUTH_JWT_PUBLIC_KEY_FILE, AUTH_JWT_HS256_SECRET) must be set: outside the embedded mode the server does not start without real key material (npm run dev:keys makes a development set)',
      ),
    );
  }
  // Asked for together with the key, so that a first attempt learns everything that is missing.
  const needsClaims = keyGiven || !embedded;
  if (needsClaims && !issuer) reportConfigError(new ConfigError('AUTH_JWT_ISSUER', 'must be set with a JWT key'));
  if (needsClaims && !audience) reportConfigError(new ConfigError('AUTH_JWT_AUDIENCE', 'must be set with a JWT key'));
  return { jwtSource, issuer, audience, certificateScopes: readCertificateScopes(env) };
}

export function readLimits(env: Env): RequestLimits {
  return {
    maxTimeoutMs: readInt(env, 'MAX_REQUEST_TIMEOUT_MS', 30_000, 100, 600_000),
    maxHeaderBytes: readInt(env, 'MAX_HEADER_BYTES', 16 * 1024, 1024, 1024 * 1024),
    maxConnections: readInt(env, 'MAX_CONNECTIONS', 1_000, 1, 100_000),
    maxConnectionsPerClient: readInt(env, 'MAX_CONNECTIONS_PER_CLIENT', 256, 1, 100_000),
    headersTimeoutMs: readInt(env, 'HEADERS_TIMEOUT_MS', 5_000, 100, 300_000),
    requestBodyTimeoutMs: readInt(env, 'REQUEST_BODY_TIMEOUT_MS', 10_000, 100, 600_000),
  };
}

/** Where the JWT verification key comes from (JWT_JWKS_FILE, JWT_JWKS_URL, JWT_PUBLIC_KEY_FILE, JWT_HS256_SECRET or the dev key). */
export type JwtKeySource =
  | { kind: 'jwks-file'; path: string }
  | { kind: 'jwks-url'; url: string }
  | { kind: 'public-key-file'; path: string; algorithm: string }
  /** Symmetric: only when explicitly configured, since anyone who can verify can also sign. */
  | { kind: 'hs256'; secret: string }
  /** The embedded mode's generated key (src/auth/dev-keys.ts). */
  | { kind: 'dev-key'; publicJwk: JsonWebKeyLike };

export interface JsonWebKeyLike {
  kty: string;
  [parameter: string]: unknown;
}
