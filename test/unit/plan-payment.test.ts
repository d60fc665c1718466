/**
 * The payment rules after authorization, without a database (plan-payment.ts, plan-settlement.ts): capture,
 * void, expiry, refund and settlement. Each test builds its own locked rows (plan-fixtures.ts) and checks the
 * outcome or refusal reason, the balances, and that a refusal writes nothing.
 */
import { describe, expect, it } from 'vitest';
import { InvariantViolation } from '../../src/domain/assert.js';
import { planCommand } from '../../src/ledger/plan.js';
import { planSettlement } from '../../src/ledger/plan-settlement.js';
import { availableOf, type PaymentState, type PlanContext } from '../../src/ledger/state.js';
import {
  account,
  capture,
  completedPayment,
  contextWith,
  errorReason,
  expireHold,
  hold,
  now,
  payment,
  refund,
  usd,
  voidHold,
} from './plan-fixtures.js';

const later = new Date(now.getTime() + 60_000);

/** acct_a (500 posted) holds 300 for acct_c under pay_h, expiring at `expiresAt`. */
function withHold(expiresAt = later, payee = account('acct_c', 0n)): PlanContext {
  const context = contextWith(account('acct_a', 500n, { heldMinor: 300n }), payee);
  context.payments.set('pay_h', hold('pay_h', 300n, expiresAt));
  return context;
}

/** acct_a paid 300 to acct_b under pay_p; acct_b holds `payeePostedMinor`. */
function withPaid(payeePostedMinor = 300n, overrides: Partial<PaymentState> = {}, payee: object = {}): PlanContext {
  const context = contextWith(account('acct_a', 0n), account('acct_b', payeePostedMinor, payee));
  context.payments.set('pay_p', completedPayment('pay_p', 300n, overrides));
  return context;
}

/** A refusal changes nothing: no posting, no changed payment, no event. */
function expectNothingWritten(context: PlanContext) {
  expect(context.effects.entries).toEqual([]);
  expect(context.effects.changedPayments.size).toBe(0);
  expect(context.effects.events).toEqual([]);
}

describe('capture', () => {
  it('of the whole hold moves it from the payer to the payee and completes the payment', () => {
    const context = withHold();
    expect(planCommand(capture('pay_h'), context)).toMatchObject({
      kind: 'payment',
      payment: { status: 'COMPLETED', capturedMinor: 300n, awaitsSettlement: false },
    });
    expect(context.accounts.get('acct_a')).toMatchObject({ postedMinor: 200n, heldMinor: 0n });
    expect(context.accounts.get('acct_c')).toMatchObject({ postedMinor: 300n });
    expect(context.effects.events.map((event) => event.type)).toEqual(['PaymentCaptured']);
  });

  it('of part of the hold releases the rest back to the payer', () => {
    const context = withHold();
    expect(planCommand(capture('pay_h', usd(100n)), context)).toMatchObject({
      payment: { status: 'COMPLETED', capturedMinor: 100n, amountMinor: 300n },
    });
    const payer = context.accounts.get('acct_a');
    expect(payer).toMatchObject({ postedMinor: 400n, heldMinor: 0n });
    expect(payer && availableOf(payer)).toBe(400n);
    expect(context.accounts.get('acct_c')?.postedMinor).toBe(100n);
  });

  it('to a merchant lands in pending settlement and awaits settlement', () => {
    const context = withHold(later, account('acct_c', 0n, { type: 'MERCHANT' }));
    expect(planCommand(capture('pay_h'), context)).toMatchObject({ payment: { awaitsSettlement: true } });
    expect(context.accounts.get('acct_c')).toMatchObject({ postedMinor: 300n, pendingSettlementMinor: 300n });
  });

  it.each([
    ['AMOUNT_EXCEEDS_AUTHORIZED', 'more than the hold', () => withHold(), usd(301n)],
    ['CURRENCY_MISMATCH', 'in another currency', () => withHold(), { amountMinor: 100n, currency: 'EUR' }],
    ['HOLD_EXPIRED', 'at its expiry', () => withHold(now), null],
    [
      'PAYEE_ACCOUNT_INACTIVE',
      'to a frozen payee',
      () => withHold(later, account('acct_c', 0n, { status: 'FROZEN' })),
      null,
    ],
  ] as const)('is refused with %s %s, and writes nothing', (reason, _case, setUp, amount) => {
    const context = setUp();
    expect(errorReason(planCommand(capture('pay_h', amount), context))).toBe(reason);
    expect(context.accounts.get('acct_a')).toMatchObject({ postedMinor: 500n, heldMinor: 300n });
    expectNothingWritten(context);
  });

  it.each(['COMPLETED', 'VOIDED', 'EXPIRED', 'DECLINED'] as const)(
    'of a %s payment is refused with PAYMENT_NOT_AUTHORIZED',
    (status) => {
      const context = withHold();
      const payment = context.payments.get('pay_h');
      if (payment) payment.status = status;
      expect(errorReason(planCommand(capture('pay_h'), context))).toBe('PAYMENT_NOT_AUTHORIZED');
      expectNothingWritten(context);
    },
  );

  it('of an unknown payment, or by someone who does not own the payee, is NOT_FOUND', () => {
    const context = withHold();
    expect(planCommand(capture('pay_missing'), context)).toMatchObject({ kind: 'not_found', field: 'payment_id' });
    const foreign = { ...capture('pay_h'), actingOwnerRef: 'user:other' };
    expect(planCommand(foreign, context)).toMatchObject({ kind: 'not_found', field: 'payment_id' });
    expectNothingWritten(context);
  });
});

