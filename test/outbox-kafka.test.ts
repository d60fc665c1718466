/**
 * The transactional outbox, end to end: the real service on real PostgreSQL publishing to a real
 * Kafka-protocol broker (librdkafka's mock cluster), read back with a kafkajs consumer group.
 */
import { spawn } from 'node:child_process';
import { Code, ConnectError } from '@connectrpc/connect';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PaymentStatus } from '../gen/payment/v1/payment_pb.js';
import { Ledger } from '../src/ledger/apply.js';
import { sweepExpiredHolds } from '../src/ledger/hold-sweeper.js';
import { contentTypeOf, decodeEventJson, eventTypeName, HEADER } from '../src/outbox/routing.js';
import { clientsFor } from './support/clients.js';
import { authorizeHold, deposit, fundedAccount, key, merchantAccount, openAccount } from './support/fixtures.js';
import { collectEvents, type EventCollector, type MockKafka, startMockKafka, waitUntil } from './support/kafka.js';
import {
  eventIdsOf,
  getJson,
  INSERT_OUTBOX_SQL,
  insertParams,
  type OutboxRowView,
  orderViolations,
  recordProblems,
  SELECT_OUTBOX_SQL,
  schemas,
  syntheticEvent,
  TOPICS,
} from './support/outbox.js';
import { startTestServer, type TestServer } from './support/server.js';

let kafka: MockKafka;
let server: TestServer;
let events: EventCollector;

beforeAll(async () => {
  kafka = await startMockKafka();
  events = await collectEvents(kafka.directBrokers, [TOPICS.accounts, TOPICS.payments]);
  server = await startTestServer({
    KAFKA_BROKERS: kafka.brokers,
    KAFKA_CLIENT_ID: 'ledger-test',
    OUTBOX_POLL_INTERVAL_MS: '5000', // long on purpose: the tests below are woken by NOTIFY, not by polling
    OUTBOX_RETRY_MAX_MS: '500',
  });
});
afterAll(async () => {
  await server?.stop();
  await events?.stop();
  await kafka?.stop();
});

const outboxRows = () => server.database.query<OutboxRowView & Record<string, unknown>>(SELECT_OUTBOX_SQL);
const received = (eventId: string) => events.messages.filter((m) => m.headers[HEADER.eventId] === eventId);
const allPublished = async () =>
  (await server.database.query('select 1 from outbox_events where published_at is null')).length === 0;

async function insertCommitted(event: ReturnType<typeof syntheticEvent>): Promise<string> {
  const [row] = await server.database.query<{ id: string }>(INSERT_OUTBOX_SQL, insertParams(event));
  return row!.id;
}

