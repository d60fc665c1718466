/**
 * `npm run events:tail [-- --from-beginning] [--limit N] [--topic NAME …]`
 *
 * Consumes the event topics (KAFKA_TOPIC_ACCOUNTS and KAFKA_TOPIC_PAYMENTS unless --topic is given) from the
 * brokers in KAFKA_BROKERS (same KAFKA_* settings as the service) and prints one JSON line per record:
 * topic, partition, offset, key, headers and the payload decoded with the generated protobuf types, looked up
 * by the record's content-type (messageType=…) or event-type header. Uses its own throw-away consumer group,
 * so it never disturbs real consumers; without --from-beginning it starts at the end. Ctrl-C to stop, or
 * --limit N to exit after N records.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Kafka } from 'kafkajs';
import { collectConfigErrors } from '../src/config/env.js';
import { readKafka, readOutbox } from '../src/config/kafka.js';
import { ConfigError, type KafkaConfig, type OutboxConfig } from '../src/config.js';
import { kafkaClientConfig } from '../src/outbox/kafka-sink.js';
import { decodeEventJson, typeNameFromHeaders } from '../src/outbox/routing.js';

const stderrLogger = {
  debug() {},
  info(details: object, message: string) {
    process.stderr.write(`${JSON.stringify({ level: 'info', message, ...details })}\n`);
  },
  warn(details: object, message: string) {
    process.stderr.write(`${JSON.stringify({ level: 'warn', message, ...details })}\n`);
  },
  error(details: object, message: string) {
    process.stderr.write(`${JSON.stringify({ level: 'error', message, ...details })}\n`);
  },
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'from-beginning': { type: 'boolean', default: false },
      limit: { type: 'string' },
      topic: { type: 'string', multiple: true },
    },
  });
  const limit = values.limit === undefined ? undefined : Number(values.limit);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new Error('--limit must be a whole number');

  // Only the Kafka settings: tailing events needs no database, JWT or TLS settings.
  let config: { kafka: KafkaConfig | undefined; outbox: OutboxConfig };
  try {
    config = collectConfigErrors(() => ({ kafka: readKafka(process.env), outbox: readOutbox(process.env) }));
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  if (!config.kafka) {
    console.error('KAFKA_BROKERS is not set (e.g. KAFKA_BROKERS=127.0.0.1:9092 npm run events:tail)');
    process.exit(2);
  }
  const topics = values.topic ?? [config.outbox.topics.accounts, config.outbox.topics.payments];

  const kafka = new Kafka(kafkaClientConfig(config.kafka, stderrLogger, `${config.kafka.clientId}-tail`));
  const consumer = kafka.consumer({ groupId: `events-tail-${randomUUID()}`, maxWaitTimeInMs: 500 });
  let printed = 0;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await consumer.disconnect().catch(() => {});
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: values['from-beginning'] });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      if (stopping) return;
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(message.headers ?? {})) {
        if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(',') : value.toString();
      }
      const type = typeNameFromHeaders(headers);
      let event: unknown;
      let error: string | undefined;
      try {
        event = type && message.value ? decodeEventJson(type, message.value) : undefined;
        if (event === undefined) error = `unknown event type ${type ?? '(no header)'}`;
      } catch (cause) {
        error = `cannot decode: ${cause instanceof Error ? cause.message : String(cause)}`;
      }
      const line = {
        topic,
        partition,
        offset: message.offset,
        key: message.key?.toString() ?? null,
        type: type ?? null,
        headers,
        ...(error === undefined ? { event } : { error, valueBase64: message.value?.toString('base64') ?? null }),
      };
      process.stdout.write(`${JSON.stringify(line)}\n`);
      printed++;
      if (limit !== undefined && printed >= limit) void stop(0);
    },
  });
}

main().catch((error: unknown) => {
  console.error('events:tail failed:', error instanceof Error ? error.message : error);
  process.exit(1);
});
