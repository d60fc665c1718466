/**
 * The in-memory state a plan works on (rows read under FOR UPDATE), the effects it accumulates, and the one
 * way money moves: a posting, a debit and a credit of the same amount. Pure; no I/O.
 */

import { invariant } from '../domain/assert.js';
import { type DomainError, failedPrecondition, notFound } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import type {
  AccountRecord,
  AccountStatus,
  AccountType,
  BalanceBucket,
  BalanceRecord,
  DepositRecord,
  EntryDirection,
  LedgerEntryRecord,
  PaymentRecord,
  PayoutRecord,
  RefundRecord,
  SettlementRecord,
} from '../domain/records.js';
import type { DomainEvent, DomainEventBody } from '../events/domain-events.js';

/**
 * An account's role in the ledger (stored in column `kind`): USER is a customer's account, personal or
 * merchant (not a wallet user: backends hold USER accounts too); SYSTEM is one of the ledger's own contra
 * accounts (a currency's funding account), which may go negative.
 */
export type LedgerRole = 'USER' | 'SYSTEM';

/** An account row and its balance row, as read under FOR UPDATE (or just created in this transaction). */
export interface AccountState {
  id: string;
  ownerRef: string;
  currency: string;
  status: AccountStatus;
  type: AccountType;
  ledgerRole: LedgerRole;
  createdAt: Date;
  /** Sum of all entries; held and pending settlement are parts of it, available is the rest. */
  postedMinor: bigint;
  heldMinor: bigint;
  pendingSettlementMinor: bigint;
  version: bigint;
  updatedAt: Date;
}

/** A payment row as read under FOR UPDATE; `lockedVersion` guards the write-back. */
export interface PaymentState extends PaymentRecord {
  lockedVersion: number;
}

/** Everything a list of commands writes; the caller flushes it in a few set-based statements. */
export interface Effects {
  newAccounts: AccountState[];
  newPayments: PaymentRecord[];
  /** Existing payments whose row changed, by id. */
  changedPayments: Map<string, PaymentState>;
  deposits: DepositRecord[];
  refunds: RefundRecord[];
  settlements: SettlementRecord[];
  entries: LedgerEntryRecord[];
  events: DomainEvent[];
  /** Accounts whose balance row changed and must be written back. */
  touchedAccountIds: Set<string>;
  payouts: PayoutRecord[];
  /** Existing accounts whose status changed (written back from the locked state). */
  statusChangedAccountIds: Set<string>;
}

export function emptyEffects(): Effects {
  return {
    newAccounts: [],
    newPayments: [],
    changedPayments: new Map(),
    deposits: [],
    refunds: [],
    settlements: [],
    entries: [],
    events: [],
    touchedAccountIds: new Set(),
    payouts: [],
    statusChangedAccountIds: new Set(),
  };
}

/**
 * The most that may ever be deposited into one currency, in minor units (2^62). All money in a currency
 * comes from deposits, so every balance (and each of its buckets), the funding account (its negative),
 * refund totals and settlement sums stay within it, and the sum of any two stays below 2^63: no int64
 * column can overflow, whatever the sequence of accepted requests. Deposits past it are refused
 * (BALANCE_LIMIT_EXCEEDED).
 */
export const MAX_CURRENCY_SUPPLY_MINOR = 2n ** 62n;

export interface PlanContext {
  now: Date;
  /** The largest amount of one payment in a currency, in minor units. */
  maxPaymentMinor(currency: string): bigint;
  /** The largest amount of one deposit in a currency, in minor units; maxPaymentMinor when absent. */
  maxDepositMinor?(currency: string): bigint;
  accounts: Map<string, AccountState>;
  payments: Map<string, PaymentState>;
  effects: Effects;
}

/** System accounts are per currency with fixed ids, so they can be found without a lookup table. */
export function fundingAccountId(currency: string): string {
  return `sys_funding_${currency}`;
}

export function availableOf(state: AccountState): bigint {
  return state.postedMinor - state.heldMinor - state.pendingSettlementMinor;
}

export function bucketBalance(state: AccountState, bucket: BalanceBucket): bigint {
  switch (bucket) {
    case 'AVAILABLE':
      return availableOf(state);
    case 'HELD':
      return state.heldMinor;
    case 'PENDING_SETTLEMENT':
      return state.pendingSettlementMinor;
  }
}

export function balanceOf(state: AccountState): BalanceRecord {
  return {
    accountId: state.id,
    currency: state.currency,
    postedMinor: state.postedMinor,
    heldMinor: state.heldMinor,
    pendingSettlementMinor: state.pendingSettlementMinor,
    availableMinor: availableOf(state),
    version: state.version,
    updatedAt: state.updatedAt,
  };
}

