/** Reads. Only USER accounts are visible: the ledger's own accounts answer as if they did not exist. */
import { and, desc, eq, lt } from 'drizzle-orm';
import type { LedgerDb } from '../db/client.js';
import { accountBalances, accounts, ledgerEntries, payments } from '../db/schema.js';
import type {
  AccountRecord,
  BalanceRecord,
  DeclineReason,
  LedgerEntryRecord,
  PaymentRecord,
} from '../domain/records.js';

export async function findAccount(db: LedgerDb, id: string): Promise<AccountRecord | undefined> {
  const [row] = await db
    .select({
      id: accounts.id,
      ownerRef: accounts.ownerRef,
      currency: accounts.currency,
      status: accounts.status,
      createdAt: accounts.createdAt,
    })
    .from(accounts)
    .where(and(eq(accounts.id, id), eq(accounts.kind, 'USER')));
  return row;
}

export async function findBalance(db: LedgerDb, accountId: string): Promise<BalanceRecord | undefined> {
  const [row] = await db
    .select({
      accountId: accountBalances.accountId,
      currency: accountBalances.currency,
      postedMinor: accountBalances.postedMinor,
      heldMinor: accountBalances.heldMinor,
      version: accountBalances.version,
      updatedAt: accountBalances.updatedAt,
    })
    .from(accountBalances)
    .innerJoin(accounts, eq(accounts.id, accountBalances.accountId))
    .where(and(eq(accountBalances.accountId, accountId), eq(accounts.kind, 'USER')));
  return row && { ...row, availableMinor: row.postedMinor - row.heldMinor };
}

export async function findPayment(db: LedgerDb, id: string): Promise<PaymentRecord | undefined> {
  const [row] = await db.select().from(payments).where(eq(payments.id, id));
  return row && { ...row, declineReason: row.declineReason as DeclineReason | null };
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
