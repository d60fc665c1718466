/**
 * Two replicas of the service on one database: exactly one publishes (the advisory-lock leader), the other
 * stands by. When the leader's database session dies or the leader shuts down, the standby takes over
 * within the leader retry interval; nothing is lost and no aggregate is reordered.
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { OUTBOX_LOCK_KEY } from '../src/outbox/leadership.js';
import { HEADER } from '../src/outbox/routing.js';
import type { RunningService } from '../src/server/start.js';
import { clientsFor } from './support/clients.js';
import { deposit, openAccount } from './support/fixtures.js';
import { collectEvents, type EventCollector, type MockKafka, startMockKafka, waitUntil } from './support/kafka.js';
import { firstDeliveries, getJson, orderViolations, SELECT_OUTBOX_SQL, TOPICS } from './support/outbox.js';
import { startTestReplica, startTestServer, type TestServer } from './support/server.js';

const LEADER_RETRY_MS = 300;
/** Takeover bound: one retry interval, plus slack for a loaded test machine. */
const TAKEOVER_BOUND_MS = LEADER_RETRY_MS + 1_500;

let kafka: MockKafka;
let first: TestServer;
let second: RunningService | undefined;
let events: EventCollector;

const overrides = () => ({
  KAFKA_BROKERS: kafka.brokers,
  OUTBOX_LEADER_RETRY_MS: String(LEADER_RETRY_MS),
  OUTBOX_POLL_INTERVAL_MS: '500',
  OUTBOX_RETRY_MAX_MS: '500',
});

// A fresh broker, database and pair of replicas per test: each test kills or stops a leader, and must not
// inherit the roles (or the delivered events) another test left behind.
beforeEach(async () => {
  kafka = await startMockKafka();
  events = await collectEvents(kafka.directBrokers, [TOPICS.accounts, TOPICS.payments]);
  first = await startTestServer(overrides());
  await waitUntil(() => first.service.outbox.currentRole === 'leader', 'the first replica leads');
  second = await startTestReplica(first.database.url, overrides());
  await waitUntil(() => second?.outbox.currentRole === 'standby', 'the second replica stands by');
});
afterEach(async () => {
  await second?.close();
  await first?.stop();
  await events?.stop();
  await kafka?.stop();
});

/** pg_locks is cluster-wide: only this test's database counts (other test runs share the server). */
const LOCK_HOLDER = `locktype = 'advisory' and objid = $1 and granted
  and database = (select oid from pg_database where datname = current_database())`;

const roles = () => [first.service.outbox.currentRole, second!.outbox.currentRole];
const allRows = () => first.database.query<{ event_id: string }>(SELECT_OUTBOX_SQL);
const unpublished = async () =>
  (await first.database.query('select 1 from outbox_events where published_at is null')).length;

async function expectEverythingDelivered(what: string): Promise<void> {
  const expected = new Set((await allRows()).map((row) => row.event_id));
  await events.waitFor((messages) => {
    const seen = new Set(messages.map((m) => m.headers[HEADER.eventId]));
    for (const eventId of expected) if (!seen.has(eventId)) return false;
    return true;
  }, `${what}: all ${expected.size} events`);
  await waitUntil(async () => (await unpublished()) === 0, `${what}: no row unpublished`);
  expect(new Set(firstDeliveries(events.messages).map((m) => m.headers[HEADER.eventId]))).toEqual(expected);
  expect(orderViolations(events.messages)).toEqual([]);
}

/** Deposits to a few accounts through the second replica until stopped: a steady stream of ordered events. */
function depositStream(clients: ReturnType<typeof clientsFor>, accounts: string[]) {
  let running = true;
  let made = 0;
  const done = Promise.all(
    accounts.map(async (account) => {
      while (running) {
        await deposit(clients, account, 1n);
        made++;
      }
    }),
  );
  done.catch(() => {}); // surfaced by stop()
  return {
    made: () => made,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

it('only the leader publishes; both report their role in /readyz', async () => {
  const clients = clientsFor('grpc', second!.url);
  const accounts = await Promise.all(Array.from({ length: 5 }, () => openAccount(clients)));
  for (const account of accounts) await deposit(clients, account, 10n);
  await expectEverythingDelivered('steady state');

  expect(roles()).toEqual(['leader', 'standby']);
  expect((await first.service.outbox.status()).published).toBeGreaterThan(0);
  expect((await second!.outbox.status()).published).toBe(0);
  const ready = await Promise.all([getJson(`${first.url}/readyz`), getJson(`${second!.url}/readyz`)]);
  expect(ready.map((response) => (response.body as { outbox: { role: string } }).outbox.role)).toEqual([
    'leader',
    'standby',
  ]);
  // One session holds the lock.
  const holders = await first.database.query(`select pid from pg_locks where ${LOCK_HOLDER}`, [OUTBOX_LOCK_KEY]);
  expect(holders).toHaveLength(1);
});

it('a leader whose database session dies is replaced within the retry interval, losing nothing', async () => {
  const clients = clientsFor('grpc', second!.url);
  const accounts = await Promise.all(Array.from({ length: 4 }, () => openAccount(clients)));
  const stream = depositStream(clients, accounts);
  try {
    await waitUntil(() => stream.made() > 20, 'deposits flowing');
    // Kill the leader's lock session from outside, as a crashed process or a broken connection would.
    const killed = await first.database.query<{ ok: boolean }>(
      `select pg_terminate_backend(pid) as ok from pg_locks where ${LOCK_HOLDER}`,
      [OUTBOX_LOCK_KEY],
    );
    expect(killed).toEqual([{ ok: true }]);
    const killedAt = Date.now();
    await waitUntil(
      async () =>
        (await first.database.query(`select 1 from pg_locks where ${LOCK_HOLDER}`, [OUTBOX_LOCK_KEY])).length === 1 &&
        roles().filter((role) => role === 'leader').length === 1,
      'a new leader',
      TAKEOVER_BOUND_MS,
    );
    console.log(`session killed: new leader (${roles().join('/')}) after ${Date.now() - killedAt} ms`);
    const madeAtTakeover = stream.made();
    await waitUntil(() => stream.made() > madeAtTakeover + 20, 'more deposits after the takeover');
  } finally {
    await stream.stop();
  }
  await expectEverythingDelivered('after the session was killed');
});

it('when the leader shuts down, the standby takes over within the retry interval, losing nothing', async () => {
  expect(roles(), 'the first replica leads (beforeEach)').toEqual(['leader', 'standby']);
  const clients = clientsFor('grpc', second!.url);
  const accounts = await Promise.all(Array.from({ length: 4 }, () => openAccount(clients)));
  const stream = depositStream(clients, accounts);
  const publishedBefore = (await second!.outbox.status()).published;
  try {
    await waitUntil(() => stream.made() > 20, 'deposits flowing');
    await first.service.close();
    const closedAt = Date.now();
    await waitUntil(() => second!.outbox.currentRole === 'leader', 'the standby leads', TAKEOVER_BOUND_MS);
    console.log(`leader shut down: standby took over after ${Date.now() - closedAt} ms`);
    const madeAtTakeover = stream.made();
    await waitUntil(() => stream.made() > madeAtTakeover + 20, 'more deposits after the takeover');
  } finally {
    await stream.stop();
  }
  await expectEverythingDelivered('after the leader shut down');
  expect((await second!.outbox.status()).published).toBeGreaterThan(publishedBefore);
});
