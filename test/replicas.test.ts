/**
 * Three server processes on one PostgreSQL database, one Redis and one Kafka-protocol broker, with clients
 * spread across them (each replica spoken to in another protocol):
 *   - the same idempotency key sent to all three at once makes one payment and three identical answers;
 *   - settlement runs and hold sweeps, running on every replica at once, never apply anything twice;
 *   - a principal's rate limit is exact across replicas (three more processes, limiter on, small bucket, on a
 *     database of their own so that they never join the outbox leadership race of the three);
 *   - exactly one replica publishes the outbox; SIGKILLed under load, another takes over, and every event of
 *     every acknowledged write reaches Kafka, in order per aggregate.
 *   - PostgreSQL restarted (immediate: a crash) under the surviving replicas: one leader again, nothing lost.
 * The three replicas start at once on an empty database, so their migrations race too. The database is a
 * private cluster started by this file (never the shared server), since the last test restarts it.
 */
import { randomUUID } from 'node:crypto';
import { toJsonString } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AuthorizePaymentResponseSchema, CaptureMode } from '../gen/payment/v1/payment_pb.js';
import { IDEMPOTENT_REPLAYED_HEADER } from '../src/api/headers.js';
import { AdvisoryLock } from '../src/db/advisory-locks.js';
import { OUTBOX_LOCK_KEY } from '../src/outbox/leadership.js';
import { HEADER } from '../src/outbox/routing.js';
import { type Clients, clientsFor, PROTOCOLS } from './support/clients.js';
import { balanceOf, fundedAccount, key, merchantAccount, openAccount } from './support/fixtures.js';
import { collectEvents, type EventCollector, type MockKafka, startMockKafka, waitUntil } from './support/kafka.js';
import { firstDeliveries, getJson, orderViolations, TOPICS } from './support/outbox.js';
import { type Failure, RETRY_CODES, untilAnswered } from './support/payment-load.js';
import { type PrivatePostgres, startPrivatePostgres } from './support/private-postgres.js';
import { REDIS_URL } from './support/rate-limit.js';
import {
  busySessions,
  createBackendKey,
  type LedgerReader,
  logTail,
  PROCESS_EXIT_TIMEOUT_MS,
  postgresProcessEnv,
  readPostgresLedger,
  type ServerProcess,
  startServerProcess,
} from './support/server-processes.js';
import { within } from './support/waits.js';

const REPLICAS = 3;
const LEADER_RETRY_MS = 300;
/** Long enough for a loaded machine; every wait is a bounded poll for a condition. */
const WAIT_MS = 30_000;
const TEST_TIMEOUT_MS = 120_000;

let kafka: MockKafka;
let events: EventCollector;
/** A cluster of this file's own, so that the last test may restart it. */
let cluster: PrivatePostgres;
let databaseUrl: string;
let ledger: LedgerReader;
let replicas: ServerProcess[] = [];
/** Clients per replica, each in another protocol; all send the same backend key. */
let clients: Clients[] = [];

beforeAll(async () => {
  kafka = await startMockKafka();
  events = await collectEvents(kafka.directBrokers, [TOPICS.accounts, TOPICS.payments]);
  cluster = await startPrivatePostgres();
  databaseUrl = await cluster.createDatabase('ledger');
  const env = postgresProcessEnv(databaseUrl, {
    KAFKA_BROKERS: kafka.brokers,
    OUTBOX_LEADER_RETRY_MS: String(LEADER_RETRY_MS),
    OUTBOX_POLL_INTERVAL_MS: '200',
    OUTBOX_RETRY_MAX_MS: '500',
    // Every replica settles and sweeps every second, so that they overlap.
    SETTLEMENT_INTERVAL_SECONDS: '1',
    HOLD_SWEEP_INTERVAL_SECONDS: '1',
    HOLD_MIN_SECONDS: '1',
  });
  const started = await Promise.allSettled(Array.from({ length: REPLICAS }, () => startServerProcess(env)));
  replicas = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const failed = started.find((result) => result.status === 'rejected');
  if (failed) throw failed.reason;
  const apiKey = await createBackendKey(databaseUrl);
  clients = replicas.map((replica, index) => clientsFor(PROTOCOLS[index % PROTOCOLS.length]!, replica.url, { apiKey }));
  ledger = readPostgresLedger(databaseUrl);
}, TEST_TIMEOUT_MS);

