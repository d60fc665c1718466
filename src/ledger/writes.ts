/** Flushes a plan's effects in a few set-based statements: one per table, whatever the number of commands. */
import { sql } from 'drizzle-orm';
import type { LedgerTx } from '../db/client.js';
import {
  accountBalances,
  accounts,
  deposits,
  ledgerEntries,
  outboxEvents,
  payments,
  refunds,
  settlements,
} from '../db/schema.js';
import { encodeEvent } from '../events/domain-events.js';
import type { AccountState, Effects } from './state.js';

function rowCountOf(result: unknown): number {
  const counted = result as { rowCount?: number | null; affectedRows?: number };
  return counted.rowCount ?? counted.affectedRows ?? 0;
}

export async function writeEffects(tx: LedgerTx, effects: Effects, lockedAccounts: Map<string, AccountState>) {
  if (effects.newAccounts.length > 0) {
    await tx.insert(accounts).values(
      effects.newAccounts.map((state) => ({
        id: state.id,
        ownerRef: state.ownerRef,
        currency: state.currency,
        status: state.status,
        type: state.type,
        kind: state.kind,
        createdAt: state.createdAt,
      })),
    );
    await tx.insert(accountBalances).values(
      effects.newAccounts.map((state) => ({
        accountId: state.id,
        currency: state.currency,
        allowNegative: state.kind === 'SYSTEM',
        updatedAt: state.updatedAt,
      })),
    );
  }
  if (effects.newPayments.length > 0) await tx.insert(payments).values(effects.newPayments);
  if (effects.settlements.length > 0) {
    await tx.insert(settlements).values(effects.settlements.map(({ paymentIds: _ids, ...settlement }) => settlement));
  }
  await writeChangedPayments(tx, effects);
  if (effects.deposits.length > 0) await tx.insert(deposits).values(effects.deposits);
  if (effects.refunds.length > 0) await tx.insert(refunds).values(effects.refunds);
  if (effects.entries.length > 0) await tx.insert(ledgerEntries).values(effects.entries);
  await writeBalances(tx, effects, lockedAccounts);
  if (effects.events.length > 0) {
    await tx.insert(outboxEvents).values(
      effects.events.map((event) => ({
        eventId: event.eventId,
        eventType: event.type,
        aggregateType: event.aggregateType,
        aggregateId: event.aggregateId,
        aggregateSeq: event.aggregateSeq,
        payload: encodeEvent(event),
        createdAt: event.occurredAt,
      })),
    );
  }
}

/**
 * Guarded state changes: each row is updated only if it still has the version it was locked with, and the
 * statement must touch every row it names. Under the row lock this always holds; if it ever did not, the
 * whole transaction rolls back rather than write over a change it did not see.
 */
async function writeChangedPayments(tx: LedgerTx, effects: Effects) {
  const changed = [...effects.changedPayments.values()];
  if (changed.length === 0) return;
  const rows = changed.map(
    (payment) =>
      sql`(${payment.id}, ${payment.lockedVersion}::integer, ${payment.version}::integer, ${payment.status}, ${payment.capturedMinor.toString()}::bigint, ${payment.refundedMinor.toString()}::bigint, ${payment.awaitsSettlement}::boolean, ${payment.settlementId}::text, ${payment.updatedAt.toISOString()}::timestamptz)`,
  );
  const result = await tx.execute(sql`
    update ${payments} as p
    set version = v.version, status = v.status, captured_minor = v.captured_minor, refunded_minor = v.refunded_minor,
        awaits_settlement = v.awaits_settlement, settlement_id = v.settlement_id, updated_at = v.updated_at
    from (values ${sql.join(rows, sql`, `)})
      as v(id, locked_version, version, status, captured_minor, refunded_minor, awaits_settlement, settlement_id, updated_at)
    where p.id = v.id and p.version = v.locked_version`);
  if (rowCountOf(result) !== changed.length) {
    throw new Error(`guarded payment update touched ${rowCountOf(result)} of ${changed.length} rows`);
  }
  for (const payment of changed) payment.lockedVersion = payment.version;
}

async function writeBalances(tx: LedgerTx, effects: Effects, lockedAccounts: Map<string, AccountState>) {
  const touched = [...effects.touchedAccountIds].map((id) => {
    const state = lockedAccounts.get(id);
    if (!state) throw new Error(`balance of ${id} changed without being locked`);
    return state;
  });
  if (touched.length === 0) return;
  const rows = touched.map(
    (state) =>
      sql`(${state.id}, ${state.postedMinor.toString()}::bigint, ${state.heldMinor.toString()}::bigint, ${state.pendingSettlementMinor.toString()}::bigint, ${state.version.toString()}::bigint, ${state.updatedAt.toISOString()}::timestamptz)`,
  );
  await tx.execute(sql`
    update ${accountBalances} as b
    set posted_minor = v.posted_minor, held_minor = v.held_minor, pending_settlement_minor = v.pending_minor,
        version = v.version, updated_at = v.updated_at
    from (values ${sql.join(rows, sql`, `)}) as v(account_id, posted_minor, held_minor, pending_minor, version, updated_at)
    where b.account_id = v.account_id`);
}
