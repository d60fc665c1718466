/**
 * Races on the payment lifecycle: exactly one of capture and void wins; concurrent partial refunds never
 * exceed the captured amount; a capture racing the expiry sweeper; concurrent settlement runs.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { PaymentStatus } from '../gen/payment/v1/payment_pb.js';
import { type Database, openPostgres } from '../src/db/client.js';
import { maxPaymentMinorFor } from '../src/domain/currency.js';
import { Ledger } from '../src/ledger/apply.js';
import { sweepExpiredHolds } from '../src/ledger/hold-sweeper.js';
import { type Clients, clientsFor } from './support/clients.js';
import { authorizeHold, balanceOf, fundedAccount, key, merchantAccount, openAccount } from './support/fixtures.js';
import { ledgerViolations } from './support/ledger-invariants.js';
import { startTestServer, type TestServer } from './support/server.js';

const DAY_MS = 86_400_000;
let server: TestServer;
let clients: Clients;
let database: Database;

/** A ledger on the test database whose clock is shifted, to act "later" or "earlier" without waiting. */
function ledgerAt(offsetMs: number): Ledger {
  return new Ledger(database.db, {
    idempotencyRetentionMs: DAY_MS,
    maxPaymentMinor: maxPaymentMinorFor(1_000_000n),
    now: () => new Date(Date.now() + offsetMs),
  });
}

beforeAll(async () => {
  // The sweeper stays out of the way: a test here expires a hold itself and races it against a capture.
  server = await startTestServer({ SETTLEMENT_INTERVAL_SECONDS: '0', HOLD_SWEEP_INTERVAL_SECONDS: '86400' });
  clients = clientsFor('grpc', server.url);
  database = openPostgres({ url: server.database.url, poolSize: 4 });
});
afterAll(async () => {
  await database?.close();
  await server?.stop();
});
afterEach(async () => {
  expect(await ledgerViolations(server.database)).toEqual([]);
});

const codeOf = (outcome: PromiseSettledResult<unknown>) =>
  outcome.status === 'fulfilled' ? 'OK' : Code[ConnectError.from(outcome.reason).code];

it('capture vs void on the same hold: exactly one wins, 20 times over', async () => {
  const payer = await fundedAccount(clients, 100_000n);
  const payee = await openAccount(clients);
  const holds = await Promise.all(Array.from({ length: 20 }, () => authorizeHold(clients, payer, payee, 1_000n)));
  const outcomes = await Promise.all(
    holds.map((paymentId) =>
      Promise.allSettled([
        clients.payments.capturePayment({ idempotencyKey: key(), paymentId }),
        clients.payments.voidPayment({ idempotencyKey: key(), paymentId }),
      ]),
    ),
  );
  let captured = 0n;
  for (const [index, [capture, voided]] of outcomes.entries()) {
    const codes = [codeOf(capture!), codeOf(voided!)].sort();
    expect(codes).toEqual(['FailedPrecondition', 'OK']);
    const { payment } = await clients.payments.getPayment({ paymentId: holds[index]! });
    expect(payment?.status).toBe(capture!.status === 'fulfilled' ? PaymentStatus.COMPLETED : PaymentStatus.VOIDED);
    if (capture!.status === 'fulfilled') captured += 1_000n;
  }
  expect(await balanceOf(clients, payer)).toMatchObject({ held: 0n, available: 100_000n - captured });
  expect(await balanceOf(clients, payee)).toMatchObject({ available: captured });
});

it('20 concurrent partial refunds that together exceed the captured amount never refund more than it', async () => {
  const payer = await fundedAccount(clients, 5_000n);
  const payee = await fundedAccount(clients, 0n);
  const { payment } = await clients.payments.authorizePayment({
    idempotencyKey: key(),
    payerAccountId: payer,
    payeeAccountId: payee,
    amount: { amountMinor: 1_000n, currency: 'USD' },
  });
  const outcomes = await Promise.allSettled(
    Array.from({ length: 20 }, () =>
      clients.payments.refundPayment({
        idempotencyKey: key(),
        paymentId: payment!.id,
        amount: { amountMinor: 150n, currency: 'USD' },
      }),
    ),
  );
  const succeeded = outcomes.filter((outcome) => outcome.status === 'fulfilled');
  expect(succeeded).toHaveLength(6);
  expect(outcomes.filter((outcome) => codeOf(outcome) === 'FailedPrecondition')).toHaveLength(14);
  const after = (await clients.payments.getPayment({ paymentId: payment!.id })).payment;
  expect(after?.refundedAmount?.amountMinor).toBe(900n);
  expect(after?.status).toBe(PaymentStatus.PARTIALLY_REFUNDED);
  expect(await balanceOf(clients, payer)).toMatchObject({ available: 4_900n });
});

