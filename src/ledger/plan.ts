/**
 * Pure decisions: given the locked state of the accounts a command touches, decide its outcome and the
 * records it writes. No I/O here, so every rule of the ledger can be unit-tested without a database; the
 * caller (apply.ts) reads and locks the state first and writes the effects afterwards, in one transaction.
 */
import { type DomainError, failedPrecondition, notFound } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import type {
  AccountRecord,
  AccountStatus,
  BalanceRecord,
  DeclineReason,
  DepositRecord,
  EntryDirection,
  LedgerEntryRecord,
  PaymentRecord,
} from '../domain/records.js';
import type { DomainEvent } from '../events/domain-events.js';
import type {
  AuthorizePaymentCommand,
  CreateAccountCommand,
  DepositCommand,
  LedgerCommand,
  LedgerOutcome,
} from './commands.js';

/** An account row and its balance row, as read under FOR UPDATE (or just created in this transaction). */
export interface AccountState {
  id: string;
  ownerRef: string;
  currency: string;
  status: AccountStatus;
  kind: 'USER' | 'SYSTEM';
  createdAt: Date;
  postedMinor: bigint;
  heldMinor: bigint;
  version: bigint;
  updatedAt: Date;
}

/** Everything a batch of commands writes; apply.ts flushes it in a few set-based statements. */
export interface Effects {
  newAccounts: AccountState[];
  payments: PaymentRecord[];
  deposits: DepositRecord[];
  entries: LedgerEntryRecord[];
  events: DomainEvent[];
  /** Accounts whose balance row changed and must be written back. */
  touchedAccountIds: Set<string>;
}

export function emptyEffects(): Effects {
  return { newAccounts: [], payments: [], deposits: [], entries: [], events: [], touchedAccountIds: new Set() };
}

export interface PlanContext {
  now: Date;
  /** The largest amount of one payment in a currency, in minor units. */
  maxPaymentMinor(currency: string): bigint;
  accounts: Map<string, AccountState>;
  effects: Effects;
}

/** System accounts are per currency with fixed ids, so they can be found without a lookup table. */
export function fundingAccountId(currency: string): string {
  return `sys_funding_${currency}`;
}

export function balanceOf(state: AccountState): BalanceRecord {
  return {
    accountId: state.id,
    currency: state.currency,
    postedMinor: state.postedMinor,
    heldMinor: state.heldMinor,
    availableMinor: state.postedMinor - state.heldMinor,
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
    createdAt: state.createdAt,
  };
}

/** Customers see only USER accounts; the ledger's own accounts answer NOT_FOUND like a missing one. */
function userAccount(context: PlanContext, id: string): AccountState | undefined {
  const state = context.accounts.get(id);
  return state?.kind === 'USER' ? state : undefined;
}

function writeEntry(
  context: PlanContext,
  state: AccountState,
  direction: EntryDirection,
  amountMinor: bigint,
  referenceId: string,
): void {
  state.postedMinor += direction === 'CREDIT' ? amountMinor : -amountMinor;
  state.version += 1n;
  state.updatedAt = context.now;
  context.effects.touchedAccountIds.add(state.id);
  context.effects.entries.push({
    id: newId('ent'),
    accountId: state.id,
    referenceId,
    direction,
    amountMinor,
    currency: state.currency,
    balanceAfterMinor: state.postedMinor,
    accountVersion: state.version,
    createdAt: context.now,
  });
}

/** One posting: the same amount debited from one account and credited to another, never one without the other. */
function post(context: PlanContext, from: AccountState, to: AccountState, amountMinor: bigint, referenceId: string) {
  writeEntry(context, from, 'DEBIT', amountMinor, referenceId);
  writeEntry(context, to, 'CREDIT', amountMinor, referenceId);
}

function event(aggregateType: 'account' | 'payment', aggregateId: string, aggregateSeq: bigint, now: Date) {
  return { eventId: newId('evt'), aggregateType, aggregateId, aggregateSeq, occurredAt: now };
}

function planCreateAccount(command: CreateAccountCommand, context: PlanContext): LedgerOutcome {
  const state: AccountState = {
    id: newId('acct'),
    ownerRef: command.ownerRef,
    currency: command.currency,
    status: 'ACTIVE',
    kind: 'USER',
    createdAt: context.now,
    postedMinor: 0n,
    heldMinor: 0n,
    version: 0n,
    updatedAt: context.now,
  };
  context.accounts.set(state.id, state);
  context.effects.newAccounts.push(state);
  const account = accountOf(state);
  context.effects.events.push({ ...event('account', state.id, 0n, context.now), type: 'AccountCreated', account });
  return { kind: 'account', account };
}

