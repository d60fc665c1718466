/**
 * Broker outage: the network between the service and the broker is cut (test/support/kafka-proxy.ts resets
 * every connection and every new one) while 1,000 payments commit; the broker itself keeps running and
 * keeps its data, as a real cluster would while a link is down. When the link is back, every event arrives,
 * at least once and, de-duplicated by event id, exactly once, in per-aggregate order; no row stays unpublished.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HEADER } from '../src/outbox/routing.js';
import { clientsFor } from './support/clients.js';
import { fundedAccount, key, openAccount } from './support/fixtures.js';
import { collectEvents, type EventCollector, type MockKafka, startMockKafka, waitUntil } from './support/kafka.js';
import { firstDeliveries, orderViolations, SELECT_OUTBOX_SQL, TOPICS } from './support/outbox.js';
import { startTestServer, type TestServer } from './support/server.js';

const PAYMENTS = 1_000;
const CONCURRENCY = 20;

let kafka: MockKafka;
let server: TestServer;
let events: EventCollector;

beforeAll(async () => {
  kafka = await startMockKafka();
  events = await collectEvents(kafka.directBrokers, [TOPICS.accounts, TOPICS.payments]);
  server = await startTestServer({
    KAFKA_BROKERS: kafka.brokers,
    OUTBOX_RETRY_MAX_MS: '1000',
    OUTBOX_POLL_INTERVAL_MS: '500',
  });
});
afterAll(async () => {
  await server?.stop();
  await events?.stop();
  await kafka?.stop();
});

const unpublishedCount = async () =>
  Number(
    (
      await server.database.query<{ n: number }>(
        'select count(*)::int as n from outbox_events where published_at is null',
      )
    )[0]?.n,
  );

it(`loses nothing while the broker is unreachable: ${PAYMENTS} payments, then recovery`, async () => {
  const clients = clientsFor('grpc', server.url);
  const payer = await fundedAccount(clients, 10_000_000n);
  const payees = await Promise.all(Array.from({ length: 10 }, () => openAccount(clients)));
  await waitUntil(async () => (await unpublishedCount()) === 0, 'setup events published');
  const connectionsBefore = kafka.proxy.connectionsAccepted();

  kafka.proxy.down();
  const started = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < PAYMENTS) {
        const index = next++;
        await clients.payments.authorizePayment({
          idempotencyKey: key('outage'),
          payerAccountId: payer,
          payeeAccountId: payees[index % payees.length]!,
          amount: { amountMinor: BigInt(1 + (index % 50)), currency: 'USD' },
        });
      }
    }),
  );
  const paymentsMs = Date.now() - started;
  // The publisher really tried and failed (attempts counted, error kept), and nothing got through.
  await waitUntil(
    async () =>
      (await server.database.query('select 1 from outbox_events where attempts > 0 and last_error is not null'))
        .length > 0,
    'failed attempts recorded during the outage',
  );
  const rowsDuringOutage = await server.database.query<{ event_id: string }>(
    'select event_id from outbox_events where published_at is null',
  );
  expect(rowsDuringOutage.length).toBeGreaterThanOrEqual(PAYMENTS);
  const stranded = new Set(rowsDuringOutage.map((row) => row.event_id));
  expect(events.messages.filter((m) => stranded.has(m.headers[HEADER.eventId] ?? ''))).toEqual([]);
  const status = await server.service.outbox.status();
  expect(status.role).toBe('leader');
  expect(status.unpublished).toBeGreaterThanOrEqual(PAYMENTS);

  kafka.proxy.up();
  const restored = Date.now();
  const rows = await server.database.query<{ event_id: string; aggregate_id: string }>(SELECT_OUTBOX_SQL);
  const expected = new Set(rows.map((row) => row.event_id));
  await events.waitFor(
    (messages) => {
      const seen = new Set(messages.map((m) => m.headers[HEADER.eventId]));
      for (const eventId of expected) if (!seen.has(eventId)) return false;
      return true;
    },
    `all ${expected.size} events in Kafka after the outage`,
    60_000,
  );
  const recoveryMs = Date.now() - restored;
  await waitUntil(async () => (await unpublishedCount()) === 0, 'no row left unpublished', 30_000);
  expect(kafka.proxy.connectionsAccepted()).toBeGreaterThan(connectionsBefore);

  // At least once: every event arrived. After de-duplication by event id: exactly once, nothing foreign.
  const unique = firstDeliveries(events.messages);
  expect(new Set(unique.map((m) => m.headers[HEADER.eventId]))).toEqual(expected);
  expect(unique).toHaveLength(expected.size);
  expect(orderViolations(events.messages)).toEqual([]);
  const duplicates = events.messages.length - unique.length;
  console.log(
    `outage: ${PAYMENTS} payments in ${paymentsMs} ms while down; all ${expected.size} events delivered ` +
      `${recoveryMs} ms after the link came back; ${duplicates} duplicate deliveries`,
  );
}, 120_000);

it('loses nothing when the link flaps while events are in flight', async () => {
  const clients = clientsFor('grpc', server.url);
  const payer = await fundedAccount(clients, 10_000_000n);
  const payees = await Promise.all(Array.from({ length: 5 }, () => openAccount(clients)));
  let flapping = true;
  let cuts = 0;
  const flapper = (async () => {
    while (flapping) {
      await new Promise((resolve) => setTimeout(resolve, 150 + Math.random() * 150));
      if (kafka.proxy.isDown()) kafka.proxy.up();
      else {
        kafka.proxy.down();
        cuts++;
      }
    }
    kafka.proxy.up();
  })();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < 500) {
        const index = next++;
        await clients.payments.authorizePayment({
          idempotencyKey: key('flap'),
          payerAccountId: payer,
          payeeAccountId: payees[index % payees.length]!,
          amount: { amountMinor: 7n, currency: 'USD' },
        });
      }
    }),
  );
  flapping = false;
  await flapper;

  const rows = await server.database.query<{ event_id: string }>(SELECT_OUTBOX_SQL);
  const expected = new Set(rows.map((row) => row.event_id));
  await events.waitFor(
    (messages) => {
      const seen = new Set(messages.map((m) => m.headers[HEADER.eventId]));
      for (const eventId of expected) if (!seen.has(eventId)) return false;
      return true;
    },
    `all ${expected.size} events in Kafka after the flapping`,
    60_000,
  );
  await waitUntil(async () => (await unpublishedCount()) === 0, 'no row left unpublished', 30_000);
  const unique = firstDeliveries(events.messages);
  expect(new Set(unique.map((m) => m.headers[HEADER.eventId]))).toEqual(expected);
  expect(orderViolations(events.messages)).toEqual([]);
  console.log(`flapping: ${cuts} cuts; ${events.messages.length - unique.length} duplicate deliveries in total`);
}, 120_000);
