/**
 * The publisher's failure handling, against real PostgreSQL with a scripted sink: a row the sink keeps
 * rejecting is kept, counted and reported, and holds back only the later rows of its own aggregate; a
 * transport outage holds back everything and is retried with backoff; published rows are cleaned up after
 * the retention; the log sink (no KAFKA_BROKERS) marks rows published too.
 */
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { OutboxConfig } from '../src/config.js';
import { type Database, openPostgres } from '../src/db/client.js';
import { backoffMs } from '../src/outbox/backoff.js';
import { PostgresLeadership } from '../src/outbox/leadership.js';
import { DEFAULT_TIMINGS, OutboxPublisher } from '../src/outbox/publisher.js';
import { HEADER, type OutgoingMessage } from '../src/outbox/routing.js';
import { type EventSink, LogSink, type OutboxLogger, SinkError } from '../src/outbox/sink.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { waitUntil } from './support/kafka.js';
import { INSERT_OUTBOX_SQL, insertParams, type SyntheticEvent, syntheticEvent, TOPICS } from './support/outbox.js';
import { deferred } from './support/waits.js';

class ScriptedSink implements EventSink {
  readonly kind = 'kafka' as const;
  /** Event ids rejected as bad records. */
  readonly poisoned = new Set<string>();
  down = false;
  sendCalls = 0;
  readonly delivered: OutgoingMessage[] = [];

  async send(messages: OutgoingMessage[]): Promise<void> {
    this.sendCalls++;
    if (this.down) throw new SinkError('transport', 'KafkaJSConnectionError: broker unreachable');
    const bad = messages.find((message) => this.poisoned.has(message.row.eventId));
    if (bad) throw new SinkError('message', `MESSAGE_TOO_LARGE: ${bad.row.eventId}`);
    this.delivered.push(...messages);
  }

  async stop(): Promise<void> {}
}

class RecordingLogger implements OutboxLogger {
  readonly lines: { level: string; details: Record<string, unknown>; message: string }[] = [];
  debug() {}
  info(details: object, message: string) {
    this.lines.push({ level: 'info', details: details as Record<string, unknown>, message });
  }
  warn(details: object, message: string) {
    this.lines.push({ level: 'warn', details: details as Record<string, unknown>, message });
  }
  error(details: object, message: string) {
    this.lines.push({ level: 'error', details: details as Record<string, unknown>, message });
  }
}

const OPTIONS: OutboxConfig = {
  topics: TOPICS,
  batchSize: 50,
  pollIntervalMs: 100,
  lingerMs: 5,
  leaderRetryMs: 100,
  retryMaxMs: 200,
  warnAfterAttempts: 3,
  lagWarnMs: 60_000,
  retentionMs: 72 * 3_600_000,
};

let testDb: TestDatabase;
let database: Database;
let sink: ScriptedSink;
let logger: RecordingLogger;
let publisher: OutboxPublisher | undefined;

beforeAll(async () => {
  testDb = await createTestDatabase();
  database = openPostgres({ url: testDb.url, poolSize: 2 });
  await database.migrate();
});
afterAll(async () => {
  await publisher?.stop();
  await database?.close();
  await testDb?.drop();
});
beforeEach(async () => {
  await publisher?.stop();
  await testDb.query('delete from outbox_events');
  sink = new ScriptedSink();
  logger = new RecordingLogger();
});

function startPublisher(eventSink: EventSink = sink): OutboxPublisher {
  publisher = new OutboxPublisher(
    database.db,
    new PostgresLeadership(testDb.url, logger),
    eventSink,
    OPTIONS,
    logger,
    DEFAULT_TIMINGS,
  );
  publisher.start();
  return publisher;
}

async function insert(...events: SyntheticEvent[]): Promise<void> {
  for (const event of events) await testDb.query(INSERT_OUTBOX_SQL, insertParams(event));
}

const rowOf = async (eventId: string) =>
  (
    await testDb.query<{ published_at: Date | null; attempts: number; last_error: string | null }>(
      'select published_at, attempts, last_error from outbox_events where event_id = $1',
      [eventId],
    )
  )[0]!;
const isPublished = async (eventId: string) => (await rowOf(eventId)).published_at !== null;
const deliveredIds = () => sink.delivered.map((message) => message.row.eventId);

