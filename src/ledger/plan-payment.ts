/**
 * The payment lifecycle, as pure decisions over locked state:
 *   AUTOMATIC: → COMPLETED (or DECLINED)
 *   MANUAL:    → AUTHORIZED (hold: payer AVAILABLE → payer HELD) → COMPLETED | VOIDED | EXPIRED
 *   COMPLETED → PARTIALLY_REFUNDED → REFUNDED
 * Each transition is allowed only from the states listed in it; a refused one writes nothing.
 */
import { invariant } from '../domain/assert.js';
import { type DomainError, failedPrecondition, notFound } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import type { BalanceBucket, DeclineReason, PaymentRecord, RefundRecord } from '../domain/records.js';
import type { PaymentEventType } from '../events/domain-events.js';
import type {
  AuthorizePaymentCommand,
  CapturePaymentCommand,
  ExpireHoldCommand,
  LedgerOutcome,
  OptionalAmount,
  RefundPaymentCommand,
  VoidPaymentCommand,
} from './commands.js';
import {
  type AccountState,
  availableOf,
  bucketBalance,
  changePayment,
  customerAccount,
  domainEvent,
  type PaymentState,
  type PlanContext,
  post,
  snapshot,
} from './state.js';

/** Where money captured to a payee lands: merchants wait for settlement, people can spend it at once. */
function captureBucket(payee: AccountState): BalanceBucket {
  return payee.type === 'MERCHANT' ? 'PENDING_SETTLEMENT' : 'AVAILABLE';
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
  if (availableOf(payer) < command.amountMinor) return 'INSUFFICIENT_FUNDS';
  return null;
}

function paymentEvent(context: PlanContext, type: PaymentEventType, payment: PaymentRecord) {
  context.effects.events.push(
    domainEvent('payment', payment.id, BigInt(payment.version), context.now, {
      type,
      payment,
    }),
  );
}

/**
 * A new payment of `amountMinor` from payer to payee: AUTOMATIC moves it at once (to the payee's available,
 * or pending settlement for a merchant), MANUAL holds it on the payer until `holdDurationMs` from now.
 * Returns NOT_FOUND for an unknown, SYSTEM or (for a wallet user) foreign payer, or an unknown payee. A
 * refusal by the money rules (insufficient funds, inactive account, currency, limit) is not an error: the
 * payment is recorded as DECLINED with its decline reason, and nothing moves. Expired holds of the payer are
 * released first, so they never reduce what it can spend.
 */
export function planAuthorizePayment(
  command: AuthorizePaymentCommand,
  context: PlanContext,
): LedgerOutcome | DomainError {
  const payer = customerAccount(context, command.payerAccountId);
  if (!payer || !ownedBy(payer, command.actingOwnerRef))
    return notFound('account', command.payerAccountId, 'payer_account_id');
  const payee = customerAccount(context, command.payeeAccountId);
  if (!payee) return notFound('account', command.payeeAccountId, 'payee_account_id');
  releaseExpiredHolds(payer, context);

  const declineReason = declineReasonFor(command, payer, payee, context);
  const manual = command.captureMode === 'MANUAL';
  const payment: PaymentRecord = {
    id: newId('pay'),
    payerAccountId: payer.id,
    payeeAccountId: payee.id,
    amountMinor: command.amountMinor,
    currency: command.currency,
    status: declineReason ? 'DECLINED' : manual ? 'AUTHORIZED' : 'COMPLETED',
    declineReason,
    description: command.description,
    captureMode: command.captureMode,
    capturedMinor: declineReason || manual ? 0n : command.amountMinor,
    refundedMinor: 0n,
    expiresAt: manual && !declineReason ? new Date(context.now.getTime() + command.holdDurationMs) : null,
    awaitsSettlement: !declineReason && !manual && payee.type === 'MERCHANT',
    settlementId: null,
    version: 1,
    createdAt: context.now,
    updatedAt: context.now,
  };
  if (!declineReason) {
    const to = manual ? { account: payer, bucket: 'HELD' as const } : { account: payee, bucket: captureBucket(payee) };
    post(context, { account: payer, bucket: 'AVAILABLE' }, to, command.amountMinor, payment.id);
  }
  context.effects.newPayments.push(payment);
  paymentEvent(context, declineReason ? 'PaymentDeclined' : manual ? 'PaymentAuthorized' : 'PaymentCompleted', payment);
  return { kind: 'payment', payment: { ...payment } };
}

