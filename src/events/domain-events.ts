/**
 * The state changes the ledger records in the outbox, and their protobuf encoding (payment.events.v1).
 * One event per change, written in the same transaction as the change itself.
 */
import { create, type DescMessage, type MessageShape, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  AccountClosedSchema,
  AccountCreatedSchema,
  AccountFrozenSchema,
  AccountUnfrozenSchema,
  EventMetadataSchema,
  FundsDepositedSchema,
  FundsPaidOutSchema,
  PaymentAuthorizedSchema,
  PaymentCapturedSchema,
  PaymentCompletedSchema,
  PaymentDeclinedSchema,
  PaymentExpiredSchema,
  PaymentRefundedSchema,
  PaymentVoidedSchema,
  RefundDeclinedSchema,
  SettlementCompletedSchema,
} from '../../gen/payment/events/v1/events_pb.js';
import type {
  AccountRecord,
  BalanceRecord,
  DepositRecord,
  PaymentRecord,
  PayoutRecord,
  RefundRecord,
  SettlementRecord,
} from '../domain/records.js';
import type { CommandOrigin } from '../observability/request-context.js';
import { toAccount, toBalance, toDeposit, toPayment, toPayout, toRefund, toSettlement } from '../wire/messages.js';

interface EventBase {
  eventId: string;
  aggregateType: 'account' | 'payment';
  aggregateId: string;
  /** Strictly increasing per aggregate: the account's balance version or the payment's version. */
  aggregateSeq: bigint;
  occurredAt: Date;
  /** The request that caused the event (its correlation id and trace), when one did. */
  origin?: CommandOrigin | undefined;
}

/** The events that carry a payment alone, each naming the state it reached. */
export type PaymentEventType =
  | 'PaymentCompleted'
  | 'PaymentDeclined'
  | 'PaymentAuthorized'
  | 'PaymentCaptured'
  | 'PaymentVoided'
  | 'PaymentExpired';

/** What each kind of event carries besides EventBase: its type and its payload. */
export type DomainEventBody =
  | { type: 'AccountCreated'; account: AccountRecord }
  | { type: 'AccountFrozen' | 'AccountUnfrozen' | 'AccountClosed'; account: AccountRecord; reason: string }
  | { type: 'FundsPaidOut'; payout: PayoutRecord; balance: BalanceRecord }
  | { type: 'FundsDeposited'; deposit: DepositRecord; balance: BalanceRecord }
  | { type: PaymentEventType; payment: PaymentRecord }
  | { type: 'PaymentRefunded' | 'RefundDeclined'; refund: RefundRecord; payment: PaymentRecord }
  | { type: 'SettlementCompleted'; settlement: SettlementRecord };

export type DomainEvent = EventBase & DomainEventBody;

export type EventType = DomainEvent['type'];

/** Fully-qualified protobuf type name per event, e.g. for a content-type header or a schema registry. */
export const EVENT_SCHEMAS = {
  AccountCreated: AccountCreatedSchema,
  FundsDeposited: FundsDepositedSchema,
  PaymentCompleted: PaymentCompletedSchema,
  PaymentDeclined: PaymentDeclinedSchema,
  PaymentAuthorized: PaymentAuthorizedSchema,
  PaymentCaptured: PaymentCapturedSchema,
  PaymentVoided: PaymentVoidedSchema,
  PaymentExpired: PaymentExpiredSchema,
  PaymentRefunded: PaymentRefundedSchema,
  RefundDeclined: RefundDeclinedSchema,
  SettlementCompleted: SettlementCompletedSchema,
  AccountFrozen: AccountFrozenSchema,
  AccountUnfrozen: AccountUnfrozenSchema,
  AccountClosed: AccountClosedSchema,
  FundsPaidOut: FundsPaidOutSchema,
} as const satisfies Record<EventType, DescMessage>;

function metadataOf(event: DomainEvent) {
  return create(EventMetadataSchema, {
    eventId: event.eventId,
    aggregateId: event.aggregateId,
    aggregateSeq: event.aggregateSeq,
    occurTime: timestampFromDate(event.occurredAt),
    correlationId: event.origin?.requestId ?? '',
  });
}

function encode<Desc extends DescMessage>(schema: Desc, init: Partial<MessageShape<Desc>>): Uint8Array {
  return toBinary(schema, create(schema, init as never));
}

export function encodeEvent(event: DomainEvent): Uint8Array {
  const metadata = metadataOf(event);
  switch (event.type) {
    case 'AccountCreated':
      return encode(AccountCreatedSchema, { metadata, account: toAccount(event.account) });
    case 'FundsDeposited':
      return encode(FundsDepositedSchema, {
        metadata,
        deposit: toDeposit(event.deposit),
        balance: toBalance(event.balance),
      });
    case 'PaymentCompleted':
    case 'PaymentDeclined':
    case 'PaymentAuthorized':
    case 'PaymentCaptured':
    case 'PaymentVoided':
    case 'PaymentExpired':
      return encode(EVENT_SCHEMAS[event.type], { metadata, payment: toPayment(event.payment) });
    case 'PaymentRefunded':
    case 'RefundDeclined':
      return encode(EVENT_SCHEMAS[event.type], {
        metadata,
        refund: toRefund(event.refund),
        payment: toPayment(event.payment),
      });
    case 'SettlementCompleted':
      return encode(SettlementCompletedSchema, { metadata, settlement: toSettlement(event.settlement) });
    case 'AccountFrozen':
    case 'AccountUnfrozen':
    case 'AccountClosed':
      return encode(EVENT_SCHEMAS[event.type], { metadata, account: toAccount(event.account), reason: event.reason });
    case 'FundsPaidOut':
      return encode(FundsPaidOutSchema, {
        metadata,
        payout: toPayout(event.payout),
        balance: toBalance(event.balance),
      });
  }
}
