/**
 * Expires holds that were neither captured nor voided in time, in bounded batches. Each expiry goes through
 * the ledger like any command, keyed by the payment, so several replicas sweeping at once expire a hold
 * exactly once, and a capture racing the sweeper either wins (the hold is gone) or fails (it expired).
 * Capture and void check the expiry time themselves, so correctness never waits for the sweeper.
 */
import { and, asc, eq, lte } from 'drizzle-orm';
import type { LedgerDb } from '../db/client.js';
import { payments } from '../db/schema.js';
import type { CommandRunner } from './commands.js';

export const SWEEPER_PRINCIPAL = 'system:hold-sweeper';
const BATCH_SIZE = 100;
const MAX_BATCHES_PER_RUN = 20;

/** One run; returns how many holds it expired. */
export async function sweepExpiredHolds(db: LedgerDb, ledger: CommandRunner, now: Date = new Date()): Promise<number> {
  let expired = 0;
  for (let batch = 0; batch < MAX_BATCHES_PER_RUN; batch++) {
    const due = await db
      .select({ id: payments.id })
      .from(payments)
      .where(and(eq(payments.status, 'AUTHORIZED'), lte(payments.expiresAt, now)))
      .orderBy(asc(payments.expiresAt))
      .limit(BATCH_SIZE);
    if (due.length === 0) break;
    const results = await ledger.apply(
      due.map(({ id }) => ({
        kind: 'expireHold' as const,
        principal: SWEEPER_PRINCIPAL,
        idempotencyKey: `expire:${id}`,
        paymentId: id,
      })),
    );
    // A hold captured or voided meanwhile answers FAILED_PRECONDITION: nothing to do, not an error.
    expired += results.filter((result) => result.ok && !result.replayed).length;
    if (due.length < BATCH_SIZE) break;
  }
  return expired;
}
