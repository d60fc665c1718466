/**
 * Crashes under load, bounded: the server SIGKILLed and restarted (on PostgreSQL and on an embedded
 * DATA_DIR), and PostgreSQL itself restarted, fast and immediate, under a running server (a private cluster
 * started by this test, never the shared one). Clients pay under idempotency keys and retry every unanswered
 * request with its key until it is answered. Afterwards every request, acknowledged at once or only after
 * the fault, made exactly one payment (the one its answer named), and the ledger check passes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { afterEach, expect, it } from 'vitest';
import { type Clients, clientsFor } from './support/clients.js';
import { type Credentials, signToken } from './support/credentials.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { fundedAccount, openAccount } from './support/fixtures.js';
import { waitUntil } from './support/kafka.js';
import { getJson } from './support/outbox.js';
import {
  LOAD_AMOUNT_MINOR,
  type PaymentPair,
  type PaymentRequestLog,
  paymentLoadProblems,
  RETRY_CODES,
  runPaymentLoad,
} from './support/payment-load.js';
import { type PrivatePostgres, startPrivatePostgres } from './support/private-postgres.js';
import {
  createBackendKey,
  createEmbeddedBackendKey,
  type LedgerReader,
  PROCESS_EXIT_TIMEOUT_MS,
  postgresProcessEnv,
  readEmbeddedLedger,
  readPostgresLedger,
  type ServerProcess,
  startServerProcess,
} from './support/server-processes.js';

const PAIRS = 4;
/** Owner of the payers' accounts (fixtures.ts opens them for it), and the subject of the payers' token. */
const PAYER_OWNER = 'user:test';
const PAYER_FUNDS_MINOR = 10_000n;
/** Long enough for a restart on a loaded machine; a request unanswered after this fails the test. */
const RETRY_FOR_MS = 60_000;
/** Server starts (tsx compiling, PGlite initialising) dominate; the load itself takes seconds. */
const TEST_TIMEOUT_MS = 150_000;

// Whatever a test started is stopped after it, even when it failed half-way.
const cleanUps: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanUp of cleanUps.splice(0).reverse()) await cleanUp().catch(() => {});
});

function track(server: ServerProcess): ServerProcess {
  cleanUps.push(async () => server.kill());
  return server;
}

async function paymentPairs(clients: Clients): Promise<PaymentPair[]> {
  return Promise.all(
    Array.from({ length: PAIRS }, async () => ({
      payer: await fundedAccount(clients, PAYER_FUNDS_MINOR),
      payee: await openAccount(clients),
    })),
  );
}

/**
 * A server whose clients follow it across restarts (it listens on a new port each time), always with the same
 * credentials: a retry must come from the same principal, since idempotency keys are per principal.
 */
class Restartable {
  private clientsNow: Clients;
  constructor(
    public server: ServerProcess,
    private readonly env: Record<string, string>,
    private readonly credentials: Credentials,
  ) {
    this.clientsNow = clientsFor('grpc', server.url, credentials);
  }
  clients = () => this.clientsNow;
  async killAndRestart(): Promise<void> {
    await this.server.stop('SIGKILL', PROCESS_EXIT_TIMEOUT_MS);
    this.server = track(await startServerProcess(this.env));
    this.clientsNow = clientsFor('grpc', this.server.url, this.credentials);
  }
}

/** The load's answers checked against the database, and the books against their entries. */
async function expectExactlyOnce(ledger: LedgerReader, logs: PaymentRequestLog[], pairs: PaymentPair[]) {
  expect(await paymentLoadProblems(ledger, logs)).toEqual([]);
  expect(await ledger.violations()).toEqual([]);
  // Each payer paid for exactly the requests sent on its behalf (request i went to pair i mod PAIRS).
  const expected: Record<string, string> = {};
  for (const log of logs) {
    const payer = pairs[Number(/-(\d+)$/.exec(log.key)![1]) % pairs.length]!.payer;
    expected[payer] = String(BigInt(expected[payer] ?? '0') + LOAD_AMOUNT_MINOR);
  }
  const paid = await ledger.rows<{ payer: string; total: string }>(
    sql`select payer_account_id as payer, sum(amount_minor)::text as total
      from payments where starts_with(description, 'load-') group by payer_account_id`,
  );
  expect(Object.fromEntries(paid.map((row) => [row.payer, row.total]))).toEqual(expected);
}

/**
 * Some requests failed (the fault hit the load), and every failure said so in a way clients retry: an
 * INTERNAL would claim nothing happened, yet a commit whose answer was lost did happen. No internals either.
 */
function expectRetryableFailures(logs: PaymentRequestLog[]): void {
  expect(logs.filter((log) => !log.acknowledgedFirstTime).length).toBeGreaterThan(0);
  const failures = logs.flatMap((log) => log.failures);
  expect(failures.filter((failure) => !RETRY_CODES.has(failure.code))).toEqual([]);
  expect(failures.filter((failure) => /select|insert|update|postgres|\bat \/|\.ts:/i.test(failure.message))).toEqual(
    [],
  );
}

