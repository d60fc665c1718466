/**
 * The ledger's tables. Money columns are bigint minor units read as JS bigint, never numbers or floats.
 * Balances are credit-normal: posted = credits - debits, so a customer's money is positive and the funding
 * account (which pays out every deposit) is negative; per currency, all posted balances sum to zero.
 */
import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType: () => 'bytea',
});

const money = (name: string) => bigint(name, { mode: 'bigint' });
const createdAt = () => timestamp('created_at', { withTimezone: true, precision: 6 }).notNull().defaultNow();

export const accounts = pgTable(
  'accounts',
  {
    id: text('id').primaryKey(),
    ownerRef: text('owner_ref').notNull(),
    currency: text('currency').notNull(),
    status: text('status', { enum: ['ACTIVE', 'FROZEN', 'CLOSED'] }).notNull(),
    /**
     * The account's role in the ledger (column `kind`): USER accounts belong to customers, personal and merchant
     * alike; SYSTEM accounts (funding) are the ledger's own contra accounts.
     */
    ledgerRole: text('kind', { enum: ['USER', 'SYSTEM'] }).notNull(),
    /** MERCHANT accounts receive captured money into pending settlement; PERSONAL ones into available. */
    type: text('type', { enum: ['PERSONAL', 'MERCHANT'] })
      .notNull()
      .default('PERSONAL'),
    createdAt: createdAt(),
  },
  (table) => [
    check('accounts_currency_shape', sql`${table.currency} ~ '^[A-Z]{3}$'`),
    check('accounts_status_known', sql`${table.status} in ('ACTIVE', 'FROZEN', 'CLOSED')`),
    check('accounts_kind_known', sql`${table.ledgerRole} in ('USER', 'SYSTEM')`),
    check('accounts_type_known', sql`${table.type} in ('PERSONAL', 'MERCHANT')`),
    index('accounts_owner_ref_idx').on(table.ownerRef),
  ],
);

export const accountBalances = pgTable(
  'account_balances',
  {
    accountId: text('account_id')
      .primaryKey()
      .references(() => accounts.id),
    currency: text('currency').notNull(),
    /** The sum of all the account's entries; the buckets below are parts of it, available is the rest. */
    postedMinor: money('posted_minor').notNull().default(sql`0`),
    /** Sum of the account's HELD entries: outgoing holds. */
    heldMinor: money('held_minor').notNull().default(sql`0`),
    /** Sum of the account's PENDING_SETTLEMENT entries: captured to a merchant, not settled yet. */
    pendingSettlementMinor: money('pending_settlement_minor').notNull().default(sql`0`),
    /** Only SYSTEM accounts may go below zero; copied here so the CHECK below can see it. */
    allowNegative: boolean('allow_negative').notNull(),
    /** +1 per change; each ledger entry records the version it produced. */
    version: bigint('version', { mode: 'bigint' }).notNull().default(sql`0`),
    updatedAt: timestamp('updated_at', { withTimezone: true, precision: 6 }).notNull().defaultNow(),
  },
  (table) => [
    // The last line of defence against an overdraft: the application checks first, this refuses the commit.
    check(
      'account_balances_available_not_negative',
      sql`${table.allowNegative} or ${table.postedMinor} - ${table.heldMinor} - ${table.pendingSettlementMinor} >= 0`,
    ),
    check('account_balances_held_not_negative', sql`${table.heldMinor} >= 0`),
    check('account_balances_pending_not_negative', sql`${table.pendingSettlementMinor} >= 0`),
  ],
);

