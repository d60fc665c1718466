/**
 * Account status and payouts, as pure decisions over locked state (like plan.ts).
 *
 * What each status allows (docs/api.md, "Listing, account status, payouts and live updates"):
 *   ACTIVE  everything.
 *   FROZEN  no new payment from or to it (recorded as DECLINED, PAYER/PAYEE_ACCOUNT_INACTIVE), no deposit,
 *           no payout, no refund from or to it (DECLINED). Still allowed, because they only finish what was
 *           agreed before the freeze and move nothing to anyone new: capturing a hold it placed as payer
 *           (the money was already reserved), voiding or expiring its holds (money goes back to it), and
 *           settling its pending money as a merchant (it stays in the account, and frozen it cannot be spent).
 *   CLOSED  nothing moves: only possible with every bucket at zero, so it has no holds and nothing pending;
 *           a hold another account placed to pay it can only be voided or expire (capture is refused).
 * Status changes are idempotent: asking for the status an account already has changes nothing and emits
 * no event. CLOSED is final.
 */

import { invariant } from '../domain/assert.js';
import { DomainError, failedPrecondition, notFound } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import type { AccountStatus, PayoutRecord } from '../domain/records.js';
import type { ChangeAccountStatusCommand, LedgerOutcome, PayoutCommand } from './commands.js';
import { releaseExpiredHolds, spendableOf } from './plan-payment.js';
import {
  type AccountState,
  accountOf,
  activeAccountIn,
  availableOf,
  balanceOf,
  customerAccount,
  domainEvent,
  fundingAccountId,
  type PlanContext,
  post,
  touchAccount,
} from './state.js';

const TARGET: Record<ChangeAccountStatusCommand['action'], AccountStatus> = {
  freeze: 'FROZEN',
  unfreeze: 'ACTIVE',
  close: 'CLOSED',
};

const EVENT_TYPE = { FROZEN: 'AccountFrozen', ACTIVE: 'AccountUnfrozen', CLOSED: 'AccountClosed' } as const;

function refusal(account: AccountState, target: AccountStatus): DomainError | undefined {
  if (account.status === 'CLOSED') {
    return failedPrecondition(
      'ACCOUNT_CLOSED',
      `account ${account.id} is closed; a closed account stays closed`,
      'account_id',
    );
  }
  if (target === 'ACTIVE' && account.status !== 'FROZEN') return undefined;
  if (
    target === 'CLOSED' &&
    (account.postedMinor !== 0n || account.heldMinor !== 0n || account.pendingSettlementMinor !== 0n)
  ) {
    return failedPrecondition(
      'ACCOUNT_NOT_EMPTY',
      `account ${account.id} still holds money (available ${availableOf(account)}, held ${account.heldMinor}, pending settlement ${account.pendingSettlementMinor}); pay it out, release its holds and settle it first`,
      'account_id',
    );
  }
  return undefined;
}

/**
 * Freezes, unfreezes or closes a USER account (a no-op answer if it is already in the target status).
 * Returns NOT_FOUND (unknown or SYSTEM account), ACCOUNT_CLOSED (a closed account stays closed) or
 * ACCOUNT_NOT_EMPTY (closing an account that still holds posted, held or pending money).
 */
export function planChangeAccountStatus(
  command: ChangeAccountStatusCommand,
  context: PlanContext,
): LedgerOutcome | DomainError {
  const account = customerAccount(context, command.accountId);
  if (!account) return notFound('account', command.accountId, 'account_id');
  const target = TARGET[command.action];
  if (account.status === target) return { kind: 'account', account: accountOf(account) };
  const refused = refusal(account, target);
  if (refused) return refused;
  account.status = target;
  // The account's version is its event sequence and what live watchers order changes by.
  touchAccount(context, account);
  context.effects.statusChangedAccountIds.add(account.id);
  const record = accountOf(account);
  context.effects.events.push(
    domainEvent('account', account.id, account.version, context.now, {
      type: EVENT_TYPE[target],
      account: record,
      reason: command.reason,
    }),
  );
  return { kind: 'account', account: record };
}

/**
 * Money out of the ledger: `amountMinor` from the account's available to its currency's funding account.
 * Returns NOT_FOUND, ACCOUNT_INACTIVE, CURRENCY_MISMATCH or INSUFFICIENT_FUNDS (available only: held and
 * pending settlement money cannot be paid out). Throws an InvariantViolation if the funding account was not
 * locked.
 */
export function planPayout(command: PayoutCommand, context: PlanContext): LedgerOutcome | DomainError {
  const account = activeAccountIn(context, command.accountId, command.currency);
  if (account instanceof DomainError) return account;
  // Expired holds no longer reserve money, swept or not (as for payments); released only if the payout goes on.
  const spendable = spendableOf(account, context);
  if (spendable < command.amountMinor) {
    return failedPrecondition(
      'INSUFFICIENT_FUNDS',
      `account ${account.id} has ${spendable} minor units available`,
      'amount.amount_minor',
    );
  }
  releaseExpiredHolds(account, context);
  // Money in an account came in through a deposit in its currency, so the funding account exists.
  const funding = context.accounts.get(fundingAccountId(command.currency));
  invariant(funding, `funding account for ${command.currency} was not locked`);
  const payout: PayoutRecord = {
    id: newId('pout'),
    accountId: account.id,
    amountMinor: command.amountMinor,
    currency: command.currency,
    createdAt: context.now,
  };
  post(
    context,
    { account, bucket: 'AVAILABLE' },
    { account: funding, bucket: 'AVAILABLE' },
    command.amountMinor,
    payout.id,
  );
  context.effects.payouts.push(payout);
  const balance = balanceOf(account);
  context.effects.events.push(
    domainEvent('account', account.id, account.version, context.now, {
      type: 'FundsPaidOut',
      payout,
      balance,
    }),
  );
  return { kind: 'payout', payout, balance };
}