afterAll(async () => {
  for (const replica of replicas) replica.kill();
  await ledger?.close();
  await events?.stop();
  await kafka?.stop();
  await cluster?.destroy();
}, TEST_TIMEOUT_MS);

const alive = () => replicas.map((replica, index) => ({ replica, index })).filter(({ replica }) => isRunning(replica));
const isRunning = (replica: ServerProcess) => replica.child.exitCode === null && replica.child.signalCode === null;

/** Each /readyz gets this long: a replica that cannot answer is reported as such, not waited for. */
const READYZ_TIMEOUT_MS = 5_000;

/** A replica's outbox role from its /readyz, or what it answered instead. */
async function roleOf(replica: ServerProcess): Promise<string> {
  try {
    const { body } = await getJson(`${replica.url}/readyz`, READYZ_TIMEOUT_MS);
    const outbox = (body as { outbox?: { role?: string; error?: string } }).outbox;
    return outbox?.role ?? `unknown (${outbox?.error ?? 'no outbox in /readyz'})`;
  } catch (error) {
    return `no answer (${error instanceof Error ? error.message : String(error)})`;
  }
}

/**
 * What the replicas and the database look like now, for the message of a bounded wait that gave up: each
 * replica's outbox role (or how it ended) and its last log lines; the busy sessions and who holds which lock.
 */
async function replicaReport(): Promise<string> {
  const states = await Promise.all(
    replicas.map(async (replica, index) => {
      const state = isRunning(replica)
        ? `role ${await roleOf(replica)}`
        : `ended (${replica.child.exitCode ?? replica.child.signalCode})`;
      const tail = logTail(replica).map((line) => `    ${line}`);
      return [`replica ${index} (${replica.url}, pid ${replica.child.pid}): ${state}`, ...tail].join('\n');
    }),
  );
  const sessions = await busySessions(ledger).catch((error: Error) => [`(cannot ask: ${error.message})`]);
  const legend = `advisory ${OUTBOX_LOCK_KEY}: outbox leader, ${AdvisoryLock.settlementRun}: settlement run`;
  return [...states, `busy sessions (${legend}):`, ...sessions.map((line) => `    ${line}`)].join('\n');
}

/** Halts the write streams whose test ended without stopping them (vitest's own timeout): see afterEach. */
const unfinishedStreams = new Set<() => void>();

// A test that fails other than in a bounded wait of its own (an assertion, vitest's test timeout) still leaves
// the replicas' report in the output; a write stream it left running stops writing into the next test.
afterEach(async ({ task }) => {
  if (task.result?.state !== 'fail') return;
  for (const halt of unfinishedStreams) halt();
  unfinishedStreams.clear();
  if (task.result.errors?.some((error) => error.message?.includes('busy sessions ('))) return;
  const report = await within(replicaReport(), WAIT_MS, 'replica report').catch((error: Error) => error.message);
  console.error(`"${task.name}" failed; replicas now:\n${report}`);
}, TEST_TIMEOUT_MS);

/**
 * A bounded wait (WAIT_MS) for `condition`. If it gives up, its error says what `seen` reports (the counts or
 * roles waited on, as they were) and what the replicas and the database were doing (replicaReport).
 */
function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string,
  seen: () => string | Promise<string>,
): Promise<number> {
  return waitUntil(condition, what, WAIT_MS, async () => `seen: ${await seen()}\n${await replicaReport()}`);
}

