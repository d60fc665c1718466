/** Outbox configuration, routing and the Kafka error classification: pure functions, no services. */
import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { EVENT_SCHEMAS } from '../../src/events/domain-events.js';
import { failureScopeOf } from '../../src/outbox/kafka-sink.js';
import {
  DEFAULT_TOPIC,
  decodeEventJson,
  eventTypeName,
  messageOf,
  TOPIC_OF_AGGREGATE,
  topicOf,
  typeNameFromHeaders,
} from '../../src/outbox/routing.js';
import { rewriteMetadataResponse } from '../support/kafka-proxy.js';
import { syntheticEvent } from '../support/outbox.js';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('defaults: no Kafka (log sink), the documented topics and outbox settings', () => {
    const config = loadConfig({});
    expect(config.kafka).toBeUndefined();
    expect(config.outbox).toEqual({
      topics: { accounts: 'payment.events.v1.accounts', payments: 'payment.events.v1.payments' },
      batchSize: 500,
      pollIntervalMs: 1_000,
      lingerMs: 20,
      leaderRetryMs: 5_000,
      retryMaxMs: 30_000,
      warnAfterAttempts: 5,
      lagWarnMs: 60_000,
      retentionMs: 72 * 3_600_000,
    });
  });

  it('reads brokers, client id, TLS and SASL', () => {
    const config = loadConfig({
      KAFKA_BROKERS: 'kafka-1:9092, kafka-2.internal:9093,[::1]:9094',
      KAFKA_CLIENT_ID: 'ledger-eu',
      KAFKA_SSL: 'true',
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_USERNAME: 'ledger',
      KAFKA_SASL_PASSWORD: 'secret',
      KAFKA_TOPIC_PAYMENTS: 'payments.v1',
      OUTBOX_RETENTION_HOURS: '24',
    });
    expect(config.kafka).toEqual({
      brokers: ['kafka-1:9092', 'kafka-2.internal:9093', '[::1]:9094'],
      clientId: 'ledger-eu',
      ssl: true,
      sasl: { mechanism: 'scram-sha-512', username: 'ledger', password: 'secret' },
    });
    expect(config.outbox.topics.payments).toBe('payments.v1');
    expect(config.outbox.retentionMs).toBe(24 * 3_600_000);
  });

  it.each([
    [{ KAFKA_BROKERS: 'kafka-1' }, 'KAFKA_BROKERS'],
    [{ KAFKA_BROKERS: 'kafka-1:99999' }, 'KAFKA_BROKERS'],
    [{ KAFKA_BROKERS: 'k:9092', KAFKA_SSL: 'yes' }, 'KAFKA_SSL'],
    [{ KAFKA_BROKERS: 'k:9092', KAFKA_SASL_MECHANISM: 'gssapi' }, 'KAFKA_SASL_MECHANISM'],
    [{ KAFKA_BROKERS: 'k:9092', KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_PASSWORD: 'p' }, 'KAFKA_SASL_USERNAME'],
    [{ KAFKA_BROKERS: 'k:9092', KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u' }, 'KAFKA_SASL_PASSWORD'],
    [{ KAFKA_BROKERS: 'k:9092', KAFKA_SASL_USERNAME: 'u' }, 'KAFKA_SASL_MECHANISM'],
    [{ KAFKA_SASL_MECHANISM: 'plain' }, 'KAFKA_BROKERS'],
    [{ KAFKA_TOPIC_ACCOUNTS: 'bad topic' }, 'KAFKA_TOPIC_ACCOUNTS'],
    [{ KAFKA_BROKERS: 'k:9092', KAFKA_CLIENT_ID: 'a/b' }, 'KAFKA_CLIENT_ID'],
    [{ OUTBOX_BATCH_SIZE: '0' }, 'OUTBOX_BATCH_SIZE'],
    [{ OUTBOX_RETENTION_HOURS: 'soon' }, 'OUTBOX_RETENTION_HOURS'],
  ])('refuses %j, naming %s', (env, variable) => {
    expect(configError(env).variable).toBe(variable);
  });
});

