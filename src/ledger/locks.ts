/**
 * Row locks, always taken in one global order so that transactions cannot deadlock each other:
 * idempotency keys (sorted) → payments (by id) → balances (by account id). ORDER BY is applied before
 * FOR UPDATE locks the rows, so each statement locks in its sort order.
 */
import { and, eq, inArray, isNull, lte } from 'drizzle-orm';
import type { LedgerTx } from '../db/client.js';
import { accountBalances, accounts, payments } from '../db/schema.js';
import type { DeclineReason } from '../domain/records.js';
import { ACCOUNT_COLUMNS } from './queries.js';
import type { AccountState, PaymentState } from './state.js';

export async function lockAccounts(tx: LedgerTx, ids: string[]): Promise<Map<string, AccountState>> {
  const locked = new Map<string, AccountState>();
  const unique = [...new Set(ids)];
  if (unique.length === 0) return locked;
  const rows = await tx
    .select({
      ...ACCOUNT_COLUMNS,
      kind: accounts.kind,
      postedMinor: accountBalances.postedMinor,
      heldMinor: accountBalances.heldMinor,
      pendingSettlementMinor: accountBalances.pendingSettlementMinor,
      version: accountBalances.version,
      updatedAt: accountBalances.updatedAt,
    })
    .from(accountBalances)
    .innerJoin(accounts, eq(accounts.id, accountBalances.accountId))
    .where(inArray(accountBalances.accountId, unique))
    .orderBy(accountBalances.accountId)
    .for('update', { of: accountBalances });
  for (const row of rows) locked.set(row.id, { ...row });
  return locked;
}

type PaymentRow = typeof payments.$inferSelect;

function toState(row: PaymentRow): PaymentState {
  return { ...row, declineReason: row.declineReason as DeclineReason | null, lockedVersion: row.version };
}

export async function lockPayments(tx: LedgerTx, ids: string[]): Promise<Map<string, PaymentState>> {
  const locked = new Map<string, PaymentState>();
  const unique = [...new Set(ids)];
  if (unique.length === 0) return locked;
  const rows = await tx.select().from(payments).where(inArray(payments.id, unique)).orderBy(payments.id).for('update');
  for (const row of rows) locked.set(row.id, toState(row));
  return locked;
}

/**
 * Holds of these payers that expired by `now` and are still AUTHORIZED, at most `limit`, locked. Taken after
 * the balances (out of the global order), so it skips rows another transaction holds instead of waiting:
 * it can never deadlock, and a skipped hold is being expired, captured or voided by its holder anyway.
 */
export async function lockExpiredHolds(
  tx: LedgerTx,
  payerIds: string[],
  now: Date,
  limit: number,
): Promise<Map<string, PaymentState>> {
  const unique = [...new Set(payerIds)];
  if (unique.length === 0) return new Map();
  const rows = await tx
    .select()
    .from(payments)
    .where(
      and(inArray(payments.payerAccountId, unique), eq(payments.status, 'AUTHORIZED'), lte(payments.expiresAt, now)),
    )
    .orderBy(payments.id)
    .limit(limit)
    .for('update', { skipLocked: true });
  return new Map(rows.map((row) => [row.id, toState(row)]));
}

/** Captured, unsettled payments to merchants (optionally one merchant), in id order, at most `limit`, locked. */
export async function lockUnsettledPayments(
  tx: LedgerTx,
  onlyAccountId: string | undefined,
  limit: number,
): Promise<Map<string, PaymentState>> {
  const rows = await tx
    .select()
    .from(payments)
    .where(
      and(
        eq(payments.awaitsSettlement, true),
        isNull(payments.settlementId),
        onlyAccountId ? eq(payments.payeeAccountId, onlyAccountId) : undefined,
      ),
    )
    .orderBy(payments.id)
    .limit(limit)
    .for('update');
  return new Map(rows.map((row) => [row.id, toState(row)]));
}