it(
  'the same idempotency key sent to all three at once makes one payment and three identical answers',
  async () => {
    const payer = await fundedAccount(clients[0]!, 10_000n);
    const payee = await openAccount(clients[1]!);
    const rounds = 10;
    for (let round = 0; round < rounds; round++) {
      const request = {
        idempotencyKey: key('same'),
        payerAccountId: payer,
        payeeAccountId: payee,
        amount: { amountMinor: 7n, currency: 'USD' },
        description: `same-key-${round}`,
      };
      let replayed = 0;
      // Retried (same key, same replica) if a busy machine makes one wait past the lock timeout (ABORTED), as a
      // client would: the answers must still agree.
      const answers = await Promise.all(
        clients.map(async (replicaClients) => {
          const { value, failures } = await untilAnswered(
            () => replicaClients,
            WAIT_MS,
            request.idempotencyKey,
            (c) =>
              c.payments.authorizePayment(request, {
                onHeader: (headers) => {
                  if (headers.get(IDEMPOTENT_REPLAYED_HEADER) === 'true') replayed++;
                },
              }),
          );
          expect(failures.filter((failure) => !RETRY_CODES.has(failure.code))).toEqual([]);
          return value;
        }),
      );
      const bodies = answers.map((answer) => toJsonString(AuthorizePaymentResponseSchema, answer));
      expect(new Set(bodies).size, bodies.join('\n')).toBe(1);
      // One replica made the payment; the other two replayed its stored answer.
      expect(replayed).toBe(REPLICAS - 1);
    }
    const made = await ledger.rows<{ n: number }>(
      sql`select count(*)::int as n from payments where payer_account_id = ${payer} group by description`,
    );
    expect(made).toEqual(Array.from({ length: rounds }, () => ({ n: 1 })));
    expect((await balanceOf(clients[2]!, payer)).available).toBe(10_000n - BigInt(rounds) * 7n);
    expect(await ledger.violations()).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);

const PAYMENTS_PER_REPLICA = 12;
const HOLDS_PER_REPLICA = 5;

/** Payments and one-second holds to the merchants through every replica, each also settling on demand. */
async function settleWhilePaying(merchants: string[], payers: string[]): Promise<void> {
  await Promise.all(
    clients.map(async (replicaClients, index) => {
      for (let n = 0; n < PAYMENTS_PER_REPLICA; n++) {
        await replicaClients.payments.authorizePayment({
          idempotencyKey: key('settle'),
          payerAccountId: payers[index]!,
          payeeAccountId: merchants[n % merchants.length]!,
          amount: { amountMinor: BigInt(100 + n), currency: 'USD' },
        });
        if (n < HOLDS_PER_REPLICA) {
          await replicaClients.payments.authorizePayment({
            idempotencyKey: key('hold'),
            payerAccountId: payers[index]!,
            payeeAccountId: merchants[(n + 1) % merchants.length]!,
            amount: { amountMinor: 50n, currency: 'USD' },
            captureMode: CaptureMode.MANUAL,
            holdDuration: { seconds: 1n, nanos: 0 },
          });
        }
        if (n % 4 === 0) await replicaClients.settlements.runSettlement({});
      }
    }),
  );
  // All three run settlement at the same moment, once more.
  await Promise.all(clients.map((replicaClients) => replicaClients.settlements.runSettlement({})));
}

/** `id in (…)` for a list of ids. */
const inList = (ids: string[]) =>
  sql`(${sql.join(
    ids.map((id) => sql`${id}`),
    sql`, `,
  )})`;

/** Each settlement covers exactly the payments that name it, they add up to its gross, and one event each. */
async function expectSettlementsExact(merchants: string[], captured: number): Promise<void> {
  const settled = await ledger.rows<{ count: number; gross: string; covered: number; sum: string }>(sql`
    select s.payment_count as count, s.gross_minor::text as gross,
           (select count(*)::int from payments p where p.settlement_id = s.id) as covered,
           (select coalesce(sum(p.captured_minor), 0)::text from payments p where p.settlement_id = s.id) as sum
    from settlements s where s.account_id in ${inList(merchants)}`);
  expect(settled.reduce((total, row) => total + row.count, 0)).toBe(captured);
  for (const row of settled) {
    expect({ covered: row.covered, sum: row.sum }).toEqual({ covered: row.count, sum: row.gross });
  }
  const events = await ledger.rows<{ n: number }>(sql`
    select count(*)::int as n from outbox_events
    where event_type = 'SettlementCompleted' and aggregate_id in ${inList(merchants)}`);
  expect(events[0]!.n).toBe(settled.length);
}

it(
  'settlement runs and hold sweeps on every replica at once apply each payment and each expiry once',
  async () => {
    const merchants = await Promise.all(clients.map((replicaClients) => merchantAccount(replicaClients)));
    const payers = await Promise.all(clients.map((replicaClients) => fundedAccount(replicaClients, 100_000n)));
    await settleWhilePaying(merchants, payers);

    const ours = sql`payee_account_id in ${inList(merchants)}`;
    const count = async (where: ReturnType<typeof sql>) =>
      (await ledger.rows<{ n: number }>(sql`select count(*)::int as n from payments where ${ours} and ${where}`))[0]!.n;
    // Our payments per status and settlement state, and the holds still open: what a wait that gives up saw.
    const tally = async () => {
      const rows = await ledger.rows<{ status: string; awaiting: boolean; settled: boolean; n: number }>(sql`
        select status, awaits_settlement as awaiting, settlement_id is not null as settled, count(*)::int as n
        from payments where ${ours} group by 1, 2, 3 order by 1, 2, 3`);
      const held = await ledger.rows<{ id: string; expires: string; now: string }>(sql`
        select id, expires_at::text as expires, clock_timestamp()::text as now
        from payments where ${ours} and status = 'AUTHORIZED' order by expires_at limit 5`);
      return `payments ${JSON.stringify(rows)}; still held ${JSON.stringify(held)}`;
    };
    // The replicas' own schedules expire the holds and settle whatever the on-demand runs left.
    await waitFor(
      async () =>
        (await count(sql`status = 'AUTHORIZED'`)) === 0 &&
        (await count(sql`awaits_settlement and settlement_id is null`)) === 0,
      'every hold expired and every payment settled',
      tally,
    );

    expect(await ledger.violations()).toEqual([]);
    const captured = REPLICAS * PAYMENTS_PER_REPLICA;
    expect(await count(sql`status = 'COMPLETED' and settlement_id is not null`)).toBe(captured);
    expect(await count(sql`status = 'EXPIRED'`)).toBe(REPLICAS * HOLDS_PER_REPLICA);
    await expectSettlementsExact(merchants, captured);
    // One expiry event per hold.
    const expiries = await ledger.rows<{ n: number }>(sql`
      select count(*)::int as n from outbox_events e join payments p on p.id = e.aggregate_id
      where e.event_type = 'PaymentExpired' and ${ours} group by e.aggregate_id`);
    expect(expiries).toEqual(Array.from({ length: REPLICAS * HOLDS_PER_REPLICA }, () => ({ n: 1 })));
    // The merchants hold exactly what was captured, all of it settled to available.
    const balances = await Promise.all(merchants.map((merchant) => balanceOf(clients[0]!, merchant)));
    expect(balances.map((balance) => balance.pending)).toEqual(merchants.map(() => 0n));
    const paidPerReplica = Array.from({ length: PAYMENTS_PER_REPLICA }, (_, n) => BigInt(100 + n));
    expect(balances.reduce((total, balance) => total + balance.available, 0n)).toBe(
      BigInt(REPLICAS) * paidPerReplica.reduce((a, b) => a + b),
    );
  },
  TEST_TIMEOUT_MS,
);

describe('rate limit across replicas', () => {
  const capacity = 12;
  const prefix = `test-replicas-ratelimit:${randomUUID()}:`;
  let limited: ServerProcess[] = [];
  let redis: Redis;
  /**
   * A database of their own: these processes run the outbox publisher (to the log: no Kafka) and the jobs as
   * well, and on the replicas' database they would compete for the outbox leadership. Should the leader
   * falter while they run, one of them would lead and mark events published that never reach Kafka, failing
   * a later test that waits for every event.
   */
  let limitedDatabaseUrl: string;
  let limitedLedger: LedgerReader;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    limitedDatabaseUrl = await cluster.createDatabase('ratelimit');
    limitedLedger = readPostgresLedger(limitedDatabaseUrl);
    const env = postgresProcessEnv(limitedDatabaseUrl, {
      RATE_LIMIT_ENABLED: 'true',
      REDIS_URL,
      RATE_LIMIT_KEY_PREFIX: prefix,
      RATE_LIMIT_WRITE_CAPACITY: String(capacity),
      // Never refills: the count is exact whatever the timing.
      RATE_LIMIT_WRITE_REFILL_PER_SECOND: '0',
      // A busy machine must not push decisions off Redis into per-process memory.
      RATE_LIMIT_REDIS_TIMEOUT_MS: '2000',
    });
    const started = await Promise.allSettled(Array.from({ length: REPLICAS }, () => startServerProcess(env)));
    limited = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    // Gone before the next test starts, not merely signalled.
    await Promise.all(limited.map((replica) => replica.stop('SIGKILL', PROCESS_EXIT_TIMEOUT_MS).catch(() => {})));
    await limitedLedger?.close();
    const keys = (await redis?.keys(`${prefix}*`)) ?? [];
    if (keys.length > 0) await redis.del(...keys);
    redis?.disconnect();
  });

  it(
    'a principal gets exactly its capacity of writes, spread over three replicas',
    async () => {
      // A principal of its own: a fresh key, valid on every replica.
      const apiKey = await createBackendKey(limitedDatabaseUrl);
      const ownerRef = `user:limited-${randomUUID()}`;
      const perReplica = limited.map((replica, index) =>
        clientsFor(PROTOCOLS[index % PROTOCOLS.length]!, replica.url, { apiKey }),
      );
      const attempts = capacity * 3;
      const results = await Promise.allSettled(
        Array.from({ length: attempts }, (_, n) =>
          perReplica[n % REPLICAS]!.accounts.createAccount({ idempotencyKey: key('rl'), ownerRef, currency: 'USD' }),
        ),
      );
      const codes = results.map((result) =>
        result.status === 'fulfilled' ? 'OK' : Code[ConnectError.from(result.reason).code],
      );
      expect(codes.filter((code) => code === 'OK').length).toBe(capacity);
      expect(codes.filter((code) => code !== 'OK')).toEqual(
        Array.from({ length: attempts - capacity }, () => Code[Code.ResourceExhausted]),
      );
      const created = await limitedLedger.rows<{ n: number }>(
        sql`select count(*)::int as n from accounts where owner_ref = ${ownerRef}`,
      );
      expect(created[0]!.n).toBe(capacity);
    },
    TEST_TIMEOUT_MS,
  );
});

