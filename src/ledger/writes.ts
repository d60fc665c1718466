/**
 * Flushes a plan's effects in ONE statement: every insert and update is a data-modifying CTE of a single
 * WITH, whatever the number of commands, so a payment costs one round trip for all its writes (the round
 * trip, not the rows, is what a transaction pays for on a hot balance).
 *
 * PostgreSQL runs all sub-statements against the same snapshot, so no part may depend on another's
 * writes: new accounts get their balance rows with final values (they are never also in the UPDATE), and
 * foreign keys between parts are checked when the statement ends.
 */
import { type SQL, sql } from 'drizzle-orm';
import type { LedgerTx } from '../db/client.js';
import {
  accountBalances,
  accounts,
  deposits,
  ledgerEntries,
  outboxEvents,
  payments,
  payouts,
  refunds,
  settlements,
} from '../db/schema.js';
import { invariant } from '../domain/assert.js';
import { encodeEvent } from '../events/domain-events.js';
import { currentTraceparent } from '../observability/tracing.js';
import type { AccountState, Effects } from './state.js';

/**
 * Writes `effects` and the caller's `extraParts` (the idempotency store's) in one statement, then checks the
 * version-guarded payment update touched every changed payment. Throws a plain Error (a broken invariant,
 * never a client's fault) if it did not; database errors propagate for the caller's retry.
 */
export async function writeEffects(
  tx: LedgerTx,
  effects: Effects,
  lockedAccounts: Map<string, AccountState>,
  extraParts: SQL[] = [],
): Promise<void> {
  const parts = [...effectParts(tx, effects, lockedAccounts), ...extraParts];
  const changed = [...effects.changedPayments.values()];
  const guarded = paymentUpdate(effects);
  if (parts.length === 0 && !guarded) return;
  const ctes = parts.map((part, index) => sql`${sql.raw(`w${index}`)} as (${part})`);
  if (guarded) ctes.push(sql`changed_payments as (${guarded})`);
  const result = (await tx.execute(sql`
    with ${sql.join(ctes, sql`, `)}
    select ${guarded ? sql`(select count(*) from changed_payments)` : sql`0`}::int as changed_payments`)) as unknown as {
    rows: { changed_payments: number }[];
  };
  const touched = result.rows[0]?.changed_payments ?? 0;
  invariant(touched === changed.length, `guarded payment update touched ${touched} of ${changed.length} rows`);
  for (const payment of changed) payment.lockedVersion = payment.version;
}

/** One insert or update per kind of effect present, in a fixed order; the guarded payment update is apart. */
function effectParts(tx: LedgerTx, effects: Effects, lockedAccounts: Map<string, AccountState>): SQL[] {
  const parts: SQL[] = newAccountParts(tx, effects);
  if (effects.newPayments.length > 0) parts.push(tx.insert(payments).values(effects.newPayments).getSQL());
  if (effects.settlements.length > 0) {
    parts.push(
      tx
        .insert(settlements)
        .values(effects.settlements.map(({ paymentIds: _ids, ...settlement }) => settlement))
        .getSQL(),
    );
  }
  if (effects.deposits.length > 0) parts.push(tx.insert(deposits).values(effects.deposits).getSQL());
  if (effects.refunds.length > 0) parts.push(tx.insert(refunds).values(effects.refunds).getSQL());
  if (effects.payouts.length > 0) parts.push(tx.insert(payouts).values(effects.payouts).getSQL());
  const statuses = accountStatusUpdate(effects, lockedAccounts);
  if (statuses) parts.push(statuses);
  if (effects.entries.length > 0) parts.push(tx.insert(ledgerEntries).values(effects.entries).getSQL());
  const balances = balanceUpdate(effects, lockedAccounts);
  if (balances) parts.push(balances);
  if (effects.events.length > 0) parts.push(outboxInsert(tx, effects));
  return parts;
}

/** New accounts with their balance rows, which carry final values (never also in the balance UPDATE). */
function newAccountParts(tx: LedgerTx, effects: Effects): SQL[] {
  if (effects.newAccounts.length === 0) return [];
  return [
    tx
      .insert(accounts)
      .values(
        effects.newAccounts.map((state) => ({
          id: state.id,
          ownerRef: state.ownerRef,
          currency: state.currency,
          status: state.status,
          type: state.type,
          ledgerRole: state.ledgerRole,
          createdAt: state.createdAt,
        })),
      )
      .getSQL(),
    tx
      .insert(accountBalances)
      .values(
        effects.newAccounts.map((state) => ({
          accountId: state.id,
          currency: state.currency,
          postedMinor: state.postedMinor,
          heldMinor: state.heldMinor,
          pendingSettlementMinor: state.pendingSettlementMinor,
          version: state.version,
          allowNegative: state.ledgerRole === 'SYSTEM',
          updatedAt: state.updatedAt,
        })),
      )
      .getSQL(),
  ];
}

