/**
 * Publishes outbox events to Kafka with kafkajs: binary protobuf values, the aggregate id as key, headers
 * from routing.ts. Producer settings are for "never lose, never reorder one aggregate":
 *   acks -1            every in-sync replica has the batch before `send` resolves (and the row is marked);
 *   idempotent         the broker drops duplicates of kafkajs's own retries (one producer id per connect);
 *   maxInFlight 1      a retried request can never overtake the next one.
 * kafkajs retries a few times itself; past that `send` rejects and the publisher backs off and retries with
 * the same rows (so an idempotent producer's "limited retries" warning is expected and logged at debug).
 * After any failure the producer is replaced, which resets its sequence numbers; events sent twice across
 * that boundary are the at-least-once duplicates consumers drop by the event-id header.
 * The service does not ask for topics to be auto-created: the topics must exist. When a send fails, the
 * brokers' topic list is read (one metadata request) and missing topics are named in the error, since
 * kafkajs itself only says "Broker 0 not found in the cached metadata" or "This server does not host this
 * topic-partition".
 */
import {
  Kafka,
  type KafkaConfig as KafkaJsConfig,
  type LogEntry,
  logLevel,
  type Message,
  Partitioners,
  type Producer,
  type SASLOptions,
} from 'kafkajs';
import type { KafkaConfig } from '../config.js';
import type { OutgoingMessage } from './routing.js';
import { type EventSink, type OutboxLogger, SinkError } from './sink.js';

const CONNECTION_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 15_000;
/** How long the broker may wait for the in-sync replicas before answering a produce request. */
const ACK_TIMEOUT_MS = 10_000;
const DISCONNECT_TIMEOUT_MS = 5_000;
const KAFKAJS_RETRY = { retries: 3, initialRetryTime: 200, maxRetryTime: 5_000 };
const TOPIC_CHECK_TIMEOUT_MS = 5_000;

/**
 * Produce errors about the records themselves: the same records fail again however often they are sent.
 * Everything else (connections, timeouts, leadership changes, authorization, unknown topics) is transport.
 */
const MESSAGE_ERROR_TYPES = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'CORRUPT_MESSAGE',
  'INVALID_TIMESTAMP',
]);

/** kafkajs log lines into the service's pino logger (kafkajs level WARN: warnings and errors only). */
export function kafkaLogCreator(logger: OutboxLogger) {
  return () =>
    ({ namespace, level, log }: LogEntry) => {
      const { message, timestamp: _timestamp, logger: _name, ...details } = log;
      const entry = { source: 'kafkajs', namespace, ...details };
      if (message.startsWith('Limiting retries for the idempotent producer')) {
        logger.debug(entry, message); // intended: see the comment at the top of this file
      } else if (level === logLevel.ERROR) {
        logger.error(entry, message);
      } else if (level === logLevel.WARN) {
        logger.warn(entry, message);
      } else if (level === logLevel.INFO) {
        logger.info(entry, message);
      } else {
        logger.debug(entry, message);
      }
    };
}

/** The kafkajs client settings from config; shared with scripts/events-tail.ts. */
export function kafkaClientConfig(
  config: KafkaConfig,
  logger: OutboxLogger,
  clientId = config.clientId,
): KafkaJsConfig {
  return {
    clientId,
    brokers: config.brokers,
    ssl: config.ssl,
    // Same three mechanisms and fields as kafkajs's union type, validated in loadConfig.
    sasl: config.sasl as SASLOptions | undefined,
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    requestTimeout: REQUEST_TIMEOUT_MS,
    retry: KAFKAJS_RETRY,
    logLevel: logLevel.WARN,
    logCreator: kafkaLogCreator(logger),
  };
}

export function failureScopeOf(error: unknown): 'message' | 'transport' {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const { type, cause, originalError } = current as { type?: unknown; cause?: unknown; originalError?: unknown };
    if (typeof type === 'string' && MESSAGE_ERROR_TYPES.has(type)) return 'message';
    current = cause ?? originalError;
  }
  return 'transport';
}

function toKafkaMessage(message: OutgoingMessage): Message {
  const { value } = message;
  return {
    key: message.key,
    value: Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength),
    headers: message.headers,
  };
}

async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export class KafkaSink implements EventSink {
  readonly kind = 'kafka' as const;
  private readonly kafka: Kafka;
  private producer: Producer | undefined;

  constructor(
    config: KafkaConfig,
    private readonly logger: OutboxLogger,
  ) {
    this.kafka = new Kafka(kafkaClientConfig(config, logger));
  }

  async send(messages: OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const byTopic = new Map<string, Message[]>();
    for (const message of messages) {
      const list = byTopic.get(message.topic) ?? [];
      list.push(toKafkaMessage(message));
      byTopic.set(message.topic, list);
    }
    try {
      const producer = await this.connectedProducer();
      await producer.sendBatch({
        acks: -1,
        timeout: ACK_TIMEOUT_MS,
        topicMessages: [...byTopic].map(([topic, topicMessages]) => ({ topic, messages: topicMessages })),
      });
    } catch (error) {
      await this.dropProducer();
      const missing = await this.missingTopics([...byTopic.keys()]);
      const reason =
        missing.length > 0
          ? `topics missing on the brokers: ${missing.join(', ')} (create them: the service does not auto-create topics; see KAFKA_TOPIC_ACCOUNTS and KAFKA_TOPIC_PAYMENTS)`
          : error instanceof Error
            ? `${error.name}: ${error.message}`
            : String(error);
      throw new SinkError(failureScopeOf(error), reason, { cause: error });
    }
  }

  /** Which of `topics` the brokers do not have; empty when they all exist or the brokers cannot be asked. */
  private async missingTopics(topics: string[]): Promise<string[]> {
    const admin = this.kafka.admin({ retry: { retries: 0 } });
    try {
      const existing = await within(
        admin.connect().then(() => admin.listTopics()),
        TOPIC_CHECK_TIMEOUT_MS,
      );
      if (!existing) return [];
      const known = new Set(existing);
      return topics.filter((topic) => !known.has(topic));
    } catch {
      return [];
    } finally {
      await within(
        admin.disconnect().catch(() => {}),
        DISCONNECT_TIMEOUT_MS,
      );
    }
  }

  async stop(): Promise<void> {
    await this.dropProducer();
  }

  private async connectedProducer(): Promise<Producer> {
    if (this.producer) return this.producer;
    const producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // The Java client's murmur2 partitioner: the same key lands in the same partition as with other clients.
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: KAFKAJS_RETRY,
    });
    this.producer = producer;
    await producer.connect();
    return producer;
  }

  private async dropProducer(): Promise<void> {
    const producer = this.producer;
    this.producer = undefined;
    if (!producer) return;
    try {
      const done = await within(
        producer.disconnect().then(() => true),
        DISCONNECT_TIMEOUT_MS,
      );
      if (!done) this.logger.warn({}, 'kafka producer did not disconnect in time; abandoned');
    } catch (error) {
      this.logger.debug({ err: error }, 'kafka producer disconnect failed');
    }
  }
}