describe('every event type', () => {
  it('arrives in Kafka with its key, headers and a payload that decodes with the generated type', async () => {
    const clients = clientsFor('grpc', server.url);
    // Through the API: AccountCreated, FundsDeposited, PaymentCompleted, PaymentDeclined.
    const payer = await fundedAccount(clients, 1_000n);
    const payee = await openAccount(clients);
    const first = await clients.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: payer,
      payeeAccountId: payee,
      amount: { amountMinor: 100n, currency: 'USD' },
    });
    await clients.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: payer,
      payeeAccountId: payee,
      amount: { amountMinor: 1_000_000n, currency: 'USD' },
    });
    // The lifecycle: PaymentAuthorized, PaymentCaptured, PaymentVoided, PaymentRefunded, RefundDeclined,
    // SettlementCompleted and PaymentExpired.
    const merchant = await merchantAccount(clients);
    const captured = await authorizeHold(clients, payer, merchant, 200n);
    await clients.payments.capturePayment({ idempotencyKey: key(), paymentId: captured });
    await clients.payments.refundPayment({
      idempotencyKey: key(),
      paymentId: captured,
      amount: { amountMinor: 50n, currency: 'USD' },
    });
    await clients.payments.voidPayment({
      idempotencyKey: key(),
      paymentId: await authorizeHold(clients, payer, payee, 10n),
    });
    await clients.settlements.runSettlement({ accountId: merchant });
    // The payee passes on what it received, so refunding the first payment is declined.
    await clients.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: payee,
      payeeAccountId: payer,
      amount: { amountMinor: 100n, currency: 'USD' },
    });
    const declined = await clients.payments.refundPayment({ idempotencyKey: key(), paymentId: first.payment!.id });
    expect(declined.refund?.declineReason).toBeTruthy();
    const expiring = await authorizeHold(clients, payer, payee, 5n);
    const eightDaysLater = new Date(Date.now() + 8 * 86_400_000);
    const lateLedger = new Ledger(server.service.database.db, {
      idempotencyRetentionMs: 86_400_000,
      maxPaymentMinor: () => 1_000_000n,
      now: () => eightDaysLater,
    });
    expect(await sweepExpiredHolds(server.service.database.db, lateLedger, eightDaysLater)).toBeGreaterThanOrEqual(1);
    expect((await clients.payments.getPayment({ paymentId: expiring })).payment?.status).toBe(PaymentStatus.EXPIRED);

    // Every catalogue type the API did not produce here (ones added later) gets a hand-made row encoded with
    // its generated schema, so the publishing path is checked for each of them.
    const produced = new Set((await outboxRows()).map((row) => row.event_type));
    const throughTheApi = [
      'AccountCreated',
      'FundsDeposited',
      'PaymentCompleted',
      'PaymentDeclined',
      'PaymentAuthorized',
      'PaymentCaptured',
      'PaymentVoided',
      'PaymentExpired',
      'PaymentRefunded',
      'RefundDeclined',
      'SettlementCompleted',
    ];
    for (const type of throughTheApi) {
      expect(produced, `the API scenario should have produced ${type}`).toContain(type);
    }
    for (const type of Object.keys(schemas).filter((type) => !produced.has(type))) {
      await insertCommitted(syntheticEvent(type));
    }

    const rows = await outboxRows();
    expect(new Set(rows.map((row) => row.event_type))).toEqual(new Set(Object.keys(schemas)));
    await events.waitFor(
      (messages) => rows.every((row) => messages.some((m) => m.headers[HEADER.eventId] === row.event_id)),
      `all ${rows.length} events in Kafka`,
    );
    for (const row of rows) {
      const [message] = received(row.event_id);
      expect(recordProblems(message!, row), `${row.event_type} ${row.event_id}`).toEqual([]);
      // and the tooling's decoder (header → schema) reads it too
      expect(decodeEventJson(message!.headers[HEADER.eventType]!, message!.value)).toMatchObject({
        metadata: { eventId: row.event_id },
      });
    }
    await waitUntil(allPublished, 'every row marked published');
  });

  it('names the protobuf type in event-type and content-type', () => {
    expect(eventTypeName('PaymentCompleted')).toBe('payment.events.v1.PaymentCompleted');
    expect(contentTypeOf('payment.events.v1.PaymentCompleted')).toBe(
      'application/x-protobuf; messageType=payment.events.v1.PaymentCompleted',
    );
  });
});

describe('what is not committed is not published', () => {
  it('a refused payment (NOT_FOUND) writes no event', async () => {
    const clients = clientsFor('grpc', server.url);
    const payer = await fundedAccount(clients, 500n);
    await waitUntil(allPublished, 'setup published');
    const before = (await outboxRows()).length;
    const error = await clients.payments
      .authorizePayment({
        idempotencyKey: key(),
        payerAccountId: payer,
        payeeAccountId: 'acct_00000000000000000000000000',
        amount: { amountMinor: 1n, currency: 'USD' },
      })
      .catch((caught: unknown) => ConnectError.from(caught));
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.NotFound);
    expect((await outboxRows()).length).toBe(before);
  });

  it('a rolled-back transaction with an outbox row produces no event', async () => {
    const aggregateId = `acct_rollback${Date.now()}`;
    const rolledBack = syntheticEvent('AccountCreated', aggregateId, 0n);
    const client = new pg.Client({ connectionString: server.database.url });
    await client.connect();
    try {
      await client.query('begin');
      await client.query(INSERT_OUTBOX_SQL, insertParams(rolledBack));
      await client.query('rollback');
    } finally {
      await client.end();
    }
    // A later committed event of the same aggregate (same key, same partition): once it has arrived, the
    // rolled-back one would have arrived before it, had it existed.
    const marker = syntheticEvent('FundsDeposited', aggregateId, 1n);
    await insertCommitted(marker);
    await events.waitFor((messages) => messages.some((m) => m.headers[HEADER.eventId] === marker.eventId), 'marker');
    expect(received(rolledBack.eventId)).toEqual([]);
  });
});