it('an expired hold cannot be captured or voided even before the sweeper runs; the sweeper then releases it', async () => {
  const payer = await fundedAccount(clients, 1_000n);
  const payee = await openAccount(clients);
  // Authorized eight days ago with the default seven-day hold: expired now, and nobody has swept it.
  const [result] = await ledgerAt(-8 * DAY_MS).apply([
    {
      kind: 'authorizePayment',
      principal: 'test',
      idempotencyKey: key(),
      payerAccountId: payer,
      payeeAccountId: payee,
      amountMinor: 400n,
      currency: 'USD',
      description: '',
      captureMode: 'MANUAL',
      holdDurationMs: 7 * DAY_MS,
    },
  ]);
  if (!result?.ok || result.outcome.kind !== 'payment') throw new Error('hold was not placed');
  const paymentId = result.outcome.payment.id;
  // One after the other, each started only when awaited: a second call already failing while the first is
  // awaited would be an unhandled rejection.
  for (const call of [
    () => clients.payments.capturePayment({ idempotencyKey: key(), paymentId }),
    () => clients.payments.voidPayment({ idempotencyKey: key(), paymentId }),
  ]) {
    const error = await call().then(
      () => undefined,
      (caught: unknown) => ConnectError.from(caught),
    );
    expect(error?.code).toBe(Code.FailedPrecondition);
    expect(error?.rawMessage).toMatch(/expired/);
  }
  expect(await balanceOf(clients, payer)).toMatchObject({ available: 600n, held: 400n });

  expect(await sweepExpiredHolds(database.db, server.service.ledger)).toBeGreaterThanOrEqual(1);
  expect((await clients.payments.getPayment({ paymentId })).payment?.status).toBe(PaymentStatus.EXPIRED);
  expect(await balanceOf(clients, payer)).toMatchObject({ available: 1_000n, held: 0n });
  // A second sweep finds nothing left to do.
  expect(await sweepExpiredHolds(database.db, server.service.ledger)).toBe(0);
});

it('a capture racing the expiry sweeper: exactly one of them takes the hold, 20 times over', async () => {
  const payer = await fundedAccount(clients, 100_000n);
  const payee = await openAccount(clients);
  const holds = await Promise.all(Array.from({ length: 20 }, () => authorizeHold(clients, payer, payee, 100n)));
  // The sweeper runs as if eight days had passed; the captures run now.
  const [captures] = await Promise.all([
    Promise.allSettled(holds.map((paymentId) => clients.payments.capturePayment({ idempotencyKey: key(), paymentId }))),
    sweepExpiredHolds(database.db, ledgerAt(8 * DAY_MS), new Date(Date.now() + 8 * DAY_MS)),
  ]);
  let completed = 0;
  for (const [index, capture] of captures.entries()) {
    const { payment } = await clients.payments.getPayment({ paymentId: holds[index]! });
    if (capture.status === 'fulfilled') {
      completed++;
      expect(payment?.status).toBe(PaymentStatus.COMPLETED);
    } else {
      expect(codeOf(capture)).toBe('FailedPrecondition');
      expect(payment?.status).toBe(PaymentStatus.EXPIRED);
    }
  }
  expect(await balanceOf(clients, payer)).toMatchObject({ held: 0n, available: 100_000n - BigInt(completed) * 100n });
});

it('two concurrent settlement runs settle every payment exactly once', async () => {
  const payer = await fundedAccount(clients, 1_000_000n);
  const merchants = await Promise.all(Array.from({ length: 3 }, () => merchantAccount(clients)));
  const paid = new Map<string, bigint>(merchants.map((merchant) => [merchant, 0n]));
  await Promise.all(
    Array.from({ length: 30 }, async (_, index) => {
      const merchant = merchants[index % merchants.length]!;
      const amountMinor = BigInt(100 + index);
      await clients.payments.authorizePayment({
        idempotencyKey: key(),
        payerAccountId: payer,
        payeeAccountId: merchant,
        amount: { amountMinor, currency: 'USD' },
      });
      paid.set(merchant, paid.get(merchant)! + amountMinor);
    }),
  );
  // Two on-demand runs and the scheduler's own run, all at once.
  await Promise.all([
    clients.settlements.runSettlement({}),
    clients.settlements.runSettlement({}),
    server.service.jobs.settlement.runNow(),
  ]);
  const listed = await Promise.all(
    merchants.map((accountId) => clients.settlements.listSettlements({ accountId, pageSize: 100 })),
  );
  const settlements = listed.flatMap((page) => page.settlements);
  const covered = settlements.flatMap((settlement) => settlement.paymentIds);
  expect(new Set(covered).size).toBe(covered.length);
  expect(covered).toHaveLength(30);
  for (const merchant of merchants) {
    const net = settlements
      .filter((settlement) => settlement.accountId === merchant)
      .reduce((sum, settlement) => sum + settlement.net!.amountMinor, 0n);
    expect(net).toBe(paid.get(merchant));
    expect(await balanceOf(clients, merchant)).toMatchObject({ available: paid.get(merchant), pending: 0n });
  }
});
