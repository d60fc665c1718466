/** Reads. Only USER accounts are visible: the ledger's own accounts answer as if they did not exist. */
import { and, asc, desc, eq, inArray, lt } from 'drizzle-orm';
import type { LedgerDb } from '../db/client.js';
import { accountBalances, accounts, ledgerEntries, payments, settlements } from '../db/schema.js';
import type {
  AccountRecord,
  AccountStatus,
  BalanceRecord,
  DeclineReason,
  LedgerEntryRecord,
  PaymentRecord,
  SettlementRecord,
} from '../domain/records.js';

/** The columns of an AccountRecord, shared by every read that returns one (and the row locks). */
export const ACCOUNT_COLUMNS = {
  id: accounts.id,
  ownerRef: accounts.ownerRef,
  currency: accounts.currency,
  status: accounts.status,
  type: accounts.type,
  createdAt: accounts.createdAt,
};

export async function findAccount(db: LedgerDb, id: string): Promise<AccountRecord | undefined> {
  const [row] = await db
    .select(ACCOUNT_COLUMNS)
    .from(accounts)
    .where(and(eq(accounts.id, id), eq(accounts.ledgerRole, 'USER')));
  return row;
}

/** The oldest customer account of an owner in a currency, if any. */
export async function findAccountByOwner(
  db: LedgerDb,
  ownerRef: string,
  currency: string,
): Promise<AccountRecord | undefined> {
  const [row] = await db
    .select(ACCOUNT_COLUMNS)
    .from(accounts)
    .where(and(eq(accounts.ownerRef, ownerRef), eq(accounts.currency, currency), eq(accounts.ledgerRole, 'USER')))
    .orderBy(asc(accounts.createdAt))
    .limit(1);
  return row;
}

/**
 * A customer account's balance with its owner and status, read by one statement: the status is the one at
 * the balance's version (a status change bumps the version), never a later one.
 */
export async function findBalance(
  db: LedgerDb,
  accountId: string,
): Promise<(BalanceRecord & { ownerRef: string; status: AccountStatus }) | undefined> {
  const [row] = await db
    .select({
      ownerRef: accounts.ownerRef,
      status: accounts.status,
      accountId: accountBalances.accountId,
      currency: accountBalances.currency,
      postedMinor: accountBalances.postedMinor,
      heldMinor: accountBalances.heldMinor,
      pendingSettlementMinor: accountBalances.pendingSettlementMinor,
      version: accountBalances.version,
      updatedAt: accountBalances.updatedAt,
    })
    .from(accountBalances)
    .innerJoin(accounts, eq(accounts.id, accountBalances.accountId))
    .where(and(eq(accountBalances.accountId, accountId), eq(accounts.ledgerRole, 'USER')));
  return (
    row && Object.assign({}, row, { availableMinor: row.postedMinor - row.heldMinor - row.pendingSettlementMinor })
  );
}

/** The owner references of the given accounts (customer accounts only). */
export async function ownerRefsOf(db: LedgerDb, accountIds: string[]): Promise<string[]> {
  const rows = await db
    .select({ ownerRef: accounts.ownerRef })
    .from(accounts)
    .where(and(inArray(accounts.id, accountIds), eq(accounts.ledgerRole, 'USER')));
  return rows.map((row) => row.ownerRef);
}

export async function findPayment(db: LedgerDb, id: string): Promise<PaymentRecord | undefined> {
  const [row] = await db.select().from(payments).where(eq(payments.id, id));
  return row && Object.assign({}, row, { declineReason: row.declineReason as DeclineReason | null });
}

/**
 * One page of an account's entries, newest first, strictly below `beforeVersion` when given. Versions are
 * assigned under the balance row lock, so a later page can never miss an entry that committed late.
 */
export async function listEntries(
  db: LedgerDb,
  accountId: string,
  limit: number,
  beforeVersion: bigint | undefined,
): Promise<LedgerEntryRecord[]> {
  const scope = eq(ledgerEntries.accountId, accountId);
  return db
    .select()
    .from(ledgerEntries)
    .where(beforeVersion === undefined ? scope : and(scope, lt(ledgerEntries.accountVersion, beforeVersion)))
    .orderBy(desc(ledgerEntries.accountVersion))
    .limit(limit);
}

/** Attaches the ids of the payments each settlement covered, in one query for the whole page. */
async function withPaymentIds(db: LedgerDb, rows: (typeof settlements.$inferSelect)[]): Promise<SettlementRecord[]> {
  if (rows.length === 0) return [];
  const covered = await db
    .select({ id: payments.id, settlementId: payments.settlementId })
    .from(payments)
    .where(
      inArray(
        payments.settlementId,
        rows.map((row) => row.id),
      ),
    )
    .orderBy(asc(payments.id));
  const idsBySettlement = new Map<string, string[]>(rows.map((row) => [row.id, []]));
  for (const payment of covered) idsBySettlement.get(payment.settlementId ?? '')?.push(payment.id);
  return rows.map((row) => Object.assign({}, row, { paymentIds: idsBySettlement.get(row.id) ?? [] }));
}

export async function findSettlement(db: LedgerDb, id: string): Promise<SettlementRecord | undefined> {
  const rows = await db.select().from(settlements).where(eq(settlements.id, id));
  const [settlement] = await withPaymentIds(db, rows);
  return settlement;
}

/** Newest first (settlement ids sort by creation time), strictly before `beforeId` when given. */
export async function listSettlements(
  db: LedgerDb,
  accountId: string | undefined,
  limit: number,
  beforeId: string | undefined,
): Promise<SettlementRecord[]> {
  const rows = await db
    .select()
    .from(settlements)
    .where(
      and(
        accountId ? eq(settlements.accountId, accountId) : undefined,
        beforeId ? lt(settlements.id, beforeId) : undefined,
      ),
    )
    .orderBy(desc(settlements.id))
    .limit(limit);
  return withPaymentIds(db, rows);
}
