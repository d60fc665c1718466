/**
 * Row locks, always taken in one global order so that transactions cannot deadlock each other:
 * idempotency keys (sorted) → payments (by id) → balances with their accounts (by account id). ORDER BY is
 * applied before FOR UPDATE locks the rows, so each statement locks in its sort order. The hot path's locks
 * are prepared statements with the ids as one array parameter (db/prepared.ts).
 */
import { and, eq, inArray, isNull, lte } from 'drizzle-orm';
import type { LedgerTx } from '../db/client.js';
import { type PreparedShape, runPrepared, toBigInt, toDate } from '../db/prepared.js';
import { payments } from '../db/schema.js';
import type { DeclineReason } from '../domain/records.js';
import {
  CLAIM_KEYS_SQL,
  claimValues,
  idempotencyKeyOf,
  type KeyClaim,
  type StoredKey,
  sortedClaims,
  storedOutcomesOfTaken,
} from './idempotency-store.js';
import type { AccountState, LedgerRole, PaymentState } from './state.js';

/**
 * Locks the account rows as well as the balances. A statement that waits for a balance lock re-reads the
 * balance once it gets it (READ COMMITTED), but would keep any joined row it does not lock as its first
 * snapshot saw it: a status change committed while it waited (freeze, close: they update the account and bump the
 * balance under its lock) would be planned against as if it had not happened. NO KEY UPDATE is enough for
 * that, and does not conflict with the key-share locks that inserts referencing an account take.
 * Source: PostgreSQL manual, 13.2.1 (Read Committed Isolation Level).
 */
const LOCK_ACCOUNTS_SQL = (idsParam: string) => `select a.id, a.owner_ref, a.currency, a.status, a.type, a.kind,
      a.created_at, b.posted_minor, b.held_minor, b.pending_settlement_minor, b.version, b.updated_at
    from account_balances b join accounts a on a.id = b.account_id
    where b.account_id = any(${idsParam}::text[])
    order by b.account_id
    for update of b for no key update of a`;

const LOCK_ACCOUNTS: PreparedShape = { name: 'ledger_lock_accounts', text: LOCK_ACCOUNTS_SQL('$1') };

/**
 * The keys' claim and the balances' locks in one statement, one round trip less per batch: the claim's CTE is
 * read first (UNION ALL reads its branches in order), so keys are still locked before balances. Key rows carry
 * the principal in `id` and the key in `owner_ref`, the other columns null.
 */
const CLAIM_KEYS_AND_LOCK_ACCOUNTS: PreparedShape = {
  name: 'ledger_claim_keys_lock_accounts',
  text: `with claimed as (${CLAIM_KEYS_SQL}),
    locked as (${LOCK_ACCOUNTS_SQL('$7')})
    select true as is_key, principal as id, idempotency_key as owner_ref, null::text as currency, null::text as status,
      null::text as type, null::text as kind, null::timestamptz as created_at, null::bigint as posted_minor,
      null::bigint as held_minor, null::bigint as pending_settlement_minor, null::bigint as version,
      null::timestamptz as updated_at
    from claimed
    union all
    select false, * from locked`,
};

interface AccountRow {
  id: string;
  owner_ref: string;
  currency: string;
  status: AccountState['status'];
  type: AccountState['type'];
  kind: LedgerRole;
  created_at: unknown;
  posted_minor: unknown;
  held_minor: unknown;
  pending_settlement_minor: unknown;
  version: unknown;
  updated_at: unknown;
}

function accountStateOf(row: AccountRow): AccountState {
  return {
    id: row.id,
    ownerRef: row.owner_ref,
    currency: row.currency,
    status: row.status,
    type: row.type,
    ledgerRole: row.kind,
    createdAt: toDate(row.created_at),
    postedMinor: toBigInt(row.posted_minor),
    heldMinor: toBigInt(row.held_minor),
    pendingSettlementMinor: toBigInt(row.pending_settlement_minor),
    version: toBigInt(row.version),
    updatedAt: toDate(row.updated_at),
  };
}

/**
 * Locks the balance rows (FOR UPDATE) and account rows (FOR NO KEY UPDATE) of these ids, in id order: the
 * one global lock order that keeps concurrent transactions from deadlocking. Returns them by id; an id that
 * does not exist is silently left out (the plan answers NOT_FOUND for it). Duplicates are locked once.
 */