function planDeposit(command: DepositCommand, context: PlanContext): LedgerOutcome | DomainError {
  const account = userAccount(context, command.accountId);
  if (!account) return notFound('account', command.accountId);
  if (account.status !== 'ACTIVE') {
    return failedPrecondition('ACCOUNT_INACTIVE', `account ${account.id} is ${account.status.toLowerCase()}`);
  }
  if (account.currency !== command.currency) {
    return failedPrecondition(
      'CURRENCY_MISMATCH',
      `account ${account.id} holds ${account.currency}, not ${command.currency}`,
      'amount.currency',
    );
  }
  const funding = context.accounts.get(fundingAccountId(command.currency));
  if (!funding) throw new Error(`funding account for ${command.currency} was not locked`);
  const deposit: DepositRecord = {
    id: newId('dep'),
    accountId: account.id,
    amountMinor: command.amountMinor,
    currency: command.currency,
    createdAt: context.now,
  };
  post(context, funding, account, command.amountMinor, deposit.id);
  context.effects.deposits.push(deposit);
  const balance = balanceOf(account);
  context.effects.events.push({
    ...event('account', account.id, account.version, context.now),
    type: 'FundsDeposited',
    deposit,
    balance,
  });
  return { kind: 'deposit', deposit, balance };
}

/** Why a well-formed payment is refused, in the order a customer would want to hear it; null: it may go. */
function declineReasonFor(
  command: AuthorizePaymentCommand,
  payer: AccountState,
  payee: AccountState,
  context: PlanContext,
): DeclineReason | null {
  if (command.amountMinor > context.maxPaymentMinor(command.currency)) return 'AMOUNT_ABOVE_LIMIT';
  if (payer.status !== 'ACTIVE') return 'PAYER_ACCOUNT_INACTIVE';
  if (payee.status !== 'ACTIVE') return 'PAYEE_ACCOUNT_INACTIVE';
  if (payer.currency !== command.currency || payee.currency !== command.currency) return 'CURRENCY_MISMATCH';
  if (payer.postedMinor - payer.heldMinor < command.amountMinor) return 'INSUFFICIENT_FUNDS';
  return null;
}

function planAuthorizePayment(command: AuthorizePaymentCommand, context: PlanContext): LedgerOutcome | DomainError {
  const payer = userAccount(context, command.payerAccountId);
  if (!payer) return notFound('account', command.payerAccountId);
  const payee = userAccount(context, command.payeeAccountId);
  if (!payee) return notFound('account', command.payeeAccountId);

  const declineReason = declineReasonFor(command, payer, payee, context);
  const payment: PaymentRecord = {
    id: newId('pay'),
    payerAccountId: payer.id,
    payeeAccountId: payee.id,
    amountMinor: command.amountMinor,
    currency: command.currency,
    status: declineReason ? 'DECLINED' : 'COMPLETED',
    declineReason,
    description: command.description,
    version: 1,
    createdAt: context.now,
    updatedAt: context.now,
  };
  if (!declineReason) post(context, payer, payee, command.amountMinor, payment.id);
  context.effects.payments.push(payment);
  context.effects.events.push({
    ...event('payment', payment.id, 1n, context.now),
    type: declineReason ? 'PaymentDeclined' : 'PaymentCompleted',
    payment,
  });
  return { kind: 'payment', payment };
}

export function planCommand(command: LedgerCommand, context: PlanContext): LedgerOutcome | DomainError {
  switch (command.kind) {
    case 'createAccount':
      return planCreateAccount(command, context);
    case 'deposit':
      return planDeposit(command, context);
    case 'authorizePayment':
      return planAuthorizePayment(command, context);
  }
}

/** Account ids a command needs locked before it is planned. */
export function accountsToLock(command: LedgerCommand): string[] {
  switch (command.kind) {
    case 'createAccount':
      return [];
    case 'deposit':
      return [command.accountId, fundingAccountId(command.currency)];
    case 'authorizePayment':
      return [command.payerAccountId, command.payeeAccountId];
  }
}
