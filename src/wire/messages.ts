/**
 * Domain records to and from protobuf messages. The API handlers and the event encoder both use these, so a
 * payment looks the same in a response and in an event.
 */
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  type Account,
  AccountSchema,
  AccountStatus,
  AccountType,
  BalanceBucket,
  type Deposit,
  DepositSchema,
  EntryDirection,
  type LedgerEntry,
  LedgerEntrySchema,
  type Payout,
  PayoutSchema,
} from '../../gen/payment/v1/account_pb.js';
import { type Money, MoneySchema } from '../../gen/payment/v1/money_pb.js';
import {
  type AccountBalance,
  AccountBalanceSchema,
  CaptureMode,
  DeclineReason,
  type Payment,
  PaymentSchema,
  PaymentStatus,
  type Refund,
  RefundSchema,
  RefundStatus,
  type WatchAccountResponse,
  WatchAccountResponseSchema,
  WatchUpdateKind,
} from '../../gen/payment/v1/payment_pb.js';
import { type Settlement, SettlementSchema } from '../../gen/payment/v1/settlement_pb.js';
import type {
  AccountRecord,
  BalanceRecord,
  DepositRecord,
  DeclineReason as DomainDeclineReason,
  LedgerEntryRecord,
  PaymentRecord,
  PayoutRecord,
  RefundRecord,
  SettlementRecord,
  WatchUpdate,
} from '../domain/records.js';

export function toMoney(amountMinor: bigint, currency: string): Money {
  return create(MoneySchema, { amountMinor, currency });
}

const ACCOUNT_STATUS = {
  ACTIVE: AccountStatus.ACTIVE,
  FROZEN: AccountStatus.FROZEN,
  CLOSED: AccountStatus.CLOSED,
} as const;

export function toAccount(account: AccountRecord): Account {
  return create(AccountSchema, {
    id: account.id,
    ownerRef: account.ownerRef,
    currency: account.currency,
    status: ACCOUNT_STATUS[account.status],
    type: account.type === 'MERCHANT' ? AccountType.MERCHANT : AccountType.PERSONAL,
    createTime: timestampFromDate(account.createdAt),
  });
}

export function toBalance(balance: BalanceRecord): AccountBalance {
  return create(AccountBalanceSchema, {
    accountId: balance.accountId,
    currency: balance.currency,
    available: toMoney(balance.availableMinor, balance.currency),
    posted: toMoney(balance.postedMinor, balance.currency),
    held: toMoney(balance.heldMinor, balance.currency),
    pendingSettlement: toMoney(balance.pendingSettlementMinor, balance.currency),
    version: balance.version,
    updateTime: timestampFromDate(balance.updatedAt),
  });
}

export function toDeposit(deposit: DepositRecord): Deposit {
  return create(DepositSchema, {
    id: deposit.id,
    accountId: deposit.accountId,
    amount: toMoney(deposit.amountMinor, deposit.currency),
    createTime: timestampFromDate(deposit.createdAt),
  });
}

export function toPayout(payout: PayoutRecord): Payout {
  return create(PayoutSchema, {
    id: payout.id,
    accountId: payout.accountId,
    amount: toMoney(payout.amountMinor, payout.currency),
    createTime: timestampFromDate(payout.createdAt),
  });
}

const PAYMENT_STATUS = {
  COMPLETED: PaymentStatus.COMPLETED,
  DECLINED: PaymentStatus.DECLINED,
  AUTHORIZED: PaymentStatus.AUTHORIZED,
  VOIDED: PaymentStatus.VOIDED,
  EXPIRED: PaymentStatus.EXPIRED,
  PARTIALLY_REFUNDED: PaymentStatus.PARTIALLY_REFUNDED,
  REFUNDED: PaymentStatus.REFUNDED,
} as const;

const DECLINE_REASON: Record<DomainDeclineReason, DeclineReason> = {
  INSUFFICIENT_FUNDS: DeclineReason.INSUFFICIENT_FUNDS,
  PAYER_ACCOUNT_INACTIVE: DeclineReason.PAYER_ACCOUNT_INACTIVE,
  PAYEE_ACCOUNT_INACTIVE: DeclineReason.PAYEE_ACCOUNT_INACTIVE,
  CURRENCY_MISMATCH: DeclineReason.CURRENCY_MISMATCH,
  AMOUNT_ABOVE_LIMIT: DeclineReason.AMOUNT_ABOVE_LIMIT,
};