/** Each live replica's outbox role, from its /readyz. */
async function roles(): Promise<{ index: number; role: string }[]> {
  return Promise.all(alive().map(async ({ replica, index }) => ({ index, role: await roleOf(replica) })));
}

/** pg_locks is cluster-wide: only this file's database counts. */
async function lockHolders(): Promise<number> {
  const rows = await ledger.rows<{ n: number }>(sql`
    select count(*)::int as n from pg_locks where locktype = 'advisory' and objid = ${OUTBOX_LOCK_KEY} and granted
      and database = (select oid from pg_database where datname = current_database())`);
  return rows[0]!.n;
}

async function oneLeader(): Promise<number> {
  let leader = -1;
  let last = 'no answer yet';
  await waitFor(
    async () => {
      const now = await roles();
      const holders = await lockHolders();
      last = `roles ${JSON.stringify(now)}, sessions holding the outbox lock: ${holders}`;
      const leaders = now.filter(({ role }) => role === 'leader');
      const standbys = now.filter(({ role }) => role === 'standby');
      if (leaders.length !== 1 || standbys.length !== now.length - 1 || holders !== 1) return false;
      leader = leaders[0]!.index;
      return true;
    },
    'exactly one outbox leader, the others standing by',
    () => last,
  );
  return leader;
}

