/**
 * Settling one merchant account: every captured, unsettled payment it received (net of refunds taken from
 * pending settlement) moves from pending settlement to available in one posting, and each payment points to
 * the settlement that covered it. Pure, like plan.ts.
 */
import { invariant } from '../domain/assert.js';
import { newId } from '../domain/ids.js';
import type { SettlementRecord } from '../domain/records.js';
import {
  type AccountState,
  changePayment,
  domainEvent,
  type PaymentState,
  type PlanContext,
  post,
  touchAccount,
} from './state.js';

/**
 * One settlement of `unsettled` (captured payments to `merchant` not yet settled, locked): their captured
 * minus refunded amounts move from pending settlement to available in one posting. Returns undefined for an
 * empty list. Throws an InvariantViolation for a payment that is not the merchant's or not awaiting
 * settlement (the caller's query is wrong); a settlement is never refused by the money rules.
 */
export function planSettlement(
  context: PlanContext,
  merchant: AccountState,
  unsettled: PaymentState[],
): SettlementRecord | undefined {
  if (unsettled.length === 0) return undefined;
  const id = newId('stl');
  let grossMinor = 0n;
  let refundsMinor = 0n;
  for (const payment of unsettled) {
    invariant(
      payment.payeeAccountId === merchant.id && payment.awaitsSettlement && !payment.settlementId,
      `payment ${payment.id} cannot be settled to ${merchant.id}`,
    );
    grossMinor += payment.capturedMinor;
    refundsMinor += payment.refundedMinor;
    changePayment(context, payment, { settlementId: id });
  }
  const netMinor = grossMinor - refundsMinor;
  if (netMinor > 0n) {
    post(
      context,
      { account: merchant, bucket: 'PENDING_SETTLEMENT' },
      { account: merchant, bucket: 'AVAILABLE' },
      netMinor,
      id,
    );
  } else {
    // Fully refunded before settlement: nothing moves, but the account's event sequence still advances.
    touchAccount(context, merchant);
  }
  const settlement: SettlementRecord = {
    id,
    accountId: merchant.id,
    currency: merchant.currency,
    paymentCount: unsettled.length,
    grossMinor,
    refundsMinor,
    netMinor,
    paymentIds: unsettled.map((payment) => payment.id),
    createdAt: context.now,
  };
  context.effects.settlements.push(settlement);
  context.effects.events.push(
    domainEvent('account', merchant.id, merchant.version, context.now, {
      type: 'SettlementCompleted',
      settlement,
    }),
  );
  return settlement;
}