/**
 * From its expiry a hold no longer reduces what its payer can spend, whether or not the sweeper has run: the
 * account's expired holds that apply.ts found and locked (context.payments) are released here, in the same
 * transaction, before a payment (or a refund the account pays) is weighed. Only that account's balance
 * changes, as in planExpireHold.
 */
export function releaseExpiredHolds(payer: AccountState, context: PlanContext): void {
  for (const payment of expiredHoldsOf(payer, context)) {
    const from = { account: payer, bucket: 'HELD' as const };
    post(context, from, { account: payer, bucket: 'AVAILABLE' }, payment.amountMinor, payment.id);
    changePayment(context, payment, { status: 'EXPIRED' });
    paymentEvent(context, 'PaymentExpired', snapshot(payment));
  }
}

/** The payer's holds past their expiry among the locked payments (those apply.ts locked for it). */
function expiredHoldsOf(payer: AccountState, context: PlanContext): PaymentState[] {
  return [...context.payments.values()].filter(
    (payment) => payment.payerAccountId === payer.id && holdExpired(payment, context.now),
  );
}

/** What `payer` can spend once its expired holds are released (see releaseExpiredHolds), without releasing. */
export function spendableOf(payer: AccountState, context: PlanContext): bigint {
  return expiredHoldsOf(payer, context).reduce((sum, payment) => sum + payment.amountMinor, availableOf(payer));
}

function ownedBy(account: AccountState, actingOwnerRef: string | undefined): boolean {
  return actingOwnerRef === undefined || account.ownerRef === actingOwnerRef;
}

/**
 * The payment and both its accounts, or why the command cannot act on it. Capture, void and refund belong
 * to the payee's owner: for anyone else the payment does not exist.
 */
function lockedPaymentOf(
  context: PlanContext,
  paymentId: string,
  actingOwnerRef: string | undefined,
): { payment: PaymentState; payer: AccountState; payee: AccountState } | DomainError {
  const payment = context.payments.get(paymentId);
  if (!payment) return notFound('payment', paymentId, 'payment_id');
  const payer = context.accounts.get(payment.payerAccountId);
  const payee = context.accounts.get(payment.payeeAccountId);
  invariant(payer && payee, `accounts of payment ${paymentId} were not locked`);
  if (!ownedBy(payee, actingOwnerRef)) return notFound('payment', paymentId, 'payment_id');
  return { payment, payer, payee };
}

/** An AUTHORIZED payment whose hold has an expiry that `now` (the server's clock) has reached. */
function holdExpired(payment: PaymentState, now: Date): payment is PaymentState & { expiresAt: Date } {
  return payment.status === 'AUTHORIZED' && payment.expiresAt !== null && now.getTime() >= payment.expiresAt.getTime();
}

/** Capture and void act on a live hold only: AUTHORIZED and, by the server's clock, not yet expired. */
function requireLiveHold(payment: PaymentState, context: PlanContext, action: string): DomainError | undefined {
  if (payment.status !== 'AUTHORIZED') {
    return failedPrecondition(
      'PAYMENT_NOT_AUTHORIZED',
      `payment ${payment.id} is ${payment.status}; only an AUTHORIZED payment can be ${action}`,
      'payment_id',
    );
  }
  if (holdExpired(payment, context.now)) {
    return failedPrecondition(
      'HOLD_EXPIRED',
      `the hold on payment ${payment.id} expired at ${payment.expiresAt.toISOString()}`,
      'payment_id',
    );
  }
  return undefined;
}

