/**
 * A money command racing a status change of one of its accounts is planned against the status the change
 * committed, not the one before it. The race is made deterministic: a transaction of the test's own holds the
 * payee's balance row, the freeze queues behind it on one replica, then the money command on another replica
 * (whose batcher does not know of the freeze) queues behind the freeze; the test then lets them go in order.
 * Before the fix, the command re-read the balance once it got the lock but kept the account row of its first
 * snapshot, so it paid into an account frozen a moment earlier.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DeclineReason, PaymentStatus } from '../gen/payment/v1/payment_pb.js';
import type { RunningService } from '../src/server/start.js';
import { type Clients, clientsFor } from './support/clients.js';
import { authorizeHold, fundedAccount, key, openAccount } from './support/fixtures.js';
import { waitUntil } from './support/kafka.js';
import { ledgerViolations } from './support/ledger-invariants.js';
import { startTestReplica, startTestServer, type TestServer } from './support/server.js';

let server: TestServer;
let replica: RunningService;
let viaServer: Clients;
let viaReplica: Clients;
beforeAll(async () => {
  server = await startTestServer();
  replica = await startTestReplica(server.database.url);
  viaServer = clientsFor('grpc', server.url);
  viaReplica = clientsFor('grpc', replica.url);
});
afterAll(async () => {
  await replica?.close();
  await server?.stop();
});

/** Statements of this test's database waiting for a lock, among those that lock balance rows. */
async function waitingForLocks(): Promise<number> {
  const [row] = await server.database.query<{ waiting: string }>(
    `select count(*) as waiting from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock' and query like '%account_balances%'`,
  );
  return Number(row!.waiting);
}

/**
 * Runs `freeze` and then `command`, each started only once the one before waits on `accountId`'s balance row
 * (held by the test), then releases the row; returns the command's outcome.
 */
async function behindAFreeze<T>(accountId: string, command: () => Promise<T>): Promise<PromiseSettledResult<T>> {
  const holder = new pg.Client({ connectionString: server.database.url });
  await holder.connect();
  try {
    await holder.query('begin');
    await holder.query('select 1 from account_balances where account_id = $1 for update', [accountId]);
    const freeze = viaServer.accounts.freezeAccount({ idempotencyKey: key('freeze'), accountId });
    await waitUntil(async () => (await waitingForLocks()) === 1, 'the freeze waits for the balance row');
    const outcome = Promise.allSettled([command()]);
    await waitUntil(async () => (await waitingForLocks()) === 2, 'the command waits behind the freeze');
    await holder.query('commit');
    expect((await freeze).account?.id).toBe(accountId);
    return (await outcome)[0]!;
  } finally {
    await holder.end();
  }
}

it('a payment to a payee frozen while it waited for the lock is declined', async () => {
  const payer = await fundedAccount(viaServer, 1_000n);
  const payee = await openAccount(viaServer);
  const outcome = await behindAFreeze(payee, () =>
    viaReplica.payments.authorizePayment({
      idempotencyKey: key('pay'),
      payerAccountId: payer,
      payeeAccountId: payee,
      amount: { amountMinor: 100n, currency: 'USD' },
    }),
  );
  if (outcome.status !== 'fulfilled') throw outcome.reason;
  const { payment } = outcome.value;
  expect({ status: payment?.status, reason: payment?.declineReason }).toEqual({
    status: PaymentStatus.DECLINED,
    reason: DeclineReason.PAYEE_ACCOUNT_INACTIVE,
  });
  expect(await ledgerViolations(server.database)).toEqual([]);
});

it('a capture into a payee frozen while it waited for the lock is refused', async () => {
  const payer = await fundedAccount(viaServer, 1_000n);
  const payee = await openAccount(viaServer);
  const hold = await authorizeHold(viaServer, payer, payee, 300n);
  const outcome = await behindAFreeze(payee, () =>
    viaReplica.payments.capturePayment({ idempotencyKey: key('capture'), paymentId: hold }),
  );
  if (outcome.status !== 'rejected') throw new Error(`the capture went through: ${outcome.value.payment?.status}`);
  const error = ConnectError.from(outcome.reason);
  expect({ code: Code[error.code], message: error.rawMessage }).toEqual({
    code: 'FailedPrecondition',
    message: expect.stringContaining('frozen'),
  });
  const { payment } = await viaServer.payments.getPayment({ paymentId: hold });
  expect(payment?.status).toBe(PaymentStatus.AUTHORIZED);
  expect(await ledgerViolations(server.database)).toEqual([]);
});