describe('void', () => {
  it('releases the whole hold back to the payer', () => {
    const context = withHold();
    expect(planCommand(voidHold('pay_h'), context)).toMatchObject({ payment: { status: 'VOIDED', capturedMinor: 0n } });
    expect(context.accounts.get('acct_a')).toMatchObject({ postedMinor: 500n, heldMinor: 0n });
    expect(context.accounts.get('acct_c')?.postedMinor).toBe(0n);
    expect(context.effects.events.map((event) => event.type)).toEqual(['PaymentVoided']);
  });

  it('a second time is refused with PAYMENT_NOT_AUTHORIZED, releasing nothing more', () => {
    const context = withHold();
    planCommand(voidHold('pay_h'), context);
    expect(errorReason(planCommand(voidHold('pay_h'), context))).toBe('PAYMENT_NOT_AUTHORIZED');
    expect(context.accounts.get('acct_a')).toMatchObject({ postedMinor: 500n, heldMinor: 0n });
    expect(context.effects.entries).toHaveLength(2);
  });

  it('after the expiry is refused with HOLD_EXPIRED: the sweeper releases it', () => {
    const context = withHold(now);
    expect(errorReason(planCommand(voidHold('pay_h'), context))).toBe('HOLD_EXPIRED');
    expectNothingWritten(context);
  });
});

describe('expiry', () => {
  it("the sweeper's command releases an expired hold: EXPIRED", () => {
    const context = withHold(now);
    expect(planCommand(expireHold('pay_h'), context)).toMatchObject({ payment: { status: 'EXPIRED' } });
    expect(context.accounts.get('acct_a')).toMatchObject({ postedMinor: 500n, heldMinor: 0n });
    expect(context.effects.events.map((event) => event.type)).toEqual(['PaymentExpired']);
  });

  it('is refused with HOLD_NOT_EXPIRED for a live hold, and for one already released', () => {
    const live = withHold(later);
    expect(errorReason(planCommand(expireHold('pay_h'), live))).toBe('HOLD_NOT_EXPIRED');
    expectNothingWritten(live);
    const released = withHold(now);
    planCommand(expireHold('pay_h'), released);
    expect(errorReason(planCommand(expireHold('pay_h'), released))).toBe('HOLD_NOT_EXPIRED');
    expect(released.accounts.get('acct_a')).toMatchObject({ postedMinor: 500n, heldMinor: 0n });
  });

  it('an expired hold no longer counts against the payer, and is released once', () => {
    const context = withHold(now);
    context.accounts.set('acct_b', account('acct_b', 0n));
    expect(planCommand(payment(500n), context)).toMatchObject({ payment: { status: 'COMPLETED' } });
    expect(context.accounts.get('acct_a')).toMatchObject({ postedMinor: 0n, heldMinor: 0n });
    expect(errorReason(planCommand(expireHold('pay_h'), context))).toBe('HOLD_NOT_EXPIRED');
  });
});

