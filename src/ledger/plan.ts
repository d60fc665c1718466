/**
 * Pure decisions: given the locked state of the accounts (and payments) a command touches, decide its
 * outcome and the records it writes. No I/O here, so every rule of the ledger can be unit-tested without a
 * database; apply.ts reads and locks the state first and writes the effects afterwards, in one transaction.
 * Account and deposit rules live here; payment rules in plan-payment.ts.
 */

import { invariant } from '../domain/assert.js';
import { DomainError, failedPrecondition, invalidArgument } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import type { DepositRecord } from '../domain/records.js';
import type { CreateAccountCommand, DepositCommand, LedgerCommand, LedgerOutcome } from './commands.js';
import { planChangeAccountStatus, planPayout } from './plan-account.js';
import {
  planAuthorizePayment,
  planCapturePayment,
  planExpireHold,
  planRefundPayment,
  planVoidPayment,
} from './plan-payment.js';
import {
  type AccountState,
  accountOf,
  activeAccountIn,
  balanceOf,
  domainEvent,
  fundingAccountId,
  MAX_CURRENCY_SUPPLY_MINOR,
  type PlanContext,
  post,
} from './state.js';

function planCreateAccount(command: CreateAccountCommand, context: PlanContext): LedgerOutcome {
  const state: AccountState = {
    id: newId('acct'),
    ownerRef: command.ownerRef,
    currency: command.currency,
    status: 'ACTIVE',
    type: command.type,
    ledgerRole: 'USER',
    createdAt: context.now,
    postedMinor: 0n,
    heldMinor: 0n,
    pendingSettlementMinor: 0n,
    version: 0n,
    updatedAt: context.now,
  };
  context.accounts.set(state.id, state);
  context.effects.newAccounts.push(state);
  const account = accountOf(state);
  context.effects.events.push(domainEvent('account', state.id, 0n, context.now, { type: 'AccountCreated', account }));
  return { kind: 'account', account };
}

function planDeposit(command: DepositCommand, context: PlanContext): LedgerOutcome | DomainError {
  const account = activeAccountIn(context, command.accountId, command.currency);
  if (account instanceof DomainError) return account;
  const funding = context.accounts.get(fundingAccountId(command.currency));
  invariant(funding, `funding account for ${command.currency} was not locked`);
  const beyondLimit = depositBeyondLimit(command, funding, context);
  if (beyondLimit) return beyondLimit;
  const deposit: DepositRecord = {
    id: newId('dep'),
    accountId: account.id,
    amountMinor: command.amountMinor,
    currency: command.currency,
    createdAt: context.now,
  };
  post(
    context,
    { account: funding, bucket: 'AVAILABLE' },
    { account, bucket: 'AVAILABLE' },
    command.amountMinor,
    deposit.id,
  );
  context.effects.deposits.push(deposit);
  const balance = balanceOf(account);
  context.effects.events.push(
    domainEvent('account', account.id, account.version, context.now, {
      type: 'FundsDeposited',
      deposit,
      balance,
    }),
  );
  return { kind: 'deposit', deposit, balance };
}

/**
 * Deposits are bounded twice: one deposit by the configured maximum (MAX_DEPOSIT_MAJOR_UNITS), and all
 * deposits in a currency together by MAX_CURRENCY_SUPPLY_MINOR, which keeps every sum in int64 range.
 */
function depositBeyondLimit(command: DepositCommand, funding: AccountState, context: PlanContext): DomainError | null {
  const maxDeposit = (context.maxDepositMinor ?? context.maxPaymentMinor)(command.currency);
  if (command.amountMinor > maxDeposit) {
    return invalidArgument(
      'amount.amount_minor',
      'AMOUNT_ABOVE_LIMIT',
      `a deposit in ${command.currency} is at most ${maxDeposit} minor units`,
    );
  }
  // The funding account's balance is minus everything ever deposited in the currency.
  if (-funding.postedMinor + command.amountMinor > MAX_CURRENCY_SUPPLY_MINOR) {
    return failedPrecondition(
      'BALANCE_LIMIT_EXCEEDED',
      `deposits in ${command.currency} would pass the ledger's limit of ${MAX_CURRENCY_SUPPLY_MINOR} minor units`,
      'amount.amount_minor',
    );
  }
  return null;
}

/**
 * Plans one command against the locked rows in `context` (amounts in minor units of the command's
 * currency): records its postings, row changes and events in `context.effects` and returns the outcome, or
 * the DomainError that refuses it, having changed nothing. Pure: no I/O, time from `context.now`. Which
 * reasons each command can return is on its plan function; a deposit returns NOT_FOUND (unknown or SYSTEM
 * account), ACCOUNT_INACTIVE, CURRENCY_MISMATCH, AMOUNT_ABOVE_LIMIT or BALANCE_LIMIT_EXCEEDED; creating an
 * account never fails. Invariant: every posting balances (post() in state.ts), so the books stay balanced.
 * Throws an InvariantViolation if a row the command needs was not locked (a bug in accountsToLock).
 */
export function planCommand(command: LedgerCommand, context: PlanContext): LedgerOutcome | DomainError {
  switch (command.kind) {
    case 'changeAccountStatus':
      return planChangeAccountStatus(command, context);
    case 'payout':
      return planPayout(command, context);
    case 'createAccount':
      return planCreateAccount(command, context);
    case 'deposit':
      return planDeposit(command, context);
    case 'authorizePayment':
      return planAuthorizePayment(command, context);
    case 'capturePayment':
      return planCapturePayment(command, context);
    case 'voidPayment':
      return planVoidPayment(command, context);
    case 'expireHold':
      return planExpireHold(command, context);
    case 'refundPayment':
      return planRefundPayment(command, context);
  }
}

/**
 * Account ids a command needs locked before it is planned. Commands on an existing payment name its
 * accounts only once the payment row is read (and locked), so they take it as an argument.
 */
export function accountsToLock(
  command: LedgerCommand,
  lockedPayment: { payerAccountId: string; payeeAccountId: string } | undefined,
): string[] {
  switch (command.kind) {
    case 'createAccount':
      return [];
    case 'changeAccountStatus':
      return [command.accountId];
    case 'payout':
    case 'deposit':
      return [command.accountId, fundingAccountId(command.currency)];
    case 'authorizePayment':
      return [command.payerAccountId, command.payeeAccountId];
    default:
      return lockedPayment ? [lockedPayment.payerAccountId, lockedPayment.payeeAccountId] : [];
  }
}
