/** The ledger's rules, without a database: plan.ts decides outcomes from locked state. */
import { describe, expect, it } from 'vitest';
import { DomainError } from '../../src/domain/errors.js';
import type { AuthorizePaymentCommand, DepositCommand } from '../../src/ledger/commands.js';
import { accountsToLock, planCommand } from '../../src/ledger/plan.js';
import { type AccountState, emptyEffects, fundingAccountId, type PlanContext } from '../../src/ledger/state.js';

const now = new Date('2026-01-01T00:00:00Z');

function account(id: string, postedMinor: bigint, overrides: Partial<AccountState> = {}): AccountState {
  return {
    id,
    ownerRef: 'user:x',
    currency: 'USD',
    status: 'ACTIVE',
    type: 'PERSONAL',
    kind: 'USER',
    createdAt: now,
    postedMinor,
    heldMinor: 0n,
    pendingSettlementMinor: 0n,
    version: 0n,
    updatedAt: now,
    ...overrides,
  };
}

function contextWith(...states: AccountState[]): PlanContext {
  return {
    now,
    maxPaymentMinor: () => 1_000n,
    accounts: new Map(states.map((state) => [state.id, state])),
    payments: new Map(),
    effects: emptyEffects(),
  };
}

function payment(amountMinor: bigint, overrides: Partial<AuthorizePaymentCommand> = {}): AuthorizePaymentCommand {
  return {
    kind: 'authorizePayment',
    principal: 'p',
    idempotencyKey: 'k',
    payerAccountId: 'acct_a',
    payeeAccountId: 'acct_b',
    amountMinor,
    currency: 'USD',
    description: '',
    captureMode: 'AUTOMATIC',
    holdDurationMs: 0,
    ...overrides,
  };
}

describe('authorizePayment', () => {
  it('moves the amount with one debit and one credit and bumps both versions', () => {
    const context = contextWith(account('acct_a', 500n), account('acct_b', 0n));
    const outcome = planCommand(payment(200n), context);
    expect(outcome).toMatchObject({ kind: 'payment', payment: { status: 'COMPLETED', declineReason: null } });
    expect(context.accounts.get('acct_a')?.postedMinor).toBe(300n);
    expect(context.accounts.get('acct_b')?.postedMinor).toBe(200n);
    expect(context.effects.entries.map((entry) => [entry.accountId, entry.direction, entry.amountMinor])).toEqual([
      ['acct_a', 'DEBIT', 200n],
      ['acct_b', 'CREDIT', 200n],
    ]);
    expect(context.effects.entries.map((entry) => entry.accountVersion)).toEqual([1n, 1n]);
    expect(context.effects.events.map((event) => event.type)).toEqual(['PaymentCompleted']);
  });

  it('allows spending exactly the available balance, not one unit more', () => {
    const exact = contextWith(account('acct_a', 200n), account('acct_b', 0n));
    expect(planCommand(payment(200n), exact)).toMatchObject({ payment: { status: 'COMPLETED' } });
    const over = contextWith(account('acct_a', 199n), account('acct_b', 0n));
    expect(planCommand(payment(200n), over)).toMatchObject({
      payment: { status: 'DECLINED', declineReason: 'INSUFFICIENT_FUNDS' },
    });
    expect(over.effects.entries).toEqual([]);
  });

  it('counts held and pending-settlement funds as unavailable', () => {
    const context = contextWith(
      account('acct_a', 500n, { heldMinor: 300n, pendingSettlementMinor: 100n }),
      account('acct_b', 0n),
    );
    expect(planCommand(payment(101n), context)).toMatchObject({ payment: { declineReason: 'INSUFFICIENT_FUNDS' } });
  });

  it.each([
    ['AMOUNT_ABOVE_LIMIT', payment(1_001n), {}, {}],
    ['PAYER_ACCOUNT_INACTIVE', payment(1n), { status: 'FROZEN' }, {}],
    ['PAYEE_ACCOUNT_INACTIVE', payment(1n), {}, { status: 'CLOSED' }],
    ['CURRENCY_MISMATCH', payment(1n), {}, { currency: 'EUR' }],
    ['CURRENCY_MISMATCH', payment(1n, { currency: 'EUR' }), {}, {}],
  ] as const)('declines with %s, writing a declined payment and no entries', (reason, command, payer, payee) => {
    const context = contextWith(account('acct_a', 5_000n, payer), account('acct_b', 0n, payee));
    expect(planCommand(command, context)).toMatchObject({ payment: { status: 'DECLINED', declineReason: reason } });
    expect(context.effects.entries).toEqual([]);
    expect(context.effects.touchedAccountIds.size).toBe(0);
    expect(context.effects.events.map((event) => event.type)).toEqual(['PaymentDeclined']);
  });

  it('treats missing and system accounts as not found, writing nothing', () => {
    const system = account(fundingAccountId('USD'), -5_000n, { kind: 'SYSTEM' });
    const context = contextWith(account('acct_a', 500n), system);
    const missing = planCommand(payment(1n), context);
    expect(missing).toBeInstanceOf(DomainError);
    expect((missing as DomainError).kind).toBe('not_found');
    const toSystem = planCommand(payment(1n, { payeeAccountId: system.id }), context);
    expect((toSystem as DomainError).kind).toBe('not_found');
    expect(context.effects.newPayments).toEqual([]);
  });

  it('applies a list in order against the same state', () => {
    const context = contextWith(account('acct_a', 300n), account('acct_b', 0n));
    const statuses = [payment(200n), payment(200n), payment(100n)].map(
      (command) => (planCommand(command, context) as { payment: { status: string } }).payment.status,
    );
    expect(statuses).toEqual(['COMPLETED', 'DECLINED', 'COMPLETED']);
    expect(context.accounts.get('acct_a')?.postedMinor).toBe(0n);
    expect(context.effects.entries.map((entry) => entry.accountVersion)).toEqual([1n, 1n, 2n, 2n]);
  });
});

describe('deposit', () => {
  const command: DepositCommand = {
    kind: 'deposit',
    principal: 'p',
    idempotencyKey: 'k',
    accountId: 'acct_a',
    amountMinor: 70n,
    currency: 'USD',
  };

  it('credits the account against the currency funding account, so the two sum to zero', () => {
    const funding = account(fundingAccountId('USD'), 0n, { kind: 'SYSTEM' });
    const context = contextWith(account('acct_a', 0n), funding);
    expect(planCommand(command, context)).toMatchObject({ kind: 'deposit', balance: { availableMinor: 70n } });
    expect(funding.postedMinor).toBe(-70n);
    expect(accountsToLock(command, undefined)).toEqual(['acct_a', 'sys_funding_USD']);
  });

  it('refuses a currency mismatch or an inactive account as a failed precondition', () => {
    const funding = account(fundingAccountId('USD'), 0n, { kind: 'SYSTEM' });
    const euro = contextWith(account('acct_a', 0n, { currency: 'EUR' }), funding);
    expect((planCommand(command, euro) as DomainError).reason).toBe('CURRENCY_MISMATCH');
    const closed = contextWith(account('acct_a', 0n, { status: 'CLOSED' }), funding);
    expect((planCommand(command, closed) as DomainError).reason).toBe('ACCOUNT_INACTIVE');
    expect(funding.postedMinor).toBe(0n);
  });
});