describe('order', () => {
  it("one aggregate's events arrive with strictly increasing sequence numbers", async () => {
    const clients = clientsFor('grpc', server.url);
    const account = await openAccount(clients);
    for (let index = 0; index < 8; index++) await deposit(clients, account, BigInt(index + 1));
    await Promise.all(Array.from({ length: 8 }, () => deposit(clients, account, 5n)));
    const rows = (await outboxRows()).filter((row) => row.aggregate_id === account);
    expect(rows).toHaveLength(17);
    await events.waitFor((messages) => messages.filter((m) => m.key === account).length >= 17, '17 events');
    const seqs = events.messages.filter((m) => m.key === account).map((m) => BigInt(m.headers[HEADER.aggregateSeq]!));
    expect(seqs).toHaveLength(17);
    expect(seqs).toEqual([...seqs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(new Set(seqs).size).toBe(17);
    expect(orderViolations(events.messages)).toEqual([]);
  });

  it('a late-committing transaction with a lower outbox id is still published', async () => {
    const clients = clientsFor('grpc', server.url);
    const late = syntheticEvent('AccountCreated', `acct_late${Date.now()}`, 0n);
    const client = new pg.Client({ connectionString: server.database.url });
    await client.connect();
    try {
      await client.query('begin');
      const [{ id: lateId }] = (await client.query<{ id: string }>(INSERT_OUTBOX_SQL, insertParams(late))).rows as [
        { id: string },
      ];
      // Later transactions take higher ids, commit and are published while the first is still open.
      const overtakers = await Promise.all(Array.from({ length: 3 }, () => openAccount(clients)));
      const overtakerRows = (await outboxRows()).filter((row) => overtakers.includes(row.aggregate_id));
      expect(overtakerRows).toHaveLength(3);
      for (const row of overtakerRows) expect(BigInt(row.id)).toBeGreaterThan(BigInt(lateId));
      await events.waitFor(
        (messages) => overtakerRows.every((row) => messages.some((m) => m.headers[HEADER.eventId] === row.event_id)),
        'the later events in Kafka',
      );
      await waitUntil(allPublished, 'the later rows marked published');
      expect(received(late.eventId)).toEqual([]);

      await client.query('commit');
    } finally {
      await client.end();
    }
    await events.waitFor(
      (messages) => messages.some((m) => m.headers[HEADER.eventId] === late.eventId),
      'the late event in Kafka',
    );
    await waitUntil(allPublished, 'the late row marked published');
  });
});

describe('operations', () => {
  it('/readyz shows the publisher as leader with its lag', async () => {
    const response = await getJson(`${server.url}/readyz`);
    expect(response.status).toBe(200);
    const body = response.body as { outbox: { role: string; unpublished: number; oldestAgeMs: number } };
    expect(body.outbox.role).toBe('leader');
    expect(typeof body.outbox.unpublished).toBe('number');
    expect(typeof body.outbox.oldestAgeMs).toBe('number');
  });

  it('npm run events:tail prints the events as decoded JSON lines', async () => {
    const expected = events.messages.length;
    expect(eventIdsOf(events.messages).size).toBe(expected);
    const child = spawn(
      'npm',
      ['run', '--silent', 'events:tail', '--', '--from-beginning', '--limit', String(expected)],
      {
        env: { ...process.env, KAFKA_BROKERS: kafka.directBrokers },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exitCode = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    expect(exitCode, stderr).toBe(0);
    const lines = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string; key: string; event: { metadata: { eventId: string } } });
    expect(lines).toHaveLength(expected);
    for (const line of lines) {
      expect(line.type).toMatch(/^payment\.events\.v1\./);
      expect(line.event.metadata.eventId).toMatch(/^evt_/);
    }
  }, 30_000);
});