/** An optional amount in the payment's currency and at most `limit`; null means all of `limit`. */
function amountWithin(
  amount: OptionalAmount | null,
  payment: PaymentRecord,
  limit: bigint,
  exceeded: DomainError,
): bigint | DomainError {
  if (!amount) return limit;
  if (amount.currency !== payment.currency) {
    // One rule everywhere: a known currency that differs from the account's or payment's is a conflict with
    // stored state, FAILED_PRECONDITION (an unknown code is INVALID_ARGUMENT CURRENCY_UNKNOWN, earlier).
    return failedPrecondition(
      'CURRENCY_MISMATCH',
      `payment ${payment.id} is in ${payment.currency}, not ${amount.currency}`,
      'amount.currency',
    );
  }
  return amount.amountMinor > limit ? exceeded : amount.amountMinor;
}

/**
 * Captures all of an AUTHORIZED hold, or part of it (`amount`, minor units; the rest goes back to the payer):
 * the payment becomes COMPLETED. Returns NOT_FOUND (unknown payment, or not the payee's owner),
 * PAYMENT_NOT_AUTHORIZED, HOLD_EXPIRED, CURRENCY_MISMATCH, AMOUNT_EXCEEDS_AUTHORIZED or
 * PAYEE_ACCOUNT_INACTIVE (all FAILED_PRECONDITION but the first).
 */
export function planCapturePayment(command: CapturePaymentCommand, context: PlanContext): LedgerOutcome | DomainError {
  const locked = lockedPaymentOf(context, command.paymentId, command.actingOwnerRef);
  if (!('payment' in locked)) return locked;
  const { payment, payer, payee } = locked;
  const refused = requireLiveHold(payment, context, 'captured');
  if (refused) return refused;
  const captured = amountWithin(
    command.amount,
    payment,
    payment.amountMinor,
    failedPrecondition(
      'AMOUNT_EXCEEDS_AUTHORIZED',
      `payment ${payment.id} authorized ${payment.amountMinor} minor units; cannot capture more`,
      'amount.amount_minor',
    ),
  );
  if (typeof captured !== 'bigint') return captured;
  if (payee.status !== 'ACTIVE') {
    return failedPrecondition(
      'PAYEE_ACCOUNT_INACTIVE',
      `payee account ${payee.id} is ${payee.status.toLowerCase()}`,
      'payment_id',
    );
  }
  // The hold already took the money out of available, so a capture can never fail for lack of funds.
  post(
    context,
    { account: payer, bucket: 'HELD' },
    { account: payee, bucket: captureBucket(payee) },
    captured,
    payment.id,
  );
  const released = payment.amountMinor - captured;
  if (released > 0n) {
    post(context, { account: payer, bucket: 'HELD' }, { account: payer, bucket: 'AVAILABLE' }, released, payment.id);
  }
  changePayment(context, payment, {
    status: 'COMPLETED',
    capturedMinor: captured,
    awaitsSettlement: payee.type === 'MERCHANT',
  });
  const record = snapshot(payment);
  paymentEvent(context, 'PaymentCaptured', record);
  return { kind: 'payment', payment: record };
}

function releaseHold(
  context: PlanContext,
  command: VoidPaymentCommand | ExpireHoldCommand,
  status: 'VOIDED' | 'EXPIRED',
): LedgerOutcome | DomainError {
  const locked = lockedPaymentOf(context, command.paymentId, command.actingOwnerRef);
  if (!('payment' in locked)) return locked;
  const { payment, payer } = locked;
  if (status === 'VOIDED') {
    const refused = requireLiveHold(payment, context, 'voided');
    if (refused) return refused;
  } else if (!holdExpired(payment, context.now)) {
    return failedPrecondition('HOLD_NOT_EXPIRED', `payment ${payment.id} has no expired hold`, 'payment_id');
  }
  post(
    context,
    { account: payer, bucket: 'HELD' },
    { account: payer, bucket: 'AVAILABLE' },
    payment.amountMinor,
    payment.id,
  );
  changePayment(context, payment, { status });
  const record = snapshot(payment);
  paymentEvent(context, status === 'VOIDED' ? 'PaymentVoided' : 'PaymentExpired', record);
  return { kind: 'payment', payment: record };
}

/**
 * Releases an AUTHORIZED hold back to the payer's available: VOIDED. Returns NOT_FOUND,
 * PAYMENT_NOT_AUTHORIZED or HOLD_EXPIRED (an expired hold is the sweeper's to release).
 */
