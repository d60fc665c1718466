/** Bad settings are reported all at once, each naming its variable; TLS and JWT key material is checked. */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDatabaseSettings } from '../../src/config/database.js';
import { ConfigError, ConfigErrors, loadConfig } from '../../src/config.js';
import { createSelfSignedCert, type SelfSignedCert } from '../support/self-signed-cert.js';

const POSTGRES = { DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/ledger' };

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigErrors) return error.errors.map((problem) => problem.variable);
    if (error instanceof ConfigError) return [error.variable];
    throw error;
  }
  return [];
}

let first: SelfSignedCert;
let second: SelfSignedCert;
beforeAll(async () => {
  [first, second] = await Promise.all([createSelfSignedCert(), createSelfSignedCert()]);
});
afterAll(async () => {
  await first?.remove();
  await second?.remove();
});

describe('loadConfig', () => {
  it('reports every bad or missing setting at once', () => {
    const problems = problemsOf({
      ...POSTGRES,
      PORT: 'x',
      HOLD_MIN_SECONDS: '-1',
      KAFKA_SASL_MECHANISM: 'plain',
      RATE_LIMIT_READ_REFILL_PER_SECOND: 'fast',
      LOG_LEVEL: 'loud',
    });
    expect(problems.sort()).toEqual(
      [
        'AUTH_JWKS_FILE',
        'AUTH_JWT_AUDIENCE',
        'AUTH_JWT_ISSUER',
        'HOLD_MIN_SECONDS',
        'KAFKA_BROKERS',
        'LOG_LEVEL',
        'PORT',
        'RATE_LIMIT_READ_REFILL_PER_SECOND',
      ].sort(),
    );
  });

  it('the message has a line per problem naming its variable', () => {
    expect(() => loadConfig({ ...POSTGRES, PORT: 'x' })).toThrow(/PORT must be a whole number[\s\S]*AUTH_JWT_ISSUER/);
  });

  it('a TLS key that does not match its certificate stops the start, naming TLS_KEY_FILE', () => {
    expect(problemsOf({ TLS_CERT_FILE: first.certFile, TLS_KEY_FILE: second.keyFile })).toEqual(['TLS_KEY_FILE']);
    expect(problemsOf({ TLS_CERT_FILE: first.certFile, TLS_KEY_FILE: first.keyFile })).toEqual([]);
  });

  it('a malformed JWKS or PEM names its variable', () => {
    const badJwks = join(first.certFile, '..', 'jwks.json');
    writeFileSync(badJwks, '{"keys": [{"kty": "EC"}]}');
    expect(problemsOf({ AUTH_JWKS_FILE: badJwks, AUTH_JWT_ISSUER: 'i', AUTH_JWT_AUDIENCE: 'a' })).toEqual([
      'AUTH_JWKS_FILE',
    ]);
    expect(
      problemsOf({
        AUTH_JWT_PUBLIC_KEY_FILE: first.certFile.replace('cert.pem', 'jwks.json'),
        AUTH_JWT_ISSUER: 'i',
        AUTH_JWT_AUDIENCE: 'a',
      }),
    ).toEqual(['AUTH_JWT_PUBLIC_KEY_FILE']);
  });

  it('a client CA file without certificates (or a directory) names TLS_CLIENT_CA_FILE; a real one passes', () => {
    const tls = { TLS_CERT_FILE: first.certFile, TLS_KEY_FILE: first.keyFile };
    const garbage = join(first.certFile, '..', 'garbage.pem');
    writeFileSync(garbage, 'not a certificate');
    for (const caFile of [garbage, join(first.certFile, '..'), first.keyFile]) {
      expect(problemsOf({ ...tls, TLS_CLIENT_CA_FILE: caFile })).toEqual(['TLS_CLIENT_CA_FILE']);
    }
    expect(problemsOf({ ...tls, TLS_CLIENT_CA_FILE: second.certFile })).toEqual([]);
  });

  it('a PEM public key must be SPKI and of the kind AUTH_JWT_ALGORITHM verifies with', () => {
    const dir = join(first.certFile, '..');
    const pemOf = (name: string, pem: string) => {
      const path = join(dir, `${name}.pem`);
      writeFileSync(path, pem);
      return path;
    };
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ed = generateKeyPairSync('ed25519');
    const spki = (key: KeyObject) => key.export({ type: 'spki', format: 'pem' }).toString();
    const files = {
      ec: pemOf('ec-public', spki(ec.publicKey)),
      ecPrivate: pemOf('ec-private', ec.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()),
      rsa: pemOf('rsa-public', spki(rsa.publicKey)),
      ed: pemOf('ed-public', spki(ed.publicKey)),
    };
    const problems = (file: string, algorithm: string) =>
      problemsOf({
        AUTH_JWT_PUBLIC_KEY_FILE: file,
        AUTH_JWT_ALGORITHM: algorithm,
        AUTH_JWT_ISSUER: 'i',
        AUTH_JWT_AUDIENCE: 'a',
      });
    for (const [file, algorithm] of [
      [files.ec, 'ES256'],
      [files.rsa, 'RS256'],
      [files.rsa, 'PS256'],
      [files.ed, 'EdDSA'],
    ] as const) {
      expect({ algorithm, problems: problems(file, algorithm) }).toEqual({ algorithm, problems: [] });
    }
    for (const [file, algorithm] of [
      [files.ecPrivate, 'ES256'],
      [files.rsa, 'ES256'],
      [files.ec, 'ES384'],
      [files.ec, 'RS256'],
    ] as const) {
      expect(problems(file, algorithm)).toEqual(['AUTH_JWT_PUBLIC_KEY_FILE']);
    }
  });

  it('a setting that would have no effect is refused, naming it', () => {
    const jwt = { AUTH_JWT_HS256_SECRET: 's'.repeat(32), AUTH_JWT_ISSUER: 'i', AUTH_JWT_AUDIENCE: 'a' };
    expect(problemsOf({ ...jwt, AUTH_JWT_ALGORITHM: 'ES256' })).toEqual(['AUTH_JWT_ALGORITHM']);
    expect(problemsOf({ TLS_CLIENT_SCOPES: 'backend-a=payments:read' })).toEqual(['TLS_CLIENT_SCOPES']);
    expect(problemsOf({ ...POSTGRES, ...jwt, METRICS_PORT: '9464' })).toEqual(['METRICS_PORT']);
    expect(problemsOf({ ...POSTGRES, ...jwt, METRICS_PORT: '9464', METRICS_ENABLED: 'true' })).toEqual([]);
  });

  it('every Kafka problem is reported at once, not only the first', () => {
    const problems = problemsOf({ KAFKA_BROKERS: 'foo', KAFKA_SASL_MECHANISM: 'gssapi', KAFKA_CLIENT_ID: 'a b' });
    expect(problems.sort()).toEqual(
      ['KAFKA_BROKERS', 'KAFKA_CLIENT_ID', 'KAFKA_SASL_MECHANISM', 'KAFKA_SASL_PASSWORD', 'KAFKA_SASL_USERNAME'].sort(),
    );
  });

  it('a number out of range is echoed as given, and at most a screenful', () => {
    expect(() => loadConfig({ MAX_REQUEST_TIMEOUT_MS: '99999999999999999999999' })).toThrow(
      /got 99999999999999999999999$/m,
    );
    expect(() => loadConfig({ PORT: '9'.repeat(5000) })).toThrow(/got 9{24}…$/m);
  });

  it('a list or URL that names nothing is refused, not read as empty or as a default host', () => {
    for (const brokers of [',', ' , ,']) expect(problemsOf({ KAFKA_BROKERS: brokers })).toEqual(['KAFKA_BROKERS']);
    expect(problemsOf({ RATE_LIMIT_ENABLED: 'true', REDIS_URL: 'redis://' })).toEqual(['REDIS_URL']);
    expect(problemsOf({ RATE_LIMIT_ENABLED: 'true', REDIS_URL: 'redis://127.0.0.1:6379' })).toEqual([]);
    // PostgreSQL's Unix socket is named in ?host=.
    const socket = { DATABASE_URL: 'postgres:///ledger?host=/run/postgresql' };
    expect(problemsOf(socket).filter((variable) => variable === 'DATABASE_URL')).toEqual([]);
    expect(problemsOf({ DATABASE_URL: 'postgres:///ledger' })).toContain('DATABASE_URL');
  });
});

describe('loadDatabaseSettings', () => {
  it('needs only the database settings', () => {
    expect(loadDatabaseSettings({ ...POSTGRES, PORT: 'x' })).toMatchObject({ databaseUrl: POSTGRES.DATABASE_URL });
    expect(() => loadDatabaseSettings({ DATABASE_URL: 'mysql://x', DB_POOL_SIZE: '0' })).toThrow(
      /DATABASE_URL[\s\S]*DB_POOL_SIZE/,
    );
  });
});