it('a rejected row is kept and reported, and holds back only the later rows of its aggregate', async () => {
  const a = [1n, 2n, 3n].map((seq) => syntheticEvent('FundsDeposited', 'acct_a', seq));
  const b = [1n, 2n].map((seq) => syntheticEvent('FundsDeposited', 'acct_b', seq));
  const c = syntheticEvent('PaymentCompleted', 'pay_c', 1n);
  await insert(a[0]!, b[0]!, a[1]!, c, a[2]!, b[1]!);
  sink.poisoned.add(a[1]!.eventId);
  startPublisher();

  // Everything else flows, including A's first event (it precedes the bad one).
  for (const event of [a[0]!, b[0]!, b[1]!, c]) await waitUntil(() => isPublished(event.eventId), event.eventId);
  // The bad row keeps failing: counted, error kept, reported once past the threshold with its event id.
  await waitUntil(async () => (await rowOf(a[1]!.eventId)).attempts >= OPTIONS.warnAfterAttempts, 'attempts');
  const bad = await rowOf(a[1]!.eventId);
  expect(bad.published_at).toBeNull();
  expect(bad.last_error).toContain('MESSAGE_TOO_LARGE');
  await waitUntil(
    () =>
      logger.lines.some(
        (line) => line.level === 'warn' && (line.details.eventIds as string[] | undefined)?.includes(a[1]!.eventId),
      ),
    'a warning naming the stuck event',
  );
  // A's later event waits behind it: never sent, never counted as failed.
  expect(deliveredIds()).not.toContain(a[2]!.eventId);
  expect(await rowOf(a[2]!.eventId)).toMatchObject({ published_at: null, attempts: 0 });

  // New events of other aggregates are not held up meanwhile.
  const d = syntheticEvent('AccountCreated', 'acct_d', 0n);
  await insert(d);
  await waitUntil(() => isPublished(d.eventId), 'a new aggregate while A is blocked');
  expect(await isPublished(a[2]!.eventId)).toBe(false);

  // Once the record is accepted, A continues in order.
  sink.poisoned.clear();
  await waitUntil(() => isPublished(a[2]!.eventId), "A's held-back event");
  const aOrder = deliveredIds().filter((id) => a.some((event) => event.eventId === id));
  expect(aOrder).toEqual(a.map((event) => event.eventId));
});

it('a transport outage holds everything back, retries with bounded backoff, then delivers all in order', async () => {
  const events = Array.from({ length: 120 }, (_, index) =>
    syntheticEvent('FundsDeposited', `acct_${index % 7}`, BigInt(index)),
  );
  sink.down = true;
  await insert(...events);
  startPublisher();
  await waitUntil(async () => (await rowOf(events[0]!.eventId)).attempts >= 4, 'several failed attempts');
  expect(sink.delivered).toEqual([]);
  // Backoff, not a busy loop: a handful of attempts per second at most, capped at retryMaxMs apart.
  const callsBefore = sink.sendCalls;
  const windowStart = Date.now();
  await waitUntil(() => Date.now() - windowStart >= 1_000, 'one second of outage');
  expect(sink.sendCalls - callsBefore).toBeLessThanOrEqual(1_000 / (OPTIONS.retryMaxMs / 2) + 1);
  expect((await publisher!.status()).unpublished).toBe(120);

  sink.down = false;
  await waitUntil(async () => (await publisher!.status()).unpublished === 0, 'all delivered');
  expect(deliveredIds()).toEqual(events.map((event) => event.eventId));
  expect(logger.lines.some((line) => line.level === 'warn' && line.message.includes('failed'))).toBe(true);
});

it('deletes published rows past the retention, and only those', async () => {
  const old = syntheticEvent('AccountCreated', 'acct_old', 0n);
  const recent = syntheticEvent('AccountCreated', 'acct_recent', 0n);
  const pending = syntheticEvent('AccountCreated', 'acct_pending', 0n);
  await insert(old, recent, pending);
  await testDb.query(`update outbox_events set published_at = now() - interval '73 hours' where event_id = $1`, [
    old.eventId,
  ]);
  await testDb.query(`update outbox_events set published_at = now() - interval '71 hours' where event_id = $1`, [
    recent.eventId,
  ]);
  const cleaner = new OutboxPublisher(database.db, new PostgresLeadership(testDb.url, logger), sink, OPTIONS, logger, {
    ...DEFAULT_TIMINGS,
    cleanupBatchSize: 1,
  });
  expect(await cleaner.cleanup()).toBe(1);
  const left = await testDb.query<{ event_id: string }>('select event_id from outbox_events order by id');
  expect(left.map((row) => row.event_id)).toEqual([recent.eventId, pending.eventId]);
});

it('without Kafka, the log sink writes one line per event (decoded) and the rows are marked published', async () => {
  const event = syntheticEvent('PaymentCompleted', 'pay_logged', 1n);
  await insert(event);
  startPublisher(new LogSink(logger));
  await waitUntil(() => isPublished(event.eventId), 'published to the log');
  const line = logger.lines.find((entry) => entry.details.eventId === event.eventId);
  expect(line?.details).toMatchObject({
    eventType: 'PaymentCompleted',
    aggregateId: 'pay_logged',
    aggregateSeq: '1',
    topic: TOPICS.payments,
    event: { metadata: { eventId: event.eventId, aggregateId: 'pay_logged', aggregateSeq: '1' } },
  });
});

