/** Pure helpers: currencies, ids, stored outcomes, page tokens, idempotency parameters, config. */
import { describe, expect, it } from 'vitest';
import { decodePageToken, encodePageToken } from '../../src/app/page-token.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { isKnownCurrency, maxPaymentMinorFor, minorUnitExponent } from '../../src/domain/currency.js';
import { hasIdShape, newId } from '../../src/domain/ids.js';
import { firstDifference, idempotencyParams } from '../../src/ledger/commands.js';
import { decodeOutcome, encodeOutcome } from '../../src/ledger/stored-outcome.js';

describe('currencies', () => {
  it('knows the minor-unit exponent of each currency', () => {
    expect(minorUnitExponent('JPY')).toBe(0);
    expect(minorUnitExponent('USD')).toBe(2);
    expect(minorUnitExponent('KWD')).toBe(3);
    expect(minorUnitExponent('CLF')).toBe(4);
  });

  it('rejects unknown, withdrawn and lower-case codes', () => {
    for (const code of ['XXX', 'DEM', 'usd', 'US', '']) expect(isKnownCurrency(code)).toBe(false);
  });

  it('scales the payment limit by each currency exponent', () => {
    const max = maxPaymentMinorFor(1_000n);
    expect(max('JPY')).toBe(1_000n);
    expect(max('USD')).toBe(100_000n);
    expect(max('KWD')).toBe(1_000_000n);
  });
});

describe('ids', () => {
  it('are prefixed, well-formed, unique and sort by creation time', () => {
    const earlier = newId('pay', 1_700_000_000_000);
    const later = newId('pay', 1_700_000_000_001);
    expect(hasIdShape('pay', earlier)).toBe(true);
    expect(hasIdShape('acct', earlier)).toBe(false);
    expect(earlier < later).toBe(true);
    expect(new Set(Array.from({ length: 1_000 }, () => newId('acct'))).size).toBe(1_000);
  });

  it('refuses look-alikes', () => {
    expect(hasIdShape('acct', 'acct_')).toBe(false);
    expect(hasIdShape('acct', `acct_${'i'.repeat(26)}`)).toBe(false);
    expect(hasIdShape('acct', `acct_${'0'.repeat(27)}`)).toBe(false);
  });
});

describe('stored outcomes', () => {
  it('round-trip bigints and dates exactly through JSON', () => {
    const outcome = {
      kind: 'deposit' as const,
      deposit: {
        id: 'dep_1',
        accountId: 'acct_1',
        amountMinor: 9_007_199_254_740_993n,
        currency: 'USD',
        createdAt: new Date(1),
      },
      balance: {
        accountId: 'acct_1',
        currency: 'USD',
        postedMinor: 9_007_199_254_740_993n,
        heldMinor: 0n,
        pendingSettlementMinor: 0n,
        availableMinor: 9_007_199_254_740_993n,
        version: 3n,
        updatedAt: new Date(2),
      },
    };
    const stored = JSON.parse(JSON.stringify(encodeOutcome(outcome)));
    expect(decodeOutcome(stored)).toEqual(outcome);
  });
});

describe('page tokens', () => {
  it('round-trip for the same account and are refused for another', () => {
    const digits = /^\d+$/;
    const token = encodePageToken('acct_a', '42');
    expect(decodePageToken(token, 'acct_a', digits)).toBe('42');
    expect(() => decodePageToken(token, 'acct_b', digits)).toThrow(/page_token/);
    expect(() => decodePageToken(encodePageToken('acct_a', 'x'), 'acct_a', digits)).toThrow(/page_token/);
    expect(() => decodePageToken('%%%', 'acct_a', digits)).toThrow(/page_token/);
    expect(decodePageToken('', 'acct_a', digits)).toBeUndefined();
  });
});

describe('idempotency parameters', () => {
  it('name the first field that differs, in request order', () => {
    const base = {
      kind: 'authorizePayment' as const,
      principal: 'p',
      idempotencyKey: 'k',
      payerAccountId: 'a',
      payeeAccountId: 'b',
      amountMinor: 5n,
      currency: 'USD',
      description: '',
      captureMode: 'AUTOMATIC' as const,
      holdDurationMs: 0,
    };
    const stored = idempotencyParams(base);
    expect(firstDifference(stored, idempotencyParams({ ...base, idempotencyKey: 'other' }))).toBeUndefined();
    expect(firstDifference(stored, idempotencyParams({ ...base, amountMinor: 6n, description: 'x' }))).toBe(
      'amount.amount_minor',
    );
  });
});

describe('config', () => {
  it('defaults to the embedded database on port 8080', () => {
    const config = loadConfig({});
    expect(config.port).toBe(8080);
    expect(config.databaseUrl).toBeUndefined();
    expect(config.seedDemoData).toBe(true);
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ TLS_CERT_FILE: 'package.json' }, 'TLS_KEY_FILE'],
    [{ TLS_CERT_FILE: 'missing.pem', TLS_KEY_FILE: 'package.json' }, 'TLS_CERT_FILE'],
    [{ DATABASE_URL: 'postgres://x/y' }, 'AUTH_JWKS_FILE'],
    [{ AUTH_JWT_HS256_SECRET: 'x'.repeat(40) }, 'AUTH_JWT_ISSUER'],
    [{ TLS_CLIENT_SCOPES: 'backend=payments:fly' }, 'TLS_CLIENT_SCOPES'],
    [{ CORS_ORIGINS: 'not an origin' }, 'CORS_ORIGINS'],
    [{ SEED_DEMO_DATA: 'yes please' }, 'SEED_DEMO_DATA'],
  ])('refuses %o naming %s', (env, variable) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(variable);
  });
});

describe('method rules', () => {
  it('cover every RPC the server serves, so none is open or closed by accident', async () => {
    const { METHOD_RULES } = await import('../../src/auth/policy.js');
    const services = (await import('../../src/contract.js')).LEDGER_SERVICES;
    const served = services.flatMap((service) => service.methods.map((method) => `${service.typeName}/${method.name}`));
    expect(Object.keys(METHOD_RULES).sort()).toEqual(served.sort());
  });
});

describe('database failures a client can act on', () => {
  it('reports a lock wait timeout as ABORTED without blaming an idempotency key', async () => {
    const { translateDatabaseError } = await import('../../src/ledger/transaction.js');
    const { DomainError } = await import('../../src/domain/errors.js');
    const translated = translateDatabaseError({ message: 'Failed query', cause: { code: '55P03' } });
    expect(translated).toBeInstanceOf(DomainError);
    expect((translated as InstanceType<typeof DomainError>).kind).toBe('concurrent_request');
    expect((translated as InstanceType<typeof DomainError>).reason).toBe('LOCK_WAIT_TIMEOUT');
    const unknown = new Error('boom');
    expect(translateDatabaseError(unknown)).toBe(unknown);
  });
});