export function planVoidPayment(command: VoidPaymentCommand, context: PlanContext): LedgerOutcome | DomainError {
  return releaseHold(context, command, 'VOIDED');
}

/**
 * Releases a hold whose expiry has passed (the sweeper's command): EXPIRED. Returns NOT_FOUND or
 * HOLD_NOT_EXPIRED (not AUTHORIZED, no expiry, or not yet expired).
 */
export function planExpireHold(command: ExpireHoldCommand, context: PlanContext): LedgerOutcome | DomainError {
  return releaseHold(context, command, 'EXPIRED');
}

function refundDeclineReason(payer: AccountState, payee: AccountState, source: BalanceBucket, amount: bigint) {
  if (payee.status !== 'ACTIVE') return 'PAYEE_ACCOUNT_INACTIVE' as const;
  if (payer.status !== 'ACTIVE') return 'PAYER_ACCOUNT_INACTIVE' as const;
  if (bucketBalance(payee, source) < amount) return 'INSUFFICIENT_FUNDS' as const;
  return null;
}

/**
 * Refunds all that is left of a COMPLETED or PARTIALLY_REFUNDED payment, or `amount` (minor units) of it,
 * from the payee (pending settlement while unsettled, else available) to the payer. Returns NOT_FOUND,
 * PAYMENT_NOT_REFUNDABLE, CURRENCY_MISMATCH or REFUND_EXCEEDS_CAPTURED; a refund the payee cannot pay
 * (inactive account, insufficient funds) is recorded as DECLINED with its reason and moves nothing.
 * Invariant: refunded never exceeds captured.
 */
export function planRefundPayment(command: RefundPaymentCommand, context: PlanContext): LedgerOutcome | DomainError {
  const locked = lockedPaymentOf(context, command.paymentId, command.actingOwnerRef);
  if (!('payment' in locked)) return locked;
  const { payment, payer, payee } = locked;
  if (payment.status !== 'COMPLETED' && payment.status !== 'PARTIALLY_REFUNDED') {
    return failedPrecondition(
      'PAYMENT_NOT_REFUNDABLE',
      `payment ${payment.id} is ${payment.status}; only captured payments can be refunded`,
      'payment_id',
    );
  }
  const refundable = payment.capturedMinor - payment.refundedMinor;
  const amount = amountWithin(
    command.amount,
    payment,
    refundable,
    failedPrecondition(
      'REFUND_EXCEEDS_CAPTURED',
      `payment ${payment.id} has ${refundable} minor units left to refund`,
      'amount.amount_minor',
    ),
  );
  if (typeof amount !== 'bigint') return amount;
  // The payee pays the refund: its own expired holds (as a payer elsewhere) no longer reserve anything.
  releaseExpiredHolds(payee, context);
  // Before settlement the merchant's money for this payment is still in pending settlement; after, available.
  const source: BalanceBucket = payment.awaitsSettlement && !payment.settlementId ? 'PENDING_SETTLEMENT' : 'AVAILABLE';
  const declineReason = refundDeclineReason(payer, payee, source, amount);
  const refund: RefundRecord = {
    id: newId('ref'),
    paymentId: payment.id,
    amountMinor: amount,
    currency: payment.currency,
    status: declineReason ? 'DECLINED' : 'COMPLETED',
    declineReason,
    reason: command.reason,
    createdAt: context.now,
  };
  if (declineReason) {
    changePayment(context, payment, {});
  } else {
    post(context, { account: payee, bucket: source }, { account: payer, bucket: 'AVAILABLE' }, amount, refund.id);
    const refundedMinor = payment.refundedMinor + amount;
    changePayment(context, payment, {
      refundedMinor,
      status: refundedMinor === payment.capturedMinor ? 'REFUNDED' : 'PARTIALLY_REFUNDED',
    });
  }
  context.effects.refunds.push(refund);
  const record = snapshot(payment);
  context.effects.events.push(
    domainEvent('payment', payment.id, BigInt(record.version), context.now, {
      type: declineReason ? 'RefundDeclined' : 'PaymentRefunded',
      refund,
      payment: record,
    }),
  );
  return { kind: 'refund', refund, payment: record };
}