/** The load, started in the background: `reached(n)` resolves once n requests are answered, `done` at the end. */
function startLoad(service: Restartable, pairs: PaymentPair[], total: number, concurrency: number) {
  let answered = 0;
  const done = runPaymentLoad({
    clients: service.clients,
    pairs,
    total,
    concurrency,
    retryForMs: RETRY_FOR_MS,
    onAnswered: (count) => {
      answered = count;
    },
  });
  done.catch(() => {}); // awaited by the test
  return {
    done,
    reached: (target: number) =>
      waitUntil(() => answered >= target, `${target} of ${total} payments answered`, RETRY_FOR_MS),
  };
}

it(
  'SIGKILL of the server mid-load: after a restart, every request made exactly one payment',
  async () => {
    const database: TestDatabase = await createTestDatabase();
    cleanUps.push(() => database.drop());
    const env = postgresProcessEnv(database.url);
    const server = track(await startServerProcess(env));
    const credentials = { apiKey: await createBackendKey(database.url) };
    const service = new Restartable(server, env, credentials);
    const pairs = await paymentPairs(service.clients());

    const load = startLoad(service, pairs, 200, 8);
    await load.reached(60);
    await service.killAndRestart();
    const logs = await load.done;

    // The kill hit requests in flight (eight were at every moment), and they were retried to an answer.
    expectRetryableFailures(logs);
    const ledger = readPostgresLedger(database.url);
    try {
      await expectExactlyOnce(ledger, logs, pairs);
    } finally {
      await ledger.close();
    }
    expect(await service.server.stop('SIGTERM', PROCESS_EXIT_TIMEOUT_MS)).toBe(0);
  },
  TEST_TIMEOUT_MS,
);

it(
  'PostgreSQL restarted fast, then immediately, mid-load: the server recovers and nothing is lost or doubled',
  async () => {
    const cluster: PrivatePostgres = await startPrivatePostgres();
    cleanUps.push(() => cluster.destroy());
    const databaseUrl = await cluster.createDatabase('ledger');
    const env = postgresProcessEnv(databaseUrl);
    const server = track(await startServerProcess(env));
    const backend = clientsFor('grpc', server.url, { apiKey: await createBackendKey(databaseUrl) });
    const pairs = await paymentPairs(backend);
    // The payers' owner pays, with a token: authenticating it needs no database, so every failure below is
    // the handler's own answer to the database going away.
    const service = new Restartable(server, env, { token: await signToken(PAYER_OWNER) });

    const load = startLoad(service, pairs, 200, 8);
    await load.reached(40);
    await cluster.restart('fast');
    await load.reached(110);
    await cluster.restart('immediate');
    const logs = await load.done;

    expectRetryableFailures(logs);
    // The same process served throughout: it recovered by itself.
    expect(service.server.child.exitCode).toBeNull();
    const ledger = readPostgresLedger(databaseUrl);
    try {
      await expectExactlyOnce(ledger, logs, pairs);
      // The outbox publisher took its leadership back after losing its session, and published everything.
      await waitUntil(
        async () => {
          const { status, body } = await getJson(`${service.server.url}/readyz`);
          const unpublished = await ledger.rows(sql`select 1 from outbox_events where published_at is null limit 1`);
          return (
            status === 200 &&
            (body as { outbox?: { role?: string } }).outbox?.role === 'leader' &&
            unpublished.length === 0
          );
        },
        'the outbox leading again with nothing left unpublished',
        RETRY_FOR_MS,
      );
    } finally {
      await ledger.close();
    }
    // And it still shuts down cleanly: nothing it reopened after the restarts holds it up.
    expect(await service.server.stop('SIGTERM', PROCESS_EXIT_TIMEOUT_MS)).toBe(0);
  },
  TEST_TIMEOUT_MS,
);

it(
  'embedded DATA_DIR: SIGKILL mid-load, restart on the same directory, every request made exactly one payment',
  async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ledger-crash-'));
    cleanUps.push(() => rm(dataDir, { recursive: true, force: true }));
    // Not the demo banner's backend key: each start replaces it, and a retry under a new key is another
    // principal, whose idempotency keys are its own (the retry would pay again).
    const apiKey = await createEmbeddedBackendKey(dataDir);
    const env = { DATA_DIR: dataDir, SEED_DEMO_DATA: 'false', RATE_LIMIT_ENABLED: 'false', SHUTDOWN_GRACE_MS: '2000' };
    const service = new Restartable(track(await startServerProcess(env)), env, { apiKey });
    const pairs = await paymentPairs(service.clients());

    const load = startLoad(service, pairs, 120, 6);
    await load.reached(40);
    await service.killAndRestart();
    const logs = await load.done;
    expectRetryableFailures(logs);

    // Stopped cleanly, so that the test may open the directory itself.
    expect(await service.server.stop('SIGTERM', PROCESS_EXIT_TIMEOUT_MS)).toBe(0);
    const ledger = await readEmbeddedLedger(dataDir);
    try {
      await expectExactlyOnce(ledger, logs, pairs);
    } finally {
      await ledger.close();
    }
  },
  TEST_TIMEOUT_MS,
);
