/**
 * Deletes idempotency keys past their retention, in bounded batches. A retry after that is a new request,
 * as with Stripe's 24-hour keys.
 */
import type { LedgerDb } from '../db/client.js';
import { reapExpiredKeys } from './idempotency-store.js';

const BATCH_SIZE = 1_000;
const MAX_BATCHES_PER_RUN = 20;

/** One run: deletes up to BATCH_SIZE × MAX_BATCHES_PER_RUN expired keys; returns how many. */
export async function reapOnce(db: LedgerDb, now: Date = new Date()): Promise<number> {
  let total = 0;
  for (let batch = 0; batch < MAX_BATCHES_PER_RUN; batch++) {
    const deleted = await db.transaction((tx) => reapExpiredKeys(tx, now, BATCH_SIZE));
    total += deleted;
    if (deleted < BATCH_SIZE) break;
  }
  return total;
}
