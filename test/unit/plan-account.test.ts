/** Account status changes and payouts as pure decisions (plan-account.ts), without a database. */
import { describe, expect, it } from 'vitest';
import type { AccountStatus } from '../../src/domain/records.js';
import type { ChangeAccountStatusCommand, PayoutCommand } from '../../src/ledger/commands.js';
import { accountsToLock, planCommand } from '../../src/ledger/plan.js';
import { type AccountState, fundingAccountId } from '../../src/ledger/state.js';
import { account as baseAccount, contextWith, errorReason } from './plan-fixtures.js';

/** Accounts here start at version 3, so a bump is visible as 4. */
const account = (id: string, postedMinor: bigint, overrides: Partial<AccountState> = {}): AccountState =>
  baseAccount(id, postedMinor, { version: 3n, ...overrides });

const status = (action: ChangeAccountStatusCommand['action']): ChangeAccountStatusCommand => ({
  kind: 'changeAccountStatus',
  principal: 'p',
  idempotencyKey: 'k',
  accountId: 'acct_a',
  action,
  reason: 'why',
});

const payout = (amountMinor: bigint, currency = 'USD'): PayoutCommand => ({
  kind: 'payout',
  principal: 'p',
  idempotencyKey: 'k',
  accountId: 'acct_a',
  amountMinor,
  currency,
});

describe('account status', () => {
  it.each<[ChangeAccountStatusCommand['action'], AccountStatus, AccountStatus, string]>([
    ['freeze', 'ACTIVE', 'FROZEN', 'AccountFrozen'],
    ['unfreeze', 'FROZEN', 'ACTIVE', 'AccountUnfrozen'],
    ['close', 'ACTIVE', 'CLOSED', 'AccountClosed'],
    ['close', 'FROZEN', 'CLOSED', 'AccountClosed'],
  ])('%s takes %s to %s, bumps the version and emits %s', (action, from, to, event) => {
    const context = contextWith(account('acct_a', 0n, { status: from }));
    const outcome = planCommand(status(action), context);
    expect(outcome).toMatchObject({ kind: 'account', account: { status: to } });
    expect(context.accounts.get('acct_a')?.version).toBe(4n);
    expect(context.effects.statusChangedAccountIds).toEqual(new Set(['acct_a']));
    expect(context.effects.events).toMatchObject([{ type: event, aggregateSeq: 4n, reason: 'why' }]);
    expect(context.effects.entries).toEqual([]);
  });

  it.each<[ChangeAccountStatusCommand['action'], AccountStatus]>([
    ['freeze', 'FROZEN'],
    ['unfreeze', 'ACTIVE'],
    ['close', 'CLOSED'],
  ])('%s of an account already %s changes nothing', (action, already) => {
    const context = contextWith(account('acct_a', 0n, { status: already }));
    expect(planCommand(status(action), context)).toMatchObject({ kind: 'account', account: { status: already } });
    expect(context.effects.events).toEqual([]);
    expect(context.effects.statusChangedAccountIds.size).toBe(0);
  });

  it('refuses to reopen or freeze a closed account and to close one that holds money in any bucket', () => {
    for (const action of ['freeze', 'unfreeze'] as const) {
      expect(errorReason(planCommand(status(action), contextWith(account('acct_a', 0n, { status: 'CLOSED' }))))).toBe(
        'ACCOUNT_CLOSED',
      );
    }
    for (const overrides of [
      { postedMinor: 1n },
      { postedMinor: 5n, heldMinor: 5n },
      { postedMinor: 5n, pendingSettlementMinor: 5n },
    ]) {
      const context = contextWith(account('acct_a', 0n, overrides));
      expect(errorReason(planCommand(status('close'), context))).toBe('ACCOUNT_NOT_EMPTY');
      expect(context.effects.events).toEqual([]);
    }
  });
});

describe('payout', () => {
  it('debits available and credits the funding account, one posting and one event', () => {
    const funding = account(fundingAccountId('USD'), -900n, { ledgerRole: 'SYSTEM' });
    const context = contextWith(account('acct_a', 900n, { heldMinor: 100n }), funding);
    const outcome = planCommand(payout(800n), context);
    expect(outcome).toMatchObject({ kind: 'payout', payout: { amountMinor: 800n }, balance: { availableMinor: 0n } });
    expect(context.accounts.get('acct_a')?.postedMinor).toBe(100n);
    expect(funding.postedMinor).toBe(-100n);
    expect(context.effects.entries.map((entry) => [entry.accountId, entry.direction, entry.amountMinor])).toEqual([
      ['acct_a', 'DEBIT', 800n],
      [fundingAccountId('USD'), 'CREDIT', 800n],
    ]);
    expect(context.effects.events.map((event) => event.type)).toEqual(['FundsPaidOut']);
  });

  it('refuses more than available (held money is not available), inactive accounts and other currencies', () => {
    const funding = () => account(fundingAccountId('USD'), -900n, { ledgerRole: 'SYSTEM' });
    expect(
      errorReason(planCommand(payout(801n), contextWith(account('acct_a', 900n, { heldMinor: 100n }), funding()))),
    ).toBe('INSUFFICIENT_FUNDS');
    expect(
      errorReason(planCommand(payout(1n), contextWith(account('acct_a', 900n, { status: 'FROZEN' }), funding()))),
    ).toBe('ACCOUNT_INACTIVE');
    expect(errorReason(planCommand(payout(1n, 'EUR'), contextWith(account('acct_a', 900n), funding())))).toBe(
      'CURRENCY_MISMATCH',
    );
    expect(errorReason(planCommand(payout(1n), contextWith(funding())))).toBe('ACCOUNT_NOT_FOUND');
  });

  it('locks the account and its currency funding account', () => {
    expect(accountsToLock(payout(1n), undefined)).toEqual(['acct_a', fundingAccountId('USD')]);
    expect(accountsToLock(status('close'), undefined)).toEqual(['acct_a']);
  });
});
