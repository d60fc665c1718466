/**
 * The ledger's transactions: a bounded retry of the whole transaction after a deadlock or serialization
 * failure, and the one translation of database failures a client can act on into domain errors.
 */
import type { LedgerDb, LedgerTx } from '../db/client.js';
import { isConnectionFailure, isPoolWaitTimeout, isRetryable, SqlState, sqlStateOf } from '../db/errors.js';
import {
  DomainError,
  databasePoolExhausted,
  databaseUnavailable,
  lockWaitTimedOut,
  serviceUnavailable,
} from '../domain/errors.js';
import { metrics } from '../observability/metrics.js';
import { spanEvent } from '../observability/tracing.js';

/** Attempts of one transaction when none is given: the first and two retries. */
export const DEFAULT_MAX_ATTEMPTS = 3;

/** Runs `work` in a transaction, again after a deadlock or serialization failure, a bounded number of times. */
export async function inTransaction<T>(
  db: LedgerDb,
  work: (tx: LedgerTx) => Promise<T>,
  maxAttempts = DEFAULT_MAX_ATTEMPTS,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction(work);
    } catch (error) {
      if (isRetryable(error) && attempt < maxAttempts) {
        metrics.ledgerRetry();
        spanEvent('retry', { attempt, 'db.sql_state': sqlStateOf(error) ?? '' });
        continue;
      }
      throw translateDatabaseError(error);
    }
  }
}

/** Database failures a client can act on become domain errors; anything else stays internal. */
export function translateDatabaseError(error: unknown): unknown {
  if (error instanceof DomainError) return error;
  // Waited too long for a pool connection: nothing ran, so the same request may safely come again.
  if (isPoolWaitTimeout(error)) {
    return databasePoolExhausted();
  }
  switch (sqlStateOf(error)) {
    case SqlState.lockNotAvailable:
      return lockWaitTimedOut();
    case SqlState.queryCanceled:
      return serviceUnavailable('LEDGER_BUSY', 'the ledger is busy; retry with the same idempotency key');
    case SqlState.serializationFailure:
    case SqlState.deadlockDetected:
      return serviceUnavailable('LEDGER_CONTENDED', 'the ledger is contended; retry with the same idempotency key');
    default:
      // The connection died or the database is going down: the transaction may even have committed (its
      // COMMIT sent, the answer lost), so the client must not be told it failed, only to retry with its key.
      return isConnectionFailure(error) ? databaseUnavailable() : error;
  }
}
