/** The ledger's rules, without a database: plan.ts decides outcomes from locked state. */
import { describe, expect, it } from 'vitest';
import { DomainError } from '../../src/domain/errors.js';
import type { DepositCommand, RefundPaymentCommand } from '../../src/ledger/commands.js';
import { accountsToLock, planCommand } from '../../src/ledger/plan.js';
import { fundingAccountId, MAX_CURRENCY_SUPPLY_MINOR } from '../../src/ledger/state.js';
import { account, contextWith, hold, now, payment } from './plan-fixtures.js';

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
    const system = account(fundingAccountId('USD'), -5_000n, { ledgerRole: 'SYSTEM' });
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
    const funding = account(fundingAccountId('USD'), 0n, { ledgerRole: 'SYSTEM' });
    const context = contextWith(account('acct_a', 0n), funding);
    expect(planCommand(command, context)).toMatchObject({ kind: 'deposit', balance: { availableMinor: 70n } });
    expect(funding.postedMinor).toBe(-70n);
    expect(accountsToLock(command, undefined)).toEqual(['acct_a', 'sys_funding_USD']);
  });

  it('refuses a currency mismatch or an inactive account as a failed precondition', () => {
    const funding = account(fundingAccountId('USD'), 0n, { ledgerRole: 'SYSTEM' });
    const euro = contextWith(account('acct_a', 0n, { currency: 'EUR' }), funding);
    expect((planCommand(command, euro) as DomainError).reason).toBe('CURRENCY_MISMATCH');
    const closed = contextWith(account('acct_a', 0n, { status: 'CLOSED' }), funding);
    expect((planCommand(command, closed) as DomainError).reason).toBe('ACCOUNT_INACTIVE');
    expect(funding.postedMinor).toBe(0n);
  });
});

describe('bounds that keep every sum inside int64 (issue 11)', () => {
  const deposit = (amountMinor: bigint): DepositCommand => ({
    kind: 'deposit',
    principal: 'p',
    idempotencyKey: 'k',
    accountId: 'acct_a',
    amountMinor,
    currency: 'USD',
  });
  const funding = (depositedMinor: bigint) =>
    account(fundingAccountId('USD'), -depositedMinor, { ledgerRole: 'SYSTEM', ownerRef: 'system:funding' });

  it('refuses a deposit above the configured maximum and writes nothing', () => {
    const context = { ...contextWith(account('acct_a', 0n), funding(0n)), maxDepositMinor: () => 5_000n };
    expect(planCommand(deposit(5_000n), context)).toMatchObject({ kind: 'deposit' });
    const refused = planCommand(deposit(5_001n), context);
    expect(refused).toMatchObject({
      kind: 'invalid_argument',
      reason: 'AMOUNT_ABOVE_LIMIT',
      field: 'amount.amount_minor',
    });
    expect(context.effects.entries).toHaveLength(2);
  });

  it('refuses a deposit that would take a currency past 2^62 in total, up to the last unit', () => {
    const context = {
      ...contextWith(account('acct_a', 0n), funding(MAX_CURRENCY_SUPPLY_MINOR - 10n)),
      maxDepositMinor: () => 100n,
    };
    const refused = planCommand(deposit(11n), context);
    expect(refused).toBeInstanceOf(DomainError);
    expect(refused).toMatchObject({ kind: 'failed_precondition', reason: 'BALANCE_LIMIT_EXCEEDED' });
    expect(context.effects.entries).toEqual([]);
    expect(planCommand(deposit(10n), context)).toMatchObject({ kind: 'deposit' });
    expect(context.accounts.get(fundingAccountId('USD'))?.postedMinor).toBe(-MAX_CURRENCY_SUPPLY_MINOR);
  });
});

describe('expired holds', () => {
  it('no longer count against the payer from their expiry, sweeper or not', () => {
    const context = contextWith(account('acct_a', 500n, { heldMinor: 500n }), account('acct_b', 0n));
    context.payments.set('pay_expired', hold('pay_expired', 300n, now));
    context.payments.set('pay_live', hold('pay_live', 200n, new Date(now.getTime() + 1)));
    expect(planCommand(payment(300n), context)).toMatchObject({ payment: { status: 'COMPLETED' } });
    expect(context.payments.get('pay_expired')?.status).toBe('EXPIRED');
    expect(context.payments.get('pay_live')?.status).toBe('AUTHORIZED');
    expect(context.accounts.get('acct_a')).toMatchObject({ postedMinor: 200n, heldMinor: 200n });
    expect(context.effects.events.map((event) => event.type)).toEqual(['PaymentExpired', 'PaymentCompleted']);
  });

  it('no longer count against a payee refunding', () => {
    const context = contextWith(account('acct_a', 0n), account('acct_b', 300n, { heldMinor: 300n }));
    context.payments.set('pay_h', { ...hold('pay_h', 300n, now), payerAccountId: 'acct_b', payeeAccountId: 'acct_a' });
    const paid = hold('pay_p', 300n, now);
    context.payments.set('pay_p', { ...paid, payeeAccountId: 'acct_b', status: 'COMPLETED', capturedMinor: 300n });
    const refund: RefundPaymentCommand = {
      kind: 'refundPayment',
      principal: 'p',
      idempotencyKey: 'r',
      paymentId: 'pay_p',
      amount: null,
      reason: '',
    };
    expect(planCommand(refund, context)).toMatchObject({ kind: 'refund', refund: { status: 'COMPLETED' } });
    expect(context.payments.get('pay_h')?.status).toBe('EXPIRED');
    expect(context.accounts.get('acct_b')).toMatchObject({ postedMinor: 0n, heldMinor: 0n });
  });

  it('are not released by a payment refused as NOT_FOUND', () => {
    const context = contextWith(account('acct_a', 500n, { heldMinor: 500n }));
    context.payments.set('pay_expired', hold('pay_expired', 300n, now));
    expect(planCommand(payment(300n), context)).toMatchObject({ kind: 'not_found', field: 'payee_account_id' });
    expect(context.effects.entries).toEqual([]);
  });
});
