/**
 * Where the publisher sends events: Kafka (kafka-sink.ts) or, without KAFKA_BROKERS, the log (LogSink).
 * `send` resolves only once every message is durably accepted; a rejection says whether the failure is about
 * the messages themselves (retrying them unchanged cannot help, so only their aggregates wait) or about the
 * transport (everything waits and is retried with backoff).
 */
import { decodeEventJson, HEADER, type OutgoingMessage } from './routing.js';

export interface OutboxLogger {
  debug(details: object, message: string): void;
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
  /** pino's: whether a line at `level` would be written (absent: assume it would). */
  isLevelEnabled?(level: string): boolean;
}

export type FailureScope = 'message' | 'transport';

export class SinkError extends Error {
  constructor(
    readonly scope: FailureScope,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SinkError';
  }
}

export interface EventSink {
  readonly kind: 'kafka' | 'log';
  /** Resolves when every message is acknowledged; rejects with a SinkError otherwise. */
  send(messages: OutgoingMessage[]): Promise<void>;
  /** Releases connections; a later send reconnects. */
  stop(): Promise<void>;
}

/**
 * The embedded default: one structured log line per event, with the payload decoded to protobuf JSON when
 * its type is known. The rows are then marked published like any others, so the outbox stays bounded.
 */
export class LogSink implements EventSink {
  readonly kind = 'log' as const;

  constructor(private readonly logger: OutboxLogger) {}

  async send(messages: OutgoingMessage[]): Promise<void> {
    // Decoding each payload to JSON is most of this sink's cost: skipped when info lines go nowhere.
    if (this.logger.isLevelEnabled?.('info') === false) return;
    for (const message of messages) {
      const { row } = message;
      let event: unknown;
      try {
        event = decodeEventJson(message.headers[HEADER.eventType]!, row.payload);
      } catch {
        event = undefined; // a payload that does not decode is still reported by its metadata
      }
      this.logger.info(
        {
          eventId: row.eventId,
          eventType: row.eventType,
          aggregateType: row.aggregateType,
          aggregateId: row.aggregateId,
          aggregateSeq: row.aggregateSeq.toString(),
          topic: message.topic,
          event,
        },
        'outbox event (KAFKA_BROKERS unset: logged instead of published)',
      );
    }
  }

  async stop(): Promise<void> {}
}
