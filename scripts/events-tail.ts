/**
 * `npm run events:tail [-- --from-beginning] [--limit N] [--topic NAME …]`
 *
 * Consumes the event topics (KAFKA_TOPIC_ACCOUNTS and KAFKA_TOPIC_PAYMENTS unless --topic is given) from the
 * brokers in KAFKA_BROKERS (same KAFKA_* settings as the service) and prints one JSON line per record:
 * topic, partition, offset, key, headers and the payload decoded with the generated protobuf types, looked up
 * by the record's content-type (messageType=…) or event-type header. Uses its own throw-away consumer group,
 * so it never disturbs real consumers; without --from-beginning it starts at the end. Ctrl-C to stop, or
 * --limit N to exit after N records. Bad arguments or settings: one line, exit 2; a failure to consume (e.g. no
 * broker answers): one `events:tail failed: …` line, exit 1.
 */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { collectConfigErrors } from '../src/config/env.js';
import { readKafka, readOutbox } from '../src/config/kafka.js';
import { ConfigError, type KafkaConfig, type OutboxConfig } from '../src/config.js';
import { kafkaClientConfig } from '../src/outbox/kafka-sink.js';
import { decodeEventJson, typeNameFromHeaders } from '../src/outbox/routing.js';
import type { OutboxLogger } from '../src/outbox/sink.js';
import { exitOnUsageError, oneLine, strictArgs, UsageError } from './cli.js';

const USAGE = 'usage: npm run -s events:tail -- [--from-beginning] [--limit N] [--topic NAME ...]';

interface TailOptions {
  fromBeginning: boolean;
  limit: number | undefined;
  topics: string[] | undefined;
}

/**
 * kafkajs's own log lines, one short line each without details or stacks. The client runs at logLevel
 * NOTHING, so these appear only when an operator sets KAFKAJS_LOG_LEVEL to debug a connection; failures
 * reach the operator as this script's own `events:tail failed: …` line.
 */
function kafkajsLine(level: string) {
  return (_details: object, message: string) =>
    process.stderr.write(`events:tail: kafkajs ${level}: ${oneLine(message)}\n`);
}
const kafkajsLogger: OutboxLogger = {
  debug: kafkajsLine('debug'),
  info: kafkajsLine('info'),
  warn: kafkajsLine('warn'),
  error: kafkajsLine('error'),
};

/** The options from argv; an unknown flag, a positional argument or a bad --limit is a UsageError. */
function parseArguments(argv: string[]): TailOptions {
  const { values } = strictArgs({
    args: argv,
    options: {
      'from-beginning': { type: 'boolean', default: false },
      limit: { type: 'string' },
      topic: { type: 'string', multiple: true },
    },
  });
  const limit = values.limit === undefined ? undefined : Number(values.limit);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new UsageError(`--limit must be a whole number of at least 1, not '${values.limit}'`);
  }
  return { fromBeginning: values['from-beginning'] === true, limit, topics: values.topic };
}

async function main(argv: string[]): Promise<void> {
  const options = parseArguments(argv);
  const { limit } = options;

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
  const topics = options.topics ?? [config.outbox.topics.accounts, config.outbox.topics.payments];

  // Same client settings as the service, but kafkajs itself stays quiet (its error lines carry stacks).
  const clientConfig = kafkaClientConfig(config.kafka, kafkajsLogger, `${config.kafka.clientId}-tail`);
  const kafka = new Kafka(Object.assign({}, clientConfig, { logLevel: logLevel.NOTHING }));
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
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (payload.restart) {
      process.stderr.write(`events:tail: ${oneLine(payload.error)} (restarting the consumer)\n`);
      return;
    }
    console.error(`events:tail failed: ${oneLine(payload.error)}`);
    void stop(1);
  });

  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: options.fromBeginning });
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

main(process.argv.slice(2)).catch((error: unknown) => {
  exitOnUsageError('events:tail', USAGE, error);
  console.error(`events:tail failed: ${oneLine(error)}`);
  process.exit(1);
});