export function accountOf(state: AccountState): AccountRecord {
  return {
    id: state.id,
    ownerRef: state.ownerRef,
    currency: state.currency,
    status: state.status,
    type: state.type,
    createdAt: state.createdAt,
  };
}

/** Marks an account changed without an entry, so its events still get a fresh sequence number. */
export function touchAccount(context: PlanContext, state: AccountState): void {
  state.version += 1n;
  state.updatedAt = context.now;
  context.effects.touchedAccountIds.add(state.id);
}

function writeEntry(
  context: PlanContext,
  state: AccountState,
  bucket: BalanceBucket,
  direction: EntryDirection,
  amountMinor: bigint,
  referenceId: string,
): void {
  const signed = direction === 'CREDIT' ? amountMinor : -amountMinor;
  state.postedMinor += signed;
  if (bucket === 'HELD') state.heldMinor += signed;
  if (bucket === 'PENDING_SETTLEMENT') state.pendingSettlementMinor += signed;
  touchAccount(context, state);
  context.effects.entries.push({
    id: newId('ent'),
    accountId: state.id,
    referenceId,
    direction,
    bucket,
    amountMinor,
    currency: state.currency,
    balanceAfterMinor: bucketBalance(state, bucket),
    accountVersion: state.version,
    createdAt: context.now,
  });
}

export interface BucketRef {
  account: AccountState;
  bucket: BalanceBucket;
}

/**
 * One posting: the same amount debited from one bucket and credited to another, never one without the other.
 * The buckets may belong to one account (a hold moves AVAILABLE → HELD) or to two.
 */
export function post(context: PlanContext, from: BucketRef, to: BucketRef, amountMinor: bigint, referenceId: string) {
  invariant(amountMinor > 0n, `a posting must be positive, got ${amountMinor}`);
  writeEntry(context, from.account, from.bucket, 'DEBIT', amountMinor, referenceId);
  writeEntry(context, to.account, to.bucket, 'CREDIT', amountMinor, referenceId);
}

/**
 * A new event about an aggregate at `now`: a fresh event id, the aggregate and its sequence number (the account's
 * balance version or the payment's version), then `body`, the event's type and payload.
 */
export function domainEvent(
  aggregateType: 'account' | 'payment',
  aggregateId: string,
  aggregateSeq: bigint,
  now: Date,
  body: DomainEventBody,
): DomainEvent {
  // Object.assign, not `{ ...base, ...body }`: see test/unit/object-spread.test.ts.
  return Object.assign({ eventId: newId('evt'), aggregateType, aggregateId, aggregateSeq, occurredAt: now }, body);
}

/** Customers see only USER accounts; the ledger's own accounts answer NOT_FOUND like a missing one. */
export function customerAccount(context: PlanContext, id: string): AccountState | undefined {
  const state = context.accounts.get(id);
  return state?.ledgerRole === 'USER' ? state : undefined;
}

/**
 * The account a deposit or payout moves money into or out of: a customer's (else NOT_FOUND), ACTIVE (else
 * ACCOUNT_INACTIVE) and held in `currency` (else CURRENCY_MISMATCH). Each refusal names its request field.
 */
export function activeAccountIn(context: PlanContext, id: string, currency: string): AccountState | DomainError {
  const account = customerAccount(context, id);
  if (!account) return notFound('account', id, 'account_id');
  if (account.status !== 'ACTIVE') {
    return failedPrecondition(
      'ACCOUNT_INACTIVE',
      `account ${account.id} is ${account.status.toLowerCase()}`,
      'account_id',
    );
  }
  if (account.currency !== currency) {
    return failedPrecondition(
      'CURRENCY_MISMATCH',
      `account ${account.id} holds ${account.currency}, not ${currency}`,
      'amount.currency',
    );
  }
  return account;
}

/** Records a payment change for write-back and bumps its version (its events' sequence). */
export function changePayment(context: PlanContext, payment: PaymentState, change: Partial<PaymentRecord>): void {
  Object.assign(payment, change, { version: payment.version + 1, updatedAt: context.now });
  context.effects.changedPayments.set(payment.id, payment);
}

/** A copy safe to return and store: later changes in the same list must not alter an earlier outcome. */
export function snapshot(payment: PaymentState): PaymentRecord {
  const { lockedVersion: _locked, ...record } = payment;
  return { ...record };
}