/**
 * Writes through the live replicas until stopped: per worker a deposit (an account event), then a hold and
 * its capture (two events of one payment), each retried under its key on the next replica when it fails.
 */
function writeStream(accounts: { payer: string; payee: string }[], maxRounds: number) {
  let next = 0;
  const anyReplica = () => {
    const live = alive();
    return clients[live[next++ % live.length]!.index]!;
  };
  const acknowledgedPayments: string[] = [];
  /** Deposits asked for per account (each answered before the next), besides its opening deposit. */
  const depositsMade = new Map<string, number>();
  const failures: Failure[] = [];
  let rounds = 0;
  let stopping = false;
  const retry = <T>(what: string, call: (replicaClients: Clients) => Promise<T>) =>
    untilAnswered(anyReplica, WAIT_MS, what, call).then((answered) => {
      failures.push(...answered.failures);
      return answered.value;
    });
  const worker = async ({ payer, payee }: { payer: string; payee: string }) => {
    for (let round = 0; round < maxRounds && !stopping; round++) {
      const depositKey = key('deposit');
      depositsMade.set(payer, (depositsMade.get(payer) ?? 0) + 1);
      const amount = { amountMinor: 3n, currency: 'USD' };
      await retry(depositKey, (c) => c.accounts.depositFunds({ idempotencyKey: depositKey, accountId: payer, amount }));
      const holdKey = key('hold');
      const hold = await retry(holdKey, (c) =>
        c.payments.authorizePayment({
          idempotencyKey: holdKey,
          payerAccountId: payer,
          payeeAccountId: payee,
          amount: { amountMinor: 2n, currency: 'USD' },
          captureMode: CaptureMode.MANUAL,
        }),
      );
      const paymentId = hold.payment!.id;
      acknowledgedPayments.push(paymentId);
      const captureKey = key('capture');
      await retry(captureKey, (c) => c.payments.capturePayment({ idempotencyKey: captureKey, paymentId }));
      rounds++;
    }
  };
  const done = Promise.all(accounts.map(worker));
  done.catch(() => {}); // surfaced by stop()
  const halt = () => {
    stopping = true;
  };
  unfinishedStreams.add(halt);
  return {
    acknowledgedPayments,
    depositsMade,
    failures,
    rounds: () => rounds,
    /** Rounds done and the latest failed attempts: what a wait on the stream saw. */
    progress: () => `${rounds} rounds, latest failures ${JSON.stringify(failures.slice(-5))}`,
    stop: async () => {
      halt();
      unfinishedStreams.delete(halt);
      await done;
    },
  };
}

