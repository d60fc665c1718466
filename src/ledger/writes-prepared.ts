/**
 * The hot path's one write statement as a prepared shape: the same data-modifying CTEs as writes.ts, but every
 * list is passed as arrays and expanded with unnest(), so the text depends only on WHICH parts a batch has
 * (a handful of combinations: payments, entries, balances, events, stored outcomes, released keys, guarded
 * payment updates), never on how many rows. Each combination is a named statement, planned once per
 * connection. Lists with rarer effects (new accounts, deposits, refunds, settlements) go through writes.ts.
 *
 * Values go as text arrays cast in SQL (bigint, timestamptz, jsonb, bytea via hex), which both node-postgres
 * and PGlite serialize the same way.
 */
import { createHash } from 'node:crypto';
import type { LedgerTx } from '../db/client.js';
import { type RunOptions, runPrepared } from '../db/prepared.js';
import { invariant } from '../domain/assert.js';
import { encodeEvent } from '../events/domain-events.js';
import { currentTraceparent } from '../observability/tracing.js';
import type { LedgerOutcome } from './commands.js';
import type { AccountState, Effects } from './state.js';
import { encodeOutcome } from './stored-outcome.js';

/** One CTE: its text with parameters numbered from $1, and one array per parameter. */
interface Part {
  name: string;
  text: string;
  values: unknown[];
}

export interface KeyWrites {
  outcomes: { principal: string; idempotencyKey: string; outcome: LedgerOutcome }[];
  releases: { principal: string; idempotencyKey: string }[];
}

/** Whether writeEffectsPrepared can write `effects` (otherwise use writes.ts). */
export function preparedCanWrite(effects: Effects): boolean {
  return (
    effects.newAccounts.length === 0 &&
    effects.deposits.length === 0 &&
    effects.refunds.length === 0 &&
    effects.settlements.length === 0 &&
    // Payouts and account status changes are written only by writes.ts: a list with any goes that way whole.
    effects.payouts.length === 0 &&
    effects.statusChangedAccountIds.size === 0
  );
}

const iso = (date: Date | null) => (date === null ? null : date.toISOString());

function paymentsInsert(effects: Effects): Part | undefined {
  const rows = effects.newPayments;
  if (rows.length === 0) return undefined;
  return {
    name: 'pi',
    text: `insert into payments (id, payer_account_id, payee_account_id, amount_minor, currency, status, decline_reason,
        description, capture_mode, captured_minor, refunded_minor, expires_at, awaits_settlement, settlement_id,
        version, created_at, updated_at)
      select * from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[],
        $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::timestamptz[], $13::boolean[], $14::text[],
        $15::integer[], $16::timestamptz[], $17::timestamptz[])`,
    values: [
      rows.map((p) => p.id),
      rows.map((p) => p.payerAccountId),
      rows.map((p) => p.payeeAccountId),
      rows.map((p) => p.amountMinor.toString()),
      rows.map((p) => p.currency),
      rows.map((p) => p.status),
      rows.map((p) => p.declineReason),
      rows.map((p) => p.description),
      rows.map((p) => p.captureMode),
      rows.map((p) => p.capturedMinor.toString()),
      rows.map((p) => p.refundedMinor.toString()),
      rows.map((p) => iso(p.expiresAt)),
      rows.map((p) => p.awaitsSettlement),
      rows.map((p) => p.settlementId),
      rows.map((p) => p.version),
      rows.map((p) => iso(p.createdAt)),
      rows.map((p) => iso(p.updatedAt)),
    ],
  };
}

function entriesInsert(effects: Effects): Part | undefined {
  const rows = effects.entries;
  if (rows.length === 0) return undefined;
  return {
    name: 'ei',
    text: `insert into ledger_entries (id, account_id, reference_id, direction, bucket, amount_minor, currency,
        balance_after_minor, account_version, created_at)
      select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[],
        $8::bigint[], $9::bigint[], $10::timestamptz[])`,
    values: [
      rows.map((e) => e.id),
      rows.map((e) => e.accountId),
      rows.map((e) => e.referenceId),
      rows.map((e) => e.direction),
      rows.map((e) => e.bucket),
      rows.map((e) => e.amountMinor.toString()),
      rows.map((e) => e.currency),
      rows.map((e) => e.balanceAfterMinor.toString()),
      rows.map((e) => e.accountVersion.toString()),
      rows.map((e) => iso(e.createdAt)),
    ],
  };
}

function balancesUpdate(effects: Effects, lockedAccounts: Map<string, AccountState>): Part | undefined {
  const rows = [...effects.touchedAccountIds].map((id) => {
    const state = lockedAccounts.get(id);
    invariant(state, `balance of ${id} changed without being locked`);
    return state;
  });
  if (rows.length === 0) return undefined;
  return {
    name: 'bu',
    text: `update account_balances as b
      set posted_minor = v.posted_minor, held_minor = v.held_minor, pending_settlement_minor = v.pending_minor,
        version = v.version, updated_at = v.updated_at
      from unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::timestamptz[])
        as v(account_id, posted_minor, held_minor, pending_minor, version, updated_at)
      where b.account_id = v.account_id`,
    values: [
      rows.map((s) => s.id),
      rows.map((s) => s.postedMinor.toString()),
      rows.map((s) => s.heldMinor.toString()),
      rows.map((s) => s.pendingSettlementMinor.toString()),
      rows.map((s) => s.version.toString()),
      rows.map((s) => iso(s.updatedAt)),
    ],
  };
}

