/** Builds the outbox publisher the configuration asks for; see publisher.ts for how it works. */
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { KafkaSink } from './kafka-sink.js';
import { EmbeddedLeadership, PostgresLeadership } from './leadership.js';
import { OutboxPublisher } from './publisher.js';
import { type EventSink, LogSink, type OutboxLogger } from './sink.js';

export type { OutboxStatus, PublisherRole } from './publisher.js';
export { OutboxPublisher } from './publisher.js';

export function createOutboxPublisher(config: Config, database: Database, logger: OutboxLogger): OutboxPublisher {
  const sink: EventSink = config.kafka ? new KafkaSink(config.kafka, logger) : new LogSink(logger);
  const leadership = config.databaseUrl
    ? new PostgresLeadership(config.databaseUrl, logger)
    : new EmbeddedLeadership(database.db);
  return new OutboxPublisher(database.db, leadership, sink, config.outbox, logger);
}
