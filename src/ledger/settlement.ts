/**
 * Batch settlement runs. One run at a time across every replica: the run's transaction holds a PostgreSQL
 * advisory lock. The scheduled runner only tries it (another replica is already settling); an on-demand run
 * waits for it (bounded by lock_timeout). Payment rows are locked too, so even without the advisory lock a
 * payment could not be settled twice.
 */
import { sql } from 'drizzle-orm';
import { AdvisoryLock } from '../db/advisory-locks.js';
import type { LedgerDb, LedgerTx } from '../db/client.js';
import { invariant } from '../domain/assert.js';
import { throwIfPastDeadline } from '../domain/errors.js';
import type { SettlementRecord } from '../domain/records.js';
import { lockAccounts, lockUnsettledPayments } from './locks.js';
import { planSettlement } from './plan-settlement.js';
import { emptyEffects, type PaymentState, type PlanContext } from './state.js';
import { inTransaction } from './transaction.js';
import { writeEffects } from './writes.js';

/** Bounds one run's transaction; what is left is settled by the next run. */
export const MAX_PAYMENTS_PER_RUN = 20_000;

export interface SettlementRunOptions {
  /** Settle only this merchant account. */
  accountId?: string;
  /** true: give up at once if another run holds the lock (the scheduler); false: wait for it. */
  skipIfBusy: boolean;
  now?: Date;
  /** A request's deadline: past it, the run is not started, or rolled back before it commits. */
  signal?: AbortSignal;
}

/** Returns the settlements made, or undefined when skipIfBusy and another run was in progress. */
export async function runSettlement(
  db: LedgerDb,
  options: SettlementRunOptions,
): Promise<SettlementRecord[] | undefined> {
  throwIfPastDeadline(options.signal);
  return inTransaction(db, async (tx) => {
    if (!(await takeRunLock(tx, options.skipIfBusy))) return undefined;
    // Payments first, then balances, each in one statement in id order: the same global lock order as every
    // other ledger transaction, so a run never deadlocks with a capture or refund.
    const unsettled = await lockUnsettledPayments(tx, options.accountId, MAX_PAYMENTS_PER_RUN);
    const byMerchant = new Map<string, PaymentState[]>();
    for (const payment of unsettled.values()) {
      const group = byMerchant.get(payment.payeeAccountId);
      if (group) group.push(payment);
      else byMerchant.set(payment.payeeAccountId, [payment]);
    }
    const accounts = await lockAccounts(tx, [...byMerchant.keys()]);
    const context: PlanContext = {
      now: options.now ?? new Date(),
      maxPaymentMinor: () => 0n,
      accounts,
      payments: unsettled,
      effects: emptyEffects(),
    };
    const made: SettlementRecord[] = [];
    for (const [accountId, payments] of [...byMerchant].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const merchant = accounts.get(accountId);
      invariant(merchant, `merchant account ${accountId} vanished`);
      const settlement = planSettlement(context, merchant, payments);
      if (settlement) made.push(settlement);
    }
    // Waiting for the run lock can outlast the deadline: the last moment to drop the run is before its writes.
    throwIfPastDeadline(options.signal);
    await writeEffects(tx, context.effects, accounts);
    return made;
  });
}

async function takeRunLock(tx: LedgerTx, skipIfBusy: boolean): Promise<boolean> {
  if (!skipIfBusy) {
    await tx.execute(sql`select pg_advisory_xact_lock(${AdvisoryLock.settlementRun})`);
    return true;
  }
  const result = (await tx.execute(
    sql`select pg_try_advisory_xact_lock(${AdvisoryLock.settlementRun}) as locked`,
  )) as unknown as {
    rows: { locked: boolean }[];
  };
  return result.rows[0]?.locked === true;
}
