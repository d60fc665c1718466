/**
 * What an outbox row becomes on the wire: its topic (by aggregate type, the one table below), its key (the
 * aggregate id, so one aggregate's events stay in order in one partition) and its headers. Everything here
 * works from the row's strings, so a new event type needs no change; a new aggregate type needs one line in
 * TOPIC_OF_AGGREGATE (until then it goes to DEFAULT_TOPIC, never nowhere).
 *
 * Headers (all UTF-8 strings):
 *   event-id        the event's id ("evt_…"); consumers de-duplicate by it (delivery is at-least-once)
 *   event-type      the protobuf full name of the payload, e.g. "payment.events.v1.PaymentCompleted"
 *   content-type    "application/x-protobuf; messageType=payment.events.v1.PaymentCompleted"
 *   aggregate-type  "account", "payment", … (the routing input)
 *   aggregate-seq   the event's per-aggregate sequence number, strictly increasing per key
 *   traceparent     W3C trace context of the request that caused the event (only while tracing is on)
 */
import { createRegistry, type DescMessage, fromBinary, type JsonValue, toJson } from '@bufbuild/protobuf';
import { file_payment_events_v1_events } from '../../gen/payment/events/v1/events_pb.js';
import type { OutboxConfig } from '../config.js';
import { EVENT_SCHEMAS } from '../events/domain-events.js';

export type EventTopics = OutboxConfig['topics'];
export type TopicFamily = keyof EventTopics;

/** aggregate_type → topic family. Payment-lifecycle aggregates share the payments topic. */
export const TOPIC_OF_AGGREGATE: Readonly<Record<string, TopicFamily>> = {
  account: 'accounts',
  payment: 'payments',
  refund: 'payments',
  settlement: 'payments',
};
/** For an aggregate type not in the table (yet): published, not stuck. */
export const DEFAULT_TOPIC: TopicFamily = 'payments';

export const EVENT_PACKAGE = 'payment.events.v1';

export const HEADER = {
  eventId: 'event-id',
  eventType: 'event-type',
  contentType: 'content-type',
  aggregateType: 'aggregate-type',
  aggregateSeq: 'aggregate-seq',
  traceparent: 'traceparent',
} as const;

const PROTOBUF_CONTENT_TYPE = 'application/x-protobuf';

export interface OutboxRow {
  id: bigint;
  eventId: string;
  /** The short name the ledger writes, e.g. "PaymentCompleted". */
  eventType: string;
  aggregateType: string;
  aggregateId: string;
  aggregateSeq: bigint;
  payload: Uint8Array;
  createdAt: Date;
  attempts: number;
  /** W3C traceparent recorded when the event was written; null/absent when no trace was recording. */
  traceContext?: string | null;
}

export interface OutgoingMessage {
  row: OutboxRow;
  topic: string;
  key: string;
  value: Uint8Array;
  headers: Record<string, string>;
}

const schemasByShortName: Readonly<Record<string, DescMessage | undefined>> = EVENT_SCHEMAS;

/** Every message of payment/events/v1/events.proto by full name, including any not (yet) in EVENT_SCHEMAS. */
const eventRegistry = createRegistry(file_payment_events_v1_events);

/** The protobuf full name for an event_type: its schema's, or by the package convention if unknown here. */
export function eventTypeName(eventType: string): string {
  return schemasByShortName[eventType]?.typeName ?? `${EVENT_PACKAGE}.${eventType}`;
}

export function contentTypeOf(typeName: string): string {
  return `${PROTOBUF_CONTENT_TYPE}; messageType=${typeName}`;
}

export function topicOf(aggregateType: string, topics: EventTopics): string {
  return topics[TOPIC_OF_AGGREGATE[aggregateType] ?? DEFAULT_TOPIC];
}

export function messageOf(row: OutboxRow, topics: EventTopics): OutgoingMessage {
  const typeName = eventTypeName(row.eventType);
  return {
    row,
    topic: topicOf(row.aggregateType, topics),
    key: row.aggregateId,
    value: row.payload,
    headers: {
      [HEADER.eventId]: row.eventId,
      [HEADER.eventType]: typeName,
      [HEADER.contentType]: contentTypeOf(typeName),
      [HEADER.aggregateType]: row.aggregateType,
      [HEADER.aggregateSeq]: row.aggregateSeq.toString(),
      ...(row.traceContext ? { [HEADER.traceparent]: row.traceContext } : {}),
    },
  };
}

/** The payload's message type from a record's headers: content-type's messageType, else event-type. */
export function typeNameFromHeaders(headers: Record<string, string | undefined>): string | undefined {
  const contentType = headers[HEADER.contentType];
  const fromContentType = contentType ? /(?:^|;)\s*messageType=([\w.]+)/.exec(contentType)?.[1] : undefined;
  return fromContentType ?? headers[HEADER.eventType];
}

/** The generated schema for a full name (e.g. "payment.events.v1.PaymentCompleted"), if it is an event. */
export function eventSchemaOf(typeName: string): DescMessage | undefined {
  return eventRegistry.getMessage(typeName);
}

/** Decodes a payload to protobuf JSON (int64 as strings, timestamps as RFC 3339); undefined if unknown type. */
export function decodeEventJson(typeName: string, payload: Uint8Array): JsonValue | undefined {
  const schema = eventSchemaOf(typeName);
  if (!schema) return undefined;
  return toJson(schema, fromBinary(schema, payload));
}
