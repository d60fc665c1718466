/**
 * A database that goes away while a request runs is UNAVAILABLE for the client (retry, with the same
 * idempotency key for a mutation), never INTERNAL: a COMMIT whose answer was lost may have happened.
 * The errors below are the shapes node-postgres and Drizzle produce, as seen while PostgreSQL restarted
 * under load (test/crash-recovery.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { isConnectionFailure } from '../../src/db/errors.js';
import { DomainError } from '../../src/domain/errors.js';
import { translateDatabaseError } from '../../src/ledger/transaction.js';

/** What node-postgres throws for a server error: an Error with the SQLSTATE as `code`. */
function pgError(message: string, code?: string): Error {
  return Object.assign(new Error(message), code === undefined ? {} : { code });
}

/** Drizzle wraps the driver's error, keeping it as `cause`. */
function drizzleError(query: string, cause: Error): Error {
  return new Error(`Failed query: ${query}\nparams: `, { cause });
}

describe('a lost or refused database connection', () => {
  it.each([
    [
      'administrator shut the session down',
      drizzleError('begin', pgError('terminating connection due to administrator command', '57P01')),
    ],
    ['server shutting down or starting', pgError('the database system is shutting down', '57P03')],
    ['too many connections', pgError('sorry, too many clients already', '53300')],
    ['connection dropped mid-query', pgError('Connection terminated unexpectedly')],
    [
      'rollback on a broken client',
      drizzleError('rollback', pgError('Client has encountered a connection error and is not queryable')),
    ],
    ['refused', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })],
    ['connection exception class', pgError('connection failure', '08006')],
    ['the database was dropped', pgError('database "ledger" does not exist', '3D000')],
    ['the role was refused', pgError('password authentication failed for user "ledger"', '28P01')],
    ['out of disk', pgError('could not extend file: No space left on device', '53100')],
    ['a standby after failover', pgError('cannot execute INSERT in a read-only transaction', '25006')],
  ])('%s is UNAVAILABLE', (_what, error) => {
    expect(isConnectionFailure(error)).toBe(true);
    const translated = translateDatabaseError(error);
    expect(translated).toBeInstanceOf(DomainError);
    expect((translated as DomainError).kind).toBe('unavailable');
    expect((translated as DomainError).reason).toBe('DATABASE_UNAVAILABLE');
  });
});

describe('anything else', () => {
  it.each([
    ['a syntax error (a bug)', pgError('syntax error at or near "selec"', '42601')],
    ['a check constraint (a bug)', drizzleError('update', pgError('violates check constraint', '23514'))],
    ['a plain exception', new Error('undefined is not a function')],
  ])('%s stays internal', (_what, error) => {
    expect(isConnectionFailure(error)).toBe(false);
    expect(translateDatabaseError(error)).toBe(error);
  });
});