export function toPayment(payment: PaymentRecord): Payment {
  return create(PaymentSchema, {
    id: payment.id,
    payerAccountId: payment.payerAccountId,
    payeeAccountId: payment.payeeAccountId,
    amount: toMoney(payment.amountMinor, payment.currency),
    status: PAYMENT_STATUS[payment.status],
    declineReason: payment.declineReason ? DECLINE_REASON[payment.declineReason] : DeclineReason.UNSPECIFIED,
    description: payment.description,
    createTime: timestampFromDate(payment.createdAt),
    updateTime: timestampFromDate(payment.updatedAt),
    captureMode: payment.captureMode === 'MANUAL' ? CaptureMode.MANUAL : CaptureMode.AUTOMATIC,
    capturedAmount: toMoney(payment.capturedMinor, payment.currency),
    refundedAmount: toMoney(payment.refundedMinor, payment.currency),
    expireTime: payment.expiresAt ? timestampFromDate(payment.expiresAt) : undefined,
    settlementId: payment.settlementId ?? '',
  });
}

export function toRefund(refund: RefundRecord): Refund {
  return create(RefundSchema, {
    id: refund.id,
    paymentId: refund.paymentId,
    amount: toMoney(refund.amountMinor, refund.currency),
    status: refund.status === 'COMPLETED' ? RefundStatus.COMPLETED : RefundStatus.DECLINED,
    declineReason: refund.declineReason ? DECLINE_REASON[refund.declineReason] : DeclineReason.UNSPECIFIED,
    reason: refund.reason,
    createTime: timestampFromDate(refund.createdAt),
  });
}

export function toSettlement(settlement: SettlementRecord): Settlement {
  return create(SettlementSchema, {
    id: settlement.id,
    accountId: settlement.accountId,
    currency: settlement.currency,
    paymentCount: BigInt(settlement.paymentCount),
    gross: toMoney(settlement.grossMinor, settlement.currency),
    refunds: toMoney(settlement.refundsMinor, settlement.currency),
    net: toMoney(settlement.netMinor, settlement.currency),
    paymentIds: settlement.paymentIds,
    createTime: timestampFromDate(settlement.createdAt),
  });
}

const BALANCE_BUCKET = {
  AVAILABLE: BalanceBucket.AVAILABLE,
  HELD: BalanceBucket.HELD,
  PENDING_SETTLEMENT: BalanceBucket.PENDING_SETTLEMENT,
} as const;

export function toLedgerEntry(entry: LedgerEntryRecord): LedgerEntry {
  return create(LedgerEntrySchema, {
    id: entry.id,
    accountId: entry.accountId,
    direction: entry.direction === 'DEBIT' ? EntryDirection.DEBIT : EntryDirection.CREDIT,
    amount: toMoney(entry.amountMinor, entry.currency),
    balanceAfter: toMoney(entry.balanceAfterMinor, entry.currency),
    referenceId: entry.referenceId,
    accountVersion: entry.accountVersion,
    createTime: timestampFromDate(entry.createdAt),
    bucket: BALANCE_BUCKET[entry.bucket],
  });
}

const WATCH_UPDATE_KIND = {
  SNAPSHOT: WatchUpdateKind.SNAPSHOT,
  CATCH_UP: WatchUpdateKind.CATCH_UP,
  CHANGE: WatchUpdateKind.CHANGE,
  HEARTBEAT: WatchUpdateKind.HEARTBEAT,
} as const;

export function toWatchUpdate(update: WatchUpdate): WatchAccountResponse {
  return create(WatchAccountResponseSchema, {
    kind: WATCH_UPDATE_KIND[update.kind],
    balance: update.balance ? toBalance(update.balance) : undefined,
    entries: update.entries.map(toLedgerEntry),
    status: update.status ? ACCOUNT_STATUS[update.status] : AccountStatus.UNSPECIFIED,
  });
}
