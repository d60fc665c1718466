/** Helpers for the outbox tests: hand-made outbox rows, reading the table, checking what Kafka received. */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { create, type DescMessage, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { EventMetadataSchema } from '../../gen/payment/events/v1/events_pb.js';
import { EVENT_SCHEMAS } from '../../src/events/domain-events.js';
import { contentTypeOf, HEADER, type TopicFamily } from '../../src/outbox/routing.js';
import type { ReceivedMessage } from './kafka.js';

export const TOPICS = { accounts: 'payment.events.v1.accounts', payments: 'payment.events.v1.payments' };

export const schemas: Readonly<Record<string, DescMessage>> = EVENT_SCHEMAS;

export interface SyntheticEvent {
  eventId: string;
  eventType: string;
  aggregateType: string;
  aggregateId: string;
  aggregateSeq: bigint;
  payload: Uint8Array;
}

/** A guess good enough for a hand-made row: which aggregate an event type is about. */
export function aggregateTypeFor(eventType: string): string {
  if (eventType.startsWith('Account') || eventType.startsWith('Funds')) return 'account';
  if (eventType.startsWith('Settlement')) return 'settlement';
  return 'payment';
}

export function familyOf(aggregateType: string): TopicFamily {
  return aggregateType === 'account' ? 'accounts' : 'payments';
}

/** An event of any catalogue type, encoded with its generated schema (only the metadata filled in). */
export function syntheticEvent(
  eventType: string,
  aggregateId = `agg_${randomBytes(8).toString('hex')}`,
  aggregateSeq = 1n,
): SyntheticEvent {
  const schema = schemas[eventType];
  if (!schema) throw new Error(`no schema for ${eventType}`);
  const eventId = `evt_test${randomBytes(11).toString('hex')}`;
  const metadata = create(EventMetadataSchema, {
    eventId,
    aggregateId,
    aggregateSeq,
    occurTime: timestampFromDate(new Date()),
  });
  const payload = toBinary(schema, create(schema, { metadata } as never));
  return { eventId, eventType, aggregateType: aggregateTypeFor(eventType), aggregateId, aggregateSeq, payload };
}

export const INSERT_OUTBOX_SQL = `
  insert into outbox_events (event_id, event_type, aggregate_type, aggregate_id, aggregate_seq, payload)
  values ($1, $2, $3, $4, $5, $6) returning id::text as id`;

export function insertParams(event: SyntheticEvent): unknown[] {
  return [
    event.eventId,
    event.eventType,
    event.aggregateType,
    event.aggregateId,
    event.aggregateSeq.toString(),
    Buffer.from(event.payload),
  ];
}

export interface OutboxRowView {
  id: string;
  event_id: string;
  event_type: string;
  aggregate_type: string;
  aggregate_id: string;
  aggregate_seq: string;
  published_at: Date | null;
  attempts: number;
  last_error: string | null;
}

export const SELECT_OUTBOX_SQL = `
  select id::text, event_id, event_type, aggregate_type, aggregate_id, aggregate_seq::text, published_at, attempts,
         last_error
  from outbox_events order by id`;

/** The first delivery of every event id, in arrival order (what a de-duplicating consumer keeps). */
export function firstDeliveries(messages: ReceivedMessage[]): ReceivedMessage[] {
  const seen = new Set<string>();
  return messages.filter((message) => {
    const eventId = message.headers[HEADER.eventId];
    if (eventId === undefined || seen.has(eventId)) return false;
    seen.add(eventId);
    return true;
  });
}

export function eventIdsOf(messages: ReceivedMessage[]): Set<string> {
  return new Set(messages.map((message) => message.headers[HEADER.eventId] ?? ''));
}

/** Per key, aggregate-seq must rise strictly in arrival order (after de-duplication); returns violations. */
export function orderViolations(messages: ReceivedMessage[]): string[] {
  const last = new Map<string, bigint>();
  const violations: string[] = [];
  for (const message of firstDeliveries(messages)) {
    const key = message.key ?? '';
    const seq = BigInt(message.headers[HEADER.aggregateSeq] ?? '-1');
    const previous = last.get(key);
    if (previous !== undefined && seq <= previous) violations.push(`${key}: seq ${seq} after ${previous}`);
    last.set(key, seq);
  }
  return violations;
}

/** Checks one record against its outbox row: topic, key, headers, and that the value decodes to it. */
export function recordProblems(message: ReceivedMessage, row: OutboxRowView): string[] {
  const problems: string[] = [];
  const schema = schemas[row.event_type];
  const typeName = schema?.typeName ?? `payment.events.v1.${row.event_type}`;
  const expectTopic = TOPICS[familyOf(row.aggregate_type)];
  if (message.topic !== expectTopic) problems.push(`topic ${message.topic}, expected ${expectTopic}`);
  if (message.key !== row.aggregate_id) problems.push(`key ${message.key}, expected ${row.aggregate_id}`);
  const expectHeaders = {
    [HEADER.eventId]: row.event_id,
    [HEADER.eventType]: typeName,
    [HEADER.contentType]: contentTypeOf(typeName),
    [HEADER.aggregateType]: row.aggregate_type,
    [HEADER.aggregateSeq]: row.aggregate_seq,
  };
  for (const [name, value] of Object.entries(expectHeaders)) {
    if (message.headers[name] !== value) problems.push(`header ${name}=${message.headers[name]}, expected ${value}`);
  }
  if (!schema) return [...problems, `no generated schema for ${row.event_type}`];
  try {
    const decoded = fromBinary(schema, message.value) as { metadata?: { eventId: string; aggregateId: string } };
    if (decoded.metadata?.eventId !== row.event_id) problems.push('decoded metadata.eventId differs');
    if (decoded.metadata?.aggregateId !== row.aggregate_id) problems.push('decoded metadata.aggregateId differs');
  } catch (error) {
    problems.push(`does not decode as ${typeName}: ${String(error)}`);
  }
  return problems;
}

/**
 * GET a JSON document on a fresh connection that is closed afterwards (fetch's keep-alive connection would
 * hold the server's shutdown for its whole grace period). With `timeoutMs`, a server that does not answer in
 * time (hung, stopped, starved) rejects instead of leaving the caller waiting for ever.
 */
export function getJson(url: string, timeoutMs?: number): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const request = http
      .get(url, { agent: false, headers: { connection: 'close' } }, (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => {
          text += chunk.toString();
        });
        response.on('end', () => {
          try {
            resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) });
          } catch (error) {
            reject(error);
          }
        });
      })
      .on('error', reject);
    if (timeoutMs !== undefined) {
      request.setTimeout(timeoutMs, () => request.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    }
  });
}