describe('routing', () => {
  const topics = { accounts: 'acc', payments: 'pay' };

  it('accounts to the accounts topic, payment-like aggregates (settlement included) to the payments topic', () => {
    expect(topicOf('account', topics)).toBe('acc');
    for (const aggregate of ['payment', 'refund', 'settlement']) expect(topicOf(aggregate, topics)).toBe('pay');
    expect(topicOf('something-new', topics)).toBe(topics[DEFAULT_TOPIC]);
    expect(Object.values(TOPIC_OF_AGGREGATE).every((family) => family in topics)).toBe(true);
  });

  it('every catalogue type gets its protobuf full name; unknown types follow the package convention', () => {
    for (const [type, schema] of Object.entries(EVENT_SCHEMAS)) expect(eventTypeName(type)).toBe(schema.typeName);
    expect(eventTypeName('PaymentTeleported')).toBe('payment.events.v1.PaymentTeleported');
  });

  it('builds key, headers and value from the row; the type is recoverable from the headers', () => {
    const event = syntheticEvent('PaymentCompleted', 'pay_1', 3n);
    const message = messageOf(
      { ...event, id: 7n, createdAt: new Date(), attempts: 0, payload: Buffer.from(event.payload) },
      topics,
    );
    expect(message).toMatchObject({ topic: 'pay', key: 'pay_1' });
    expect(message.headers).toEqual({
      'event-id': event.eventId,
      'event-type': 'payment.events.v1.PaymentCompleted',
      'content-type': 'application/x-protobuf; messageType=payment.events.v1.PaymentCompleted',
      'aggregate-type': 'payment',
      'aggregate-seq': '3',
    });
    expect(typeNameFromHeaders(message.headers)).toBe('payment.events.v1.PaymentCompleted');
    expect(typeNameFromHeaders({ 'event-type': 'payment.events.v1.AccountCreated' })).toBe(
      'payment.events.v1.AccountCreated',
    );
    expect(decodeEventJson('payment.events.v1.PaymentCompleted', message.value)).toMatchObject({
      metadata: { eventId: event.eventId, aggregateId: 'pay_1', aggregateSeq: '3' },
    });
    expect(decodeEventJson('payment.events.v1.Nope', message.value)).toBeUndefined();
  });
});

describe('kafka failures', () => {
  it('record-specific broker errors isolate the record; everything else is transport', () => {
    const tooLarge = { name: 'KafkaJSProtocolError', type: 'MESSAGE_TOO_LARGE', retriable: false };
    expect(failureScopeOf({ name: 'KafkaJSNonRetriableError', cause: tooLarge })).toBe('message');
    expect(failureScopeOf({ name: 'KafkaJSNumberOfRetriesExceeded', originalError: tooLarge })).toBe('message');
    expect(failureScopeOf(new Error('Connection error: connect ECONNREFUSED'))).toBe('transport');
    expect(failureScopeOf({ type: 'TOPIC_AUTHORIZATION_FAILED' })).toBe('transport');
  });
});

describe('test proxy', () => {
  it('rewrites the advertised broker port and the missing controller in a Metadata v6 response', () => {
    const host = Buffer.from('127.0.0.1');
    const parts = [
      [0, 4], // size (unused by the rewrite)
      [42, 4], // correlation id
      [0, 4], // throttle time (v3+)
      [1, 4], // one broker
      [1, 4], // node id 1
    ];
    const head = Buffer.concat(parts.map(([value, size]) => int(value!, size!)));
    const frame = Buffer.concat([
      head,
      int(host.length, 2),
      host,
      int(40000, 4), // port
      int(-1, 2), // rack: null
      int(3, 2),
      Buffer.from('abc'), // cluster id
      int(0, 4), // controller id 0: not a broker
    ]);
    rewriteMetadataResponse(frame, 6, 5555);
    const portOffset = head.length + 2 + host.length;
    expect(frame.readInt32BE(portOffset)).toBe(5555);
    expect(frame.readInt32BE(frame.length - 4)).toBe(1);
  });
});

function int(value: number, size: number): Buffer {
  const buffer = Buffer.alloc(size);
  if (size === 2) buffer.writeInt16BE(value);
  else buffer.writeInt32BE(value);
  return buffer;
}
