/**
 * Keyset-paged reads for the wallet: accounts, payments and refunds. Every listing orders by
 * (created_at, id), so rows that share a timestamp still have one total order, and a page starts strictly
 * after the (created_at, id) of the last row of the previous page: a row inserted meanwhile is never repeated
 * and never makes another row skip. The cursor keeps created_at in microseconds (PostgreSQL's precision),
 * not as a JavaScript Date (milliseconds), so it is exact for any stored timestamp.
 */
import { and, eq, getTableColumns, inArray, type SQL, sql } from 'drizzle-orm';
import { type PgColumn, unionAll } from 'drizzle-orm/pg-core';
import type { LedgerDb } from '../db/client.js';
import { accounts, payments, refunds } from '../db/schema.js';
import type { AccountRecord, DeclineReason, PaymentRecord, PaymentStatus, RefundRecord } from '../domain/records.js';
import { ACCOUNT_COLUMNS } from './queries.js';

/** Where the previous page ended: created_at in microseconds since the epoch, and the row's id. */
export interface Cursor {
  createdAtMicros: bigint;
  id: string;
}

/** A page of rows, each with the cursor that a page starting after it would carry. */
export interface Keyed<T> {
  row: T;
  cursor: Cursor;
}

const microsOf = (column: PgColumn) => sql<string>`(extract(epoch from ${column}) * 1000000)::bigint::text`;

/** `(created_at, id) < cursor` (direction 'desc') or `> cursor` ('asc'), compared exactly in microseconds. */
function after(createdAt: PgColumn, id: PgColumn, cursor: Cursor | undefined, direction: 'asc' | 'desc') {
  if (!cursor) return undefined;
  const at = sql`(timestamptz 'epoch' + ${cursor.createdAtMicros.toString()}::bigint * interval '1 microsecond')`;
  return direction === 'desc'
    ? sql`(${createdAt}, ${id}) < (${at}, ${cursor.id})`
    : sql`(${createdAt}, ${id}) > (${at}, ${cursor.id})`;
}

function order(createdAt: PgColumn, id: PgColumn, direction: 'asc' | 'desc'): SQL[] {
  return direction === 'desc' ? [sql`${createdAt} desc`, sql`${id} desc`] : [sql`${createdAt} asc`, sql`${id} asc`];
}

function keyed<T extends { id: string }>(rows: (T & { micros: string })[]): Keyed<T>[] {
  return rows.map(({ micros, ...row }) => ({
    row: row as unknown as T,
    cursor: { createdAtMicros: BigInt(micros), id: row.id },
  }));
}

/** An owner's customer accounts, oldest first, after `cursor`, at most `limit`. */
export async function listAccountsOfOwner(
  db: LedgerDb,
  ownerRef: string,
  limit: number,
  cursor: Cursor | undefined,
): Promise<Keyed<AccountRecord>[]> {
  const rows = await db
    .select(Object.assign({}, ACCOUNT_COLUMNS, { micros: microsOf(accounts.createdAt) }))
    .from(accounts)
    .where(
      and(
        eq(accounts.ownerRef, ownerRef),
        eq(accounts.ledgerRole, 'USER'),
        after(accounts.createdAt, accounts.id, cursor, 'asc'),
      ),
    )
    .orderBy(...order(accounts.createdAt, accounts.id, 'asc'))
    .limit(limit);
  return keyed(rows);
}

export interface PaymentFilter {
  /** Empty: every status. */
  statuses: PaymentStatus[];
  /** Inclusive lower bound on created_at. */
  createdFrom: Date | undefined;
  /** Exclusive upper bound on created_at. */
  createdBefore: Date | undefined;
}

/**
 * Payments an account made or received, newest first, before `cursor`, at most `limit`. Two index-ordered
 * scans (as payer, as payee), each stopping after `limit` rows, merged: the cost of a page does not grow
 * with the account's history, as an OR over both columns followed by a sort would (PostgreSQL also turns
 * the cursor's row comparison into an index bound, so a deep page costs as little as the first).
 */
export async function listPaymentsOfAccount(
  db: LedgerDb,
  accountId: string,
  filter: PaymentFilter,
  limit: number,
  cursor: Cursor | undefined,
): Promise<Keyed<PaymentRecord>[]> {
  const side = (party: PgColumn) =>
    db
      .select(Object.assign({}, getTableColumns(payments), { micros: microsOf(payments.createdAt) }))
      .from(payments)
      .where(
        and(
          eq(party, accountId),
          filter.statuses.length > 0 ? inArray(payments.status, filter.statuses) : undefined,
          filter.createdFrom
            ? sql`${payments.createdAt} >= ${filter.createdFrom.toISOString()}::timestamptz`
            : undefined,
          filter.createdBefore
            ? sql`${payments.createdAt} < ${filter.createdBefore.toISOString()}::timestamptz`
            : undefined,
          after(payments.createdAt, payments.id, cursor, 'desc'),
        ),
      )
      .orderBy(...order(payments.createdAt, payments.id, 'desc'))
      .limit(limit);
  // A payment never has the same account on both sides (payments_distinct_parties), so no row comes twice.
  const rows = await unionAll(side(payments.payerAccountId), side(payments.payeeAccountId))
    .orderBy(...order(payments.createdAt, payments.id, 'desc'))
    .limit(limit);
  return keyed(rows.map((row) => Object.assign({}, row, { declineReason: row.declineReason as DeclineReason | null })));
}

export async function findRefund(db: LedgerDb, id: string): Promise<RefundRecord | undefined> {
  const [row] = await db.select().from(refunds).where(eq(refunds.id, id));
  return row && Object.assign({}, row, { declineReason: row.declineReason as DeclineReason | null });
}

/** A payment's refunds, newest first, before `cursor`, at most `limit`. */
export async function listRefundsOfPayment(
  db: LedgerDb,
  paymentId: string,
  limit: number,
  cursor: Cursor | undefined,
): Promise<Keyed<RefundRecord>[]> {
  const rows = await db
    .select({
      id: refunds.id,
      paymentId: refunds.paymentId,
      amountMinor: refunds.amountMinor,
      currency: refunds.currency,
      status: refunds.status,
      declineReason: refunds.declineReason,
      reason: refunds.reason,
      createdAt: refunds.createdAt,
      micros: microsOf(refunds.createdAt),
    })
    .from(refunds)
    .where(and(eq(refunds.paymentId, paymentId), after(refunds.createdAt, refunds.id, cursor, 'desc')))
    .orderBy(...order(refunds.createdAt, refunds.id, 'desc'))
    .limit(limit);
  return keyed(rows.map((row) => Object.assign({}, row, { declineReason: row.declineReason as DeclineReason | null })));
}