export async function lockAccounts(tx: LedgerTx, ids: string[]): Promise<Map<string, AccountState>> {
  const unique = [...new Set(ids)];
  if (unique.length === 0) return new Map();
  const rows = await runPrepared<AccountRow>(tx, LOCK_ACCOUNTS, [unique]);
  return new Map(rows.map((row) => [row.id, accountStateOf(row)]));
}

/**
 * claimKeys and lockAccounts in one round trip, for lists whose accounts are known before their keys are
 * claimed (no command acts on an existing payment). Accounts of commands whose key turns out to be taken are
 * locked too, harmlessly. Returns what claimKeys and lockAccounts return.
 */
export async function claimKeysAndLockAccounts(
  tx: LedgerTx,
  claims: KeyClaim[],
  accountIds: string[],
  now: Date,
  retentionMs: number,
): Promise<{ claimed: Set<string>; existing: Map<string, StoredKey>; accounts: Map<string, AccountState> }> {
  const sorted = sortedClaims(claims);
  const rows = await runPrepared<AccountRow & { is_key: boolean }>(tx, CLAIM_KEYS_AND_LOCK_ACCOUNTS, [
    ...claimValues(sorted, now, retentionMs),
    [...new Set(accountIds)],
  ]);
  const claimed = new Set<string>();
  const accounts = new Map<string, AccountState>();
  for (const row of rows) {
    if (row.is_key) claimed.add(idempotencyKeyOf(row.id, row.owner_ref));
    else accounts.set(row.id, accountStateOf(row));
  }
  return { claimed, existing: await storedOutcomesOfTaken(tx, sorted, claimed), accounts };
}

type PaymentRow = typeof payments.$inferSelect;

function toState(row: PaymentRow): PaymentState {
  return Object.assign({}, row, {
    declineReason: row.declineReason as DeclineReason | null,
    lockedVersion: row.version,
  });
}

const LOCK_PAYMENTS: PreparedShape = {
  name: 'ledger_lock_payments',
  text: `select id, payer_account_id, payee_account_id, amount_minor, currency, status, decline_reason, description,
      capture_mode, captured_minor, refunded_minor, expires_at, awaits_settlement, settlement_id, version,
      created_at, updated_at
    from payments where id = any($1::text[]) order by id for update`,
};

interface PaymentDbRow {
  id: string;
  payer_account_id: string;
  payee_account_id: string;
  amount_minor: unknown;
  currency: string;
  status: PaymentRow['status'];
  decline_reason: string | null;
  description: string;
  capture_mode: PaymentRow['captureMode'];
  captured_minor: unknown;
  refunded_minor: unknown;
  expires_at: unknown;
  awaits_settlement: boolean;
  settlement_id: string | null;
  version: number;
  created_at: unknown;
  updated_at: unknown;
}

/**
 * Locks (FOR UPDATE) the payments with these ids, in id order, before their accounts are locked. Returns
 * them by id; an id that does not exist is silently left out (the plan answers NOT_FOUND).
 */
export async function lockPayments(tx: LedgerTx, ids: string[]): Promise<Map<string, PaymentState>> {
  const locked = new Map<string, PaymentState>();
  const unique = [...new Set(ids)];
  if (unique.length === 0) return locked;
  const rows = await runPrepared<PaymentDbRow>(tx, LOCK_PAYMENTS, [unique]);
  for (const row of rows) {
    locked.set(
      row.id,
      toState({
        id: row.id,
        payerAccountId: row.payer_account_id,
        payeeAccountId: row.payee_account_id,
        amountMinor: toBigInt(row.amount_minor),
        currency: row.currency,
        status: row.status,
        declineReason: row.decline_reason,
        description: row.description,
        captureMode: row.capture_mode,
        capturedMinor: toBigInt(row.captured_minor),
        refundedMinor: toBigInt(row.refunded_minor),
        expiresAt: row.expires_at === null ? null : toDate(row.expires_at),
        awaitsSettlement: row.awaits_settlement,
        settlementId: row.settlement_id,
        version: Number(row.version),
        createdAt: toDate(row.created_at),
        updatedAt: toDate(row.updated_at),
      }),
    );
  }
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