it('stop() gives up the lock so another publisher can lead at once', async () => {
  const one = startPublisher();
  await waitUntil(() => one.currentRole === 'leader', 'leads');
  const other = new OutboxPublisher(database.db, new PostgresLeadership(testDb.url, logger), sink, OPTIONS, logger);
  other.start();
  try {
    await waitUntil(() => other.currentRole === 'standby', 'other stands by');
    await one.stop();
    expect(one.currentRole).toBe('stopped');
    await waitUntil(() => other.currentRole === 'leader', 'other leads', OPTIONS.leaderRetryMs + 5_000);
    const event = syntheticEvent('AccountCreated', 'acct_after', 0n);
    await insert(event);
    await waitUntil(() => isPublished(event.eventId), 'published by the new leader');
    expect(sink.delivered.at(-1)?.headers[HEADER.eventId]).toBe(event.eventId);
  } finally {
    await other.stop();
  }
});

it('stop() publishes what committed while the last batch was in flight, instead of leaving it to the next leader', async () => {
  const gate = deferred();
  const delivered: string[] = [];
  let sends = 0;
  // The first send waits for the gate, so the second event commits while a batch is in flight and stop()
  // is called before the publisher can come round to it.
  const gated: EventSink = {
    kind: 'kafka',
    send: async (messages) => {
      if (sends++ === 0) await gate.promise;
      delivered.push(...messages.map((message) => message.row.eventId));
    },
    stop: async () => {},
  };
  const first = syntheticEvent('AccountCreated', 'acct_first', 0n);
  const last = syntheticEvent('AccountCreated', 'acct_last', 0n);
  const stopping = startPublisher(gated);
  await insert(first);
  await waitUntil(() => sends > 0, 'the first batch is in flight');
  await insert(last);
  const stopped = stopping.stop();
  gate.resolve();
  await stopped;
  expect(delivered).toEqual([first.eventId, last.eventId]);
  expect(await isPublished(last.eventId)).toBe(true);
  expect(logger.lines.filter((line) => line.level !== 'info')).toEqual([]);
});

it('stop() does not try again when the batch in flight at that moment failed', async () => {
  const gate = deferred();
  let sends = 0;
  const failing: EventSink = {
    kind: 'kafka',
    send: async () => {
      sends++;
      await gate.promise;
      throw new SinkError('transport', 'KafkaJSConnectionError: broker unreachable');
    },
    stop: async () => {},
  };
  const event = syntheticEvent('AccountCreated', 'acct_unsent', 0n);
  const stopping = startPublisher(failing);
  await insert(event);
  await waitUntil(() => sends > 0, 'the batch is in flight');
  const stopped = stopping.stop();
  gate.resolve();
  await stopped;
  expect(sends).toBe(1);
  expect(await isPublished(event.eventId)).toBe(false);
});

it('a batch still in flight at shutdown is abandoned after the stop timeout and sent again by the next leader', async () => {
  let sendStarted = false;
  const hanging: EventSink = {
    kind: 'kafka',
    send: () => {
      sendStarted = true;
      return new Promise<void>(() => {}); // the broker never answers
    },
    stop: async () => {},
  };
  const event = syntheticEvent('AccountCreated', 'acct_abandoned', 0n);
  await insert(event);
  const stuck = new OutboxPublisher(database.db, new PostgresLeadership(testDb.url, logger), hanging, OPTIONS, logger, {
    ...DEFAULT_TIMINGS,
    stopTimeoutMs: 300,
  });
  stuck.start();
  await waitUntil(() => sendStarted, 'the batch is in flight');
  const stopping = Date.now();
  await stuck.stop();
  expect(Date.now() - stopping).toBeLessThan(3_000);
  expect(logger.lines.some((line) => line.message.includes('abandoned'))).toBe(true);
  expect(await isPublished(event.eventId)).toBe(false);

  startPublisher();
  await waitUntil(() => isPublished(event.eventId), 'sent again by the next leader');
  expect(deliveredIds()).toEqual([event.eventId]);
});

it('backoff grows exponentially with jitter and stays under the cap', () => {
  const low = () => 0;
  const high = () => 1;
  expect(backoffMs(1, 100, 30_000, low)).toBe(50);
  expect(backoffMs(1, 100, 30_000, high)).toBe(100);
  expect(backoffMs(4, 100, 30_000, high)).toBe(800);
  expect(backoffMs(50, 100, 30_000, high)).toBe(30_000);
  expect(backoffMs(50, 100, 30_000, low)).toBe(15_000);
});