describe('refund', () => {
  it('of part, then the rest, takes the payment to PARTIALLY_REFUNDED and then REFUNDED', () => {
    const context = withPaid();
    expect(planCommand(refund('pay_p', usd(100n)), context)).toMatchObject({
      kind: 'refund',
      refund: { status: 'COMPLETED', amountMinor: 100n },
      payment: { status: 'PARTIALLY_REFUNDED', refundedMinor: 100n },
    });
    expect(planCommand(refund('pay_p'), context)).toMatchObject({
      refund: { status: 'COMPLETED', amountMinor: 200n },
      payment: { status: 'REFUNDED', refundedMinor: 300n },
    });
    expect(context.accounts.get('acct_a')?.postedMinor).toBe(300n);
    expect(context.accounts.get('acct_b')?.postedMinor).toBe(0n);
    expect(errorReason(planCommand(refund('pay_p'), context))).toBe('PAYMENT_NOT_REFUNDABLE');
  });

  it('of more than is left is refused with REFUND_EXCEEDS_CAPTURED', () => {
    const context = withPaid(300n, { status: 'PARTIALLY_REFUNDED', refundedMinor: 100n });
    expect(errorReason(planCommand(refund('pay_p', usd(201n)), context))).toBe('REFUND_EXCEEDS_CAPTURED');
    expectNothingWritten(context);
    expect(planCommand(refund('pay_p', usd(200n)), context)).toMatchObject({ payment: { status: 'REFUNDED' } });
  });

  it('in another currency is refused with CURRENCY_MISMATCH', () => {
    const context = withPaid();
    const refused = planCommand(refund('pay_p', { amountMinor: 1n, currency: 'EUR' }), context);
    expect(errorReason(refused)).toBe('CURRENCY_MISMATCH');
    expectNothingWritten(context);
  });

  it.each([
    ['INSUFFICIENT_FUNDS', 299n, {}],
    ['PAYEE_ACCOUNT_INACTIVE', 300n, { status: 'FROZEN' }],
  ] as const)('the payee cannot pay is recorded DECLINED (%s) and moves nothing', (reason, posted, payee) => {
    const context = withPaid(posted, {}, payee);
    expect(planCommand(refund('pay_p'), context)).toMatchObject({
      refund: { status: 'DECLINED', declineReason: reason },
      payment: { status: 'COMPLETED', refundedMinor: 0n },
    });
    expect(context.effects.entries).toEqual([]);
    expect(context.accounts.get('acct_b')?.postedMinor).toBe(posted);
    expect(context.effects.events.map((event) => event.type)).toEqual(['RefundDeclined']);
  });

  it.each(['AUTHORIZED', 'VOIDED', 'EXPIRED', 'DECLINED', 'REFUNDED'] as const)(
    'of a %s payment is refused with PAYMENT_NOT_REFUNDABLE',
    (status) => {
      const context = withPaid(300n, { status });
      expect(errorReason(planCommand(refund('pay_p'), context))).toBe('PAYMENT_NOT_REFUNDABLE');
      expectNothingWritten(context);
    },
  );

  it("to an unsettled merchant payment comes out of the merchant's pending settlement", () => {
    const merchant = { type: 'MERCHANT', pendingSettlementMinor: 300n } as const;
    const context = withPaid(300n, { awaitsSettlement: true }, merchant);
    expect(planCommand(refund('pay_p', usd(100n)), context)).toMatchObject({ refund: { status: 'COMPLETED' } });
    expect(context.accounts.get('acct_b')).toMatchObject({ postedMinor: 200n, pendingSettlementMinor: 200n });
  });
});

describe('settlement', () => {
  /** Merchant acct_b: pay_1 captured 200 (50 refunded), pay_2 captured 100; 250 pending, 40 available. */
  function merchantWithUnsettled() {
    const merchant = account('acct_b', 290n, { type: 'MERCHANT', pendingSettlementMinor: 250n });
    const context = contextWith(account('acct_a', 0n), merchant);
    const unsettled = [
      completedPayment('pay_1', 200n, { awaitsSettlement: true, refundedMinor: 50n, status: 'PARTIALLY_REFUNDED' }),
      completedPayment('pay_2', 100n, { awaitsSettlement: true }),
    ];
    for (const payment of unsettled) context.payments.set(payment.id, payment);
    return { context, merchant, unsettled };
  }

  it('moves the net of the payments from pending settlement to available, in one posting', () => {
    const { context, merchant, unsettled } = merchantWithUnsettled();
    const settlement = planSettlement(context, merchant, unsettled);
    expect(settlement).toMatchObject({ paymentCount: 2, grossMinor: 300n, refundsMinor: 50n, netMinor: 250n });
    expect(merchant).toMatchObject({ postedMinor: 290n, pendingSettlementMinor: 0n });
    expect(availableOf(merchant)).toBe(290n);
    expect(context.effects.entries).toHaveLength(2);
    expect(unsettled.map((payment) => payment.settlementId)).toEqual([settlement?.id, settlement?.id]);
  });

  it('settles each payment once: a settled payment is never in a second settlement', () => {
    const { context, merchant, unsettled } = merchantWithUnsettled();
    planSettlement(context, merchant, unsettled);
    expect(() => planSettlement(context, merchant, unsettled)).toThrow(InvariantViolation);
    expect(merchant.pendingSettlementMinor).toBe(0n);
    expect(context.effects.settlements).toHaveLength(1);
  });

  it('of nothing is no settlement', () => {
    const { context, merchant } = merchantWithUnsettled();
    expect(planSettlement(context, merchant, [])).toBeUndefined();
    expectNothingWritten(context);
  });

  it('of fully refunded payments moves nothing but is still recorded', () => {
    const merchant = account('acct_b', 0n, { type: 'MERCHANT' });
    const context = contextWith(merchant);
    const refunded = completedPayment('pay_1', 100n, {
      awaitsSettlement: true,
      refundedMinor: 100n,
      status: 'REFUNDED',
    });
    expect(planSettlement(context, merchant, [refunded])).toMatchObject({ netMinor: 0n, paymentCount: 1 });
    expect(context.effects.entries).toEqual([]);
    expect(merchant.version).toBe(1n);
  });

  it('afterwards, a refund comes out of available', () => {
    const { context, merchant, unsettled } = merchantWithUnsettled();
    planSettlement(context, merchant, unsettled);
    expect(planCommand(refund('pay_2', usd(100n)), context)).toMatchObject({ refund: { status: 'COMPLETED' } });
    expect(merchant).toMatchObject({ postedMinor: 190n, pendingSettlementMinor: 0n });
  });
});