export const payments = pgTable(
  'payments',
  {
    id: text('id').primaryKey(),
    payerAccountId: text('payer_account_id')
      .notNull()
      .references(() => accounts.id),
    payeeAccountId: text('payee_account_id')
      .notNull()
      .references(() => accounts.id),
    amountMinor: money('amount_minor').notNull(),
    currency: text('currency').notNull(),
    status: text('status', {
      enum: ['COMPLETED', 'DECLINED', 'AUTHORIZED', 'VOIDED', 'EXPIRED', 'PARTIALLY_REFUNDED', 'REFUNDED'],
    }).notNull(),
    declineReason: text('decline_reason'),
    description: text('description').notNull().default(''),
    captureMode: text('capture_mode', { enum: ['AUTOMATIC', 'MANUAL'] })
      .notNull()
      .default('AUTOMATIC'),
    capturedMinor: money('captured_minor').notNull().default(sql`0`),
    refundedMinor: money('refunded_minor').notNull().default(sql`0`),
    /** When an AUTHORIZED hold expires (server clock); null for AUTOMATIC payments. */
    expiresAt: timestamp('expires_at', { withTimezone: true, precision: 6 }),
    /** Captured into the payee's pending settlement (a MERCHANT payee), so a settlement run must cover it. */
    awaitsSettlement: boolean('awaits_settlement').notNull().default(false),
    settlementId: text('settlement_id'),
    /** +1 per state change; the per-aggregate sequence of its outbox events. */
    version: integer('version').notNull().default(1),
    createdAt: createdAt(),
    updatedAt: timestamp('updated_at', { withTimezone: true, precision: 6 }).notNull().defaultNow(),
  },
  (table) => [
    check('payments_amount_positive', sql`${table.amountMinor} > 0`),
    check(
      'payments_status_known',
      sql`${table.status} in ('COMPLETED', 'DECLINED', 'AUTHORIZED', 'VOIDED', 'EXPIRED', 'PARTIALLY_REFUNDED', 'REFUNDED')`,
    ),
    check(
      'payments_amounts_consistent',
      sql`${table.capturedMinor} >= 0 and ${table.capturedMinor} <= ${table.amountMinor} and ${table.refundedMinor} >= 0 and ${table.refundedMinor} <= ${table.capturedMinor}`,
    ),
    check('payments_distinct_parties', sql`${table.payerAccountId} <> ${table.payeeAccountId}`),
    check(
      'payments_decline_reason_iff_declined',
      sql`(${table.status} = 'DECLINED') = (${table.declineReason} is not null)`,
    ),
    index('payments_payer_idx').on(table.payerAccountId, table.createdAt),
    index('payments_payee_idx').on(table.payeeAccountId, table.createdAt),
    index('payments_hold_expiry_idx').on(table.expiresAt).where(sql`${table.status} = 'AUTHORIZED'`),
    index('payments_unsettled_idx')
      .on(table.payeeAccountId, table.id)
      .where(sql`${table.awaitsSettlement} and ${table.settlementId} is null`),
    index('payments_settlement_idx').on(table.settlementId),
  ],
);

export const refunds = pgTable(
  'refunds',
  {
    id: text('id').primaryKey(),
    paymentId: text('payment_id')
      .notNull()
      .references(() => payments.id),
    amountMinor: money('amount_minor').notNull(),
    currency: text('currency').notNull(),
    status: text('status', { enum: ['COMPLETED', 'DECLINED'] }).notNull(),
    declineReason: text('decline_reason'),
    reason: text('reason').notNull().default(''),
    createdAt: createdAt(),
  },
  (table) => [
    check('refunds_amount_positive', sql`${table.amountMinor} > 0`),
    check('refunds_status_known', sql`${table.status} in ('COMPLETED', 'DECLINED')`),
    index('refunds_payment_idx').on(table.paymentId),
  ],
);

export const settlements = pgTable(
  'settlements',
  {
    id: text('id').primaryKey(),
    accountId: text('account_id')
      .notNull()
      .references(() => accounts.id),
    currency: text('currency').notNull(),
    paymentCount: integer('payment_count').notNull(),
    grossMinor: money('gross_minor').notNull(),
    refundsMinor: money('refunds_minor').notNull(),
    netMinor: money('net_minor').notNull(),
    createdAt: createdAt(),
  },
  (table) => [
    check(
      'settlements_net_is_gross_minus_refunds',
      sql`${table.netMinor} = ${table.grossMinor} - ${table.refundsMinor}`,
    ),
    check('settlements_amounts_not_negative', sql`${table.netMinor} >= 0 and ${table.refundsMinor} >= 0`),
    index('settlements_account_idx').on(table.accountId, table.id),
  ],
);

export const deposits = pgTable(
  'deposits',
  {
    id: text('id').primaryKey(),
    accountId: text('account_id')
      .notNull()
      .references(() => accounts.id),
    amountMinor: money('amount_minor').notNull(),
    currency: text('currency').notNull(),
    createdAt: createdAt(),
  },
  (table) => [
    check('deposits_amount_positive', sql`${table.amountMinor} > 0`),
    index('deposits_account_idx').on(table.accountId),
  ],
);