function eventsInsert(effects: Effects): Part | undefined {
  const rows = effects.events;
  if (rows.length === 0) return undefined;
  return {
    name: 'oi',
    text: `insert into outbox_events
        (event_id, event_type, aggregate_type, aggregate_id, aggregate_seq, payload, created_at, trace_context)
      select v.event_id, v.event_type, v.aggregate_type, v.aggregate_id, v.aggregate_seq, decode(v.payload, 'hex'),
        v.created_at, v.trace_context
      from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::timestamptz[],
        $8::text[])
        as v(event_id, event_type, aggregate_type, aggregate_id, aggregate_seq, payload, created_at, trace_context)`,
    values: [
      rows.map((e) => e.eventId),
      rows.map((e) => e.type),
      rows.map((e) => e.aggregateType),
      rows.map((e) => e.aggregateId),
      rows.map((e) => e.aggregateSeq.toString()),
      rows.map((e) => Buffer.from(encodeEvent(e)).toString('hex')),
      rows.map((e) => iso(e.occurredAt)),
      // The request's W3C traceparent, carried to the Kafka record (observability/tracing.ts).
      rows.map((e) => e.origin?.traceparent ?? currentTraceparent() ?? null),
    ],
  };
}

function outcomesUpdate(keys: KeyWrites): Part | undefined {
  const rows = keys.outcomes;
  if (rows.length === 0) return undefined;
  return {
    name: 'ks',
    text: `update idempotency_keys as k set response = v.response::jsonb
      from unnest($1::text[], $2::text[], $3::text[]) as v(principal, idempotency_key, response)
      where k.principal = v.principal and k.idempotency_key = v.idempotency_key`,
    values: [
      rows.map((k) => k.principal),
      rows.map((k) => k.idempotencyKey),
      rows.map((k) => JSON.stringify(encodeOutcome(k.outcome))),
    ],
  };
}

function keysRelease(keys: KeyWrites): Part | undefined {
  const rows = keys.releases;
  if (rows.length === 0) return undefined;
  return {
    name: 'kr',
    text: `delete from idempotency_keys as k
      using unnest($1::text[], $2::text[]) as v(principal, idempotency_key)
      where k.principal = v.principal and k.idempotency_key = v.idempotency_key`,
    values: [rows.map((k) => k.principal), rows.map((k) => k.idempotencyKey)],
  };
}

/** Guarded: a row is updated only at the version it was locked with; the caller checks the count. */
function paymentsUpdate(effects: Effects): Part | undefined {
  const rows = [...effects.changedPayments.values()];
  if (rows.length === 0) return undefined;
  return {
    name: 'changed_payments',
    text: `update payments as p
      set version = v.version, status = v.status, captured_minor = v.captured_minor, refunded_minor = v.refunded_minor,
        awaits_settlement = v.awaits_settlement, settlement_id = v.settlement_id, updated_at = v.updated_at
      from unnest($1::text[], $2::integer[], $3::integer[], $4::text[], $5::bigint[], $6::bigint[], $7::boolean[],
        $8::text[], $9::timestamptz[])
        as v(id, locked_version, version, status, captured_minor, refunded_minor, awaits_settlement, settlement_id,
          updated_at)
      where p.id = v.id and p.version = v.locked_version
      returning p.id`,
    values: [
      rows.map((p) => p.id),
      rows.map((p) => p.lockedVersion),
      rows.map((p) => p.version),
      rows.map((p) => p.status),
      rows.map((p) => p.capturedMinor.toString()),
      rows.map((p) => p.refundedMinor.toString()),
      rows.map((p) => p.awaitsSettlement),
      rows.map((p) => p.settlementId),
      rows.map((p) => iso(p.updatedAt)),
    ],
  };
}

/** Composed statement texts by the names of their parts: a few combinations, each composed once. */
const composed = new Map<string, { name: string; text: string }>();
const MAX_COMPOSED = 256;

function compose(parts: Part[]): { name: string; text: string } {
  const signature = parts.map((part) => part.name).join(',');
  let shape = composed.get(signature);
  if (shape) return shape;
  let offset = 0;
  const ctes = parts.map((part) => {
    const text = part.text.replace(/\$(\d+)/g, (_, index: string) => `$${Number(index) + offset}`);
    offset += part.values.length;
    return `${part.name} as (${text})`;
  });
  const counted = parts.some((part) => part.name === 'changed_payments');
  const text = `with ${ctes.join(', ')} select ${counted ? '(select count(*) from changed_payments)' : '0'}::int as changed_payments`;
  shape = { name: `ledger_write_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`, text };
  if (composed.size < MAX_COMPOSED) composed.set(signature, shape);
  return shape;
}

/** writes.ts's writeEffects for lists with only hot-path effects (see preparedCanWrite), as a prepared shape. */
export async function writeEffectsPrepared(
  tx: LedgerTx,
  effects: Effects,
  lockedAccounts: Map<string, AccountState>,
  keys: KeyWrites,
  options: RunOptions = {},
): Promise<void> {
  const parts = [
    paymentsInsert(effects),
    entriesInsert(effects),
    balancesUpdate(effects, lockedAccounts),
    eventsInsert(effects),
    outcomesUpdate(keys),
    keysRelease(keys),
    paymentsUpdate(effects),
  ].filter((part) => part !== undefined);
  if (parts.length === 0) return;
  const shape = compose(parts);
  const changed = [...effects.changedPayments.values()];
  // A guarded payment update is checked below, after the statement: its transaction must still be open then.
  const commit = options.commit === true && changed.length === 0;
  const [row] = await runPrepared<{ changed_payments: number }>(
    tx,
    shape,
    parts.flatMap((part) => part.values),
    { commit },
  );
  const touched = Number(row?.changed_payments ?? 0);
  invariant(touched === changed.length, `guarded payment update touched ${touched} of ${changed.length} rows`);
  for (const payment of changed) payment.lockedVersion = payment.version;
}