/** The transactional outbox: each event with the trace context of the request that caused it. */
function outboxInsert(tx: LedgerTx, effects: Effects): SQL {
  return tx
    .insert(outboxEvents)
    .values(
      effects.events.map((event) => ({
        eventId: event.eventId,
        eventType: event.type,
        aggregateType: event.aggregateType,
        aggregateId: event.aggregateId,
        aggregateSeq: event.aggregateSeq,
        payload: encodeEvent(event),
        createdAt: event.occurredAt,
        traceContext: event.origin?.traceparent ?? currentTraceparent() ?? null,
      })),
    )
    .getSQL();
}

/**
 * Guarded state changes: each row is updated only if it still has the version it was locked with, and the
 * statement must touch every row it names. Under the row lock this always holds; if it ever did not, the
 * whole transaction rolls back rather than write over a change it did not see.
 */
function paymentUpdate(effects: Effects): SQL | undefined {
  const changed = [...effects.changedPayments.values()];
  if (changed.length === 0) return undefined;
  const rows = changed.map(
    (payment) =>
      sql`(${payment.id}, ${payment.lockedVersion}::integer, ${payment.version}::integer, ${payment.status}, ${payment.capturedMinor.toString()}::bigint, ${payment.refundedMinor.toString()}::bigint, ${payment.awaitsSettlement}::boolean, ${payment.settlementId}::text, ${payment.updatedAt.toISOString()}::timestamptz)`,
  );
  return sql`
    update ${payments} as p
    set version = v.version, status = v.status, captured_minor = v.captured_minor, refunded_minor = v.refunded_minor,
        awaits_settlement = v.awaits_settlement, settlement_id = v.settlement_id, updated_at = v.updated_at
    from (values ${sql.join(rows, sql`, `)})
      as v(id, locked_version, version, status, captured_minor, refunded_minor, awaits_settlement, settlement_id, updated_at)
    where p.id = v.id and p.version = v.locked_version
    returning p.id`;
}

/** Absolute values from the locked state; accounts created in this list were inserted with theirs. */
function balanceUpdate(effects: Effects, lockedAccounts: Map<string, AccountState>): SQL | undefined {
  const created = new Set(effects.newAccounts.map((state) => state.id));
  const touched = [...effects.touchedAccountIds]
    .filter((id) => !created.has(id))
    .map((id) => {
      const state = lockedAccounts.get(id);
      invariant(state, `balance of ${id} changed without being locked`);
      return state;
    });
  if (touched.length === 0) return undefined;
  const rows = touched.map(
    (state) =>
      sql`(${state.id}, ${state.postedMinor.toString()}::bigint, ${state.heldMinor.toString()}::bigint, ${state.pendingSettlementMinor.toString()}::bigint, ${state.version.toString()}::bigint, ${state.updatedAt.toISOString()}::timestamptz)`,
  );
  return sql`
    update ${accountBalances} as b
    set posted_minor = v.posted_minor, held_minor = v.held_minor, pending_settlement_minor = v.pending_minor,
        version = v.version, updated_at = v.updated_at
    from (values ${sql.join(rows, sql`, `)}) as v(account_id, posted_minor, held_minor, pending_minor, version, updated_at)
    where b.account_id = v.account_id`;
}

/** Status changes (freeze, unfreeze, close) of locked accounts, from their final in-memory state. */
function accountStatusUpdate(effects: Effects, lockedAccounts: Map<string, AccountState>): SQL | undefined {
  if (effects.statusChangedAccountIds.size === 0) return undefined;
  const rows = [...effects.statusChangedAccountIds].map((id) => {
    const state = lockedAccounts.get(id);
    invariant(state, `status of ${id} changed without being locked`);
    return sql`(${state.id}, ${state.status})`;
  });
  return sql`
    update ${accounts} as a set status = v.status
    from (values ${sql.join(rows, sql`, `)}) as v(id, status)
    where a.id = v.id`;
}