/** Every event the database holds reaches Kafka (de-duplicated), in order per aggregate, and is marked. */
async function expectOutboxDelivered(): Promise<{ aggregate_id: string }[]> {
  const rows = await ledger.rows<{ event_id: string; aggregate_id: string }>(
    sql`select event_id, aggregate_id from outbox_events`,
  );
  const expected = new Set(rows.map((row) => row.event_id));
  const delivered = () => new Set(events.messages.map((message) => message.headers[HEADER.eventId]));
  const undelivered = async () => {
    const seen = delivered();
    const missing = [...expected].filter((eventId) => !seen.has(eventId));
    const rows = await ledger.rows(sql`
      select event_id, published_at::text, attempts, last_error from outbox_events
      where event_id in ${inList(missing.slice(0, 5).concat('-'))}`);
    return `${missing.length} of ${expected.size} not received, e.g. ${JSON.stringify(rows)}`;
  };
  await events.waitFor(
    () => [...expected].every((eventId) => delivered().has(eventId)),
    `all ${expected.size} outbox events delivered`,
    WAIT_MS,
    async () => `seen: ${await undelivered()}\n${await replicaReport()}`,
  );
  const firstOnes = firstDeliveries(events.messages).map((message) => message.headers[HEADER.eventId]);
  expect(new Set(firstOnes)).toEqual(expected);
  expect(orderViolations(events.messages)).toEqual([]);
  const unpublished = () =>
    ledger.rows(sql`select id::text, event_id, attempts from outbox_events where published_at is null`);
  await waitFor(
    async () => (await unpublished()).length === 0,
    'every outbox row marked published',
    async () => `unpublished ${JSON.stringify((await unpublished()).slice(0, 5))}`,
  );
  return rows;
}

