/** Reads behind WatchAccount: the balance versions of watched accounts, and the entries between versions. */
import { and, asc, eq, gt, inArray, lte } from 'drizzle-orm';
import type { LedgerDb } from '../db/client.js';
import { accountBalances, ledgerEntries } from '../db/schema.js';
import type { LedgerEntryRecord } from '../domain/records.js';

/** The current balance version of each of `accountIds` (one indexed query, whatever their number). */
export async function balanceVersionsOf(db: LedgerDb, accountIds: string[]): Promise<Map<string, bigint>> {
  if (accountIds.length === 0) return new Map();
  const rows = await db
    .select({ accountId: accountBalances.accountId, version: accountBalances.version })
    .from(accountBalances)
    .where(inArray(accountBalances.accountId, accountIds));
  return new Map(rows.map((row) => [row.accountId, row.version]));
}

/** An account's entries with afterVersion < version ≤ upToVersion, oldest first, at most `limit`. */
export async function entriesBetween(
  db: LedgerDb,
  accountId: string,
  afterVersion: bigint,
  upToVersion: bigint,
  limit: number,
): Promise<LedgerEntryRecord[]> {
  return db
    .select()
    .from(ledgerEntries)
    .where(
      and(
        eq(ledgerEntries.accountId, accountId),
        gt(ledgerEntries.accountVersion, afterVersion),
        lte(ledgerEntries.accountVersion, upToVersion),
      ),
    )
    .orderBy(asc(ledgerEntries.accountVersion))
    .limit(limit);
}