/** Money that left the ledger from an account's available balance: the mirror of a deposit. */
export const payouts = pgTable(
  'payouts',
  {
    id: text('id').primaryKey(),
    accountId: text('account_id')
      .notNull()
      .references(() => accounts.id),
    amountMinor: money('amount_minor').notNull(),
    currency: text('currency').notNull(),
    createdAt: createdAt(),
  },
  (table) => [
    check('payouts_amount_positive', sql`${table.amountMinor} > 0`),
    index('payouts_account_idx').on(table.accountId),
  ],
);

export const ledgerEntries = pgTable(
  'ledger_entries',
  {
    id: text('id').primaryKey(),
    accountId: text('account_id')
      .notNull()
      .references(() => accounts.id),
    /** The payment or deposit that caused the entry. */
    referenceId: text('reference_id').notNull(),
    direction: text('direction', { enum: ['DEBIT', 'CREDIT'] }).notNull(),
    bucket: text('bucket', { enum: ['AVAILABLE', 'HELD', 'PENDING_SETTLEMENT'] })
      .notNull()
      .default('AVAILABLE'),
    amountMinor: money('amount_minor').notNull(),
    currency: text('currency').notNull(),
    balanceAfterMinor: money('balance_after_minor').notNull(),
    accountVersion: bigint('account_version', { mode: 'bigint' }).notNull(),
    createdAt: createdAt(),
  },
  (table) => [
    check('ledger_entries_amount_positive', sql`${table.amountMinor} > 0`),
    check('ledger_entries_direction_known', sql`${table.direction} in ('DEBIT', 'CREDIT')`),
    check('ledger_entries_bucket_known', sql`${table.bucket} in ('AVAILABLE', 'HELD', 'PENDING_SETTLEMENT')`),
    // Written while the balance row is locked, so version order is commit order: safe to page by.
    uniqueIndex('ledger_entries_account_version_idx').on(table.accountId, table.accountVersion),
    index('ledger_entries_reference_idx').on(table.referenceId),
  ],
);

export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    /** Keys are scoped per caller, so one caller can never replay or block another's key. */
    principal: text('principal').notNull(),
    idempotencyKey: text('idempotency_key').notNull(),
    operation: text('operation').notNull(),
    /** The request's parameters, to tell a true retry from a reused key (and name the field that differs). */
    requestParams: jsonb('request_params').$type<Record<string, string>>().notNull(),
    /**
     * The stored outcome, replayed for a retry. Null only inside the transaction that claimed the key: it is
     * filled (or the key released) before that transaction commits.
     */
    response: jsonb('response'),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  },
  (table) => [
    primaryKey({ columns: [table.principal, table.idempotencyKey] }),
    index('idempotency_keys_expires_idx').on(table.expiresAt),
  ],
);

export const outboxEvents = pgTable(
  'outbox_events',
  {
    /** Internal row order only: ids are taken before commit, so never page by it. */
    id: bigint('id', { mode: 'bigint' }).primaryKey().generatedAlwaysAsIdentity(),
    eventId: text('event_id').notNull().unique(),
    eventType: text('event_type').notNull(),
    aggregateType: text('aggregate_type').notNull(),
    aggregateId: text('aggregate_id').notNull(),
    aggregateSeq: bigint('aggregate_seq', { mode: 'bigint' }).notNull(),
    payload: bytea('payload').notNull(),
    createdAt: createdAt(),
    publishedAt: timestamp('published_at', { withTimezone: true }),
    attempts: integer('attempts').notNull().default(0),
    lastError: text('last_error'),
    /** W3C traceparent of the request (or job) that wrote the event; sent as the Kafka record's traceparent. */
    traceContext: text('trace_context'),
  },
  (table) => [
    index('outbox_events_unpublished_idx').on(table.createdAt).where(sql`${table.publishedAt} is null`),
    index('outbox_events_aggregate_idx').on(table.aggregateId, table.aggregateSeq),
    // The publisher's batch: unpublished rows in id order (src/outbox/store.ts), without sorting the backlog.
    index('outbox_events_pending_idx').on(table.id).where(sql`${table.publishedAt} is null`),
    // The retention cleanup: published rows by age.
    index('outbox_events_published_idx').on(table.publishedAt).where(sql`${table.publishedAt} is not null`),
  ],
);

/** Backends' API keys: only a hash of each key is stored (src/auth/api-keys.ts). */
export const apiKeys = pgTable('api_keys', {
  /** The key's public part, "plk_<id>_…"; the principal is "apikey:<id>". */
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  /** SHA-256 of the whole key, hex. */
  keyHash: text('key_hash').notNull(),
  scopes: text('scopes').array().notNull(),
  createdAt: createdAt(),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
});