/**
 * Everything the stream wrote reached Kafka in order (expectOutboxDelivered); every acknowledged payment has
 * its two events (authorized, captured); each deposit, however often retried, was made once.
 */
async function expectStreamDeliveredOnce(stream: ReturnType<typeof writeStream>): Promise<void> {
  const rows = await expectOutboxDelivered();
  const perPayment = new Map<string, number>();
  for (const row of rows) perPayment.set(row.aggregate_id, (perPayment.get(row.aggregate_id) ?? 0) + 1);
  expect(stream.acknowledgedPayments.filter((id) => perPayment.get(id) !== 2)).toEqual([]);
  const deposits = await ledger.rows<{ account: string; n: number }>(sql`
    select account_id as account, count(*)::int - 1 as n from deposits
    where account_id in ${inList([...stream.depositsMade.keys()])} group by account_id`);
  expect(Object.fromEntries(deposits.map((row) => [row.account, row.n]))).toEqual(
    Object.fromEntries(stream.depositsMade),
  );
}

/** Payers with funds and payees, opened through the live replicas. */
function streamAccounts(count: number): Promise<{ payer: string; payee: string }[]> {
  const live = alive();
  const via = (n: number) => clients[live[n % live.length]!.index]!;
  return Promise.all(
    Array.from({ length: count }, async (_, index) => ({
      payer: await fundedAccount(via(index), 1_000_000n),
      payee: await openAccount(via(index + 1)),
    })),
  );
}

it(
  'exactly one outbox leader; SIGKILLed under load, another takes over, nothing lost, order kept',
  async () => {
    const leader = await oneLeader();
    const stream = writeStream(await streamAccounts(4), 40);
    try {
      await waitFor(() => stream.rounds() >= 12, 'writes flowing before the kill', stream.progress);
      await replicas[leader]!.stop('SIGKILL', PROCESS_EXIT_TIMEOUT_MS);
      expect(await oneLeader()).not.toBe(leader);
      const roundsAtTakeover = stream.rounds();
      await waitFor(
        () => stream.rounds() >= roundsAtTakeover + 12,
        'writes flowing after the takeover',
        stream.progress,
      );
    } finally {
      await stream.stop();
    }

    await expectStreamDeliveredOnce(stream);
    // What the kill cut off failed in ways clients retry (refused, reset, cancelled), never INTERNAL.
    expect(stream.failures.filter((failure) => !RETRY_CODES.has(failure.code))).toEqual([]);
    expect(await ledger.violations()).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);

it(
  'PostgreSQL restarted (immediate) under the replicas: one outbox leader again, nothing lost, order kept',
  async () => {
    await oneLeader();
    const stream = writeStream(await streamAccounts(4), 40);
    try {
      await waitFor(() => stream.rounds() >= 8, 'writes flowing before the restart', stream.progress);
      await cluster.restart('immediate');
      const roundsAtRestart = stream.rounds();
      await waitFor(() => stream.rounds() >= roundsAtRestart + 8, 'writes flowing after the restart', stream.progress);
      // Every replica lost its sessions, the leader its lock: exactly one takes it again.
      await oneLeader();
    } finally {
      await stream.stop();
    }
    // The restart hit the stream (its requests failed and were retried), in ways clients retry, never INTERNAL:
    // in handlers and in the authentication hook before them alike.
    expect(stream.failures.length).toBeGreaterThan(0);
    expect(stream.failures.filter((failure) => !RETRY_CODES.has(failure.code))).toEqual([]);
    await expectStreamDeliveredOnce(stream);
    expect(await ledger.violations()).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);
