/**
 * The state changes the ledger records in the outbox, and their protobuf encoding (payment.events.v1).
 * One event per change, written in the same transaction as the change itself.
 */
import { create, type DescMessage, type MessageShape, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  AccountCreatedSchema,
  EventMetadataSchema,
  FundsDepositedSchema,
  PaymentCompletedSchema,
  PaymentDeclinedSchema,
} from '../../gen/payment/events/v1/events_pb.js';
import type { AccountRecord, BalanceRecord, DepositRecord, PaymentRecord } from '../domain/records.js';
import { toAccount, toBalance, toDeposit, toPayment } from '../wire/messages.js';

interface EventBase {
  eventId: string;
  aggregateType: 'account' | 'payment';
  aggregateId: string;
  /** Strictly increasing per aggregate: the account's balance version or the payment's version. */
  aggregateSeq: bigint;
  occurredAt: Date;
}

export type DomainEvent = EventBase &
  (
    | { type: 'AccountCreated'; account: AccountRecord }
    | { type: 'FundsDeposited'; deposit: DepositRecord; balance: BalanceRecord }
    | { type: 'PaymentCompleted'; payment: PaymentRecord }
    | { type: 'PaymentDeclined'; payment: PaymentRecord }
  );

export type EventType = DomainEvent['type'];

/** Fully-qualified protobuf type name per event, e.g. for a content-type header or a schema registry. */
export const EVENT_SCHEMAS = {
  AccountCreated: AccountCreatedSchema,
  FundsDeposited: FundsDepositedSchema,
  PaymentCompleted: PaymentCompletedSchema,
  PaymentDeclined: PaymentDeclinedSchema,
} as const satisfies Record<EventType, DescMessage>;

function metadataOf(event: DomainEvent) {
  return create(EventMetadataSchema, {
    eventId: event.eventId,
    aggregateId: event.aggregateId,
    aggregateSeq: event.aggregateSeq,
    occurTime: timestampFromDate(event.occurredAt),
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
      return encode(PaymentCompletedSchema, { metadata, payment: toPayment(event.payment) });
    case 'PaymentDeclined':
      return encode(PaymentDeclinedSchema, { metadata, payment: toPayment(event.payment) });
  }
}
