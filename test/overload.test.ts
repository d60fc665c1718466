/**
 * Overload through the real server: with a tiny queue and the ledger held up by a row lock, the calls that find
 * the queue full are refused at once with UNAVAILABLE and a retry hint; nothing answers INTERNAL, and once the
 * lock is gone the queued ones complete and the books balance.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ErrorDetailSchema } from '../gen/payment/v1/errors_pb.js';
import { PaymentStatus } from '../gen/payment/v1/payment_pb.js';
import { clientsFor } from './support/clients.js';
import { fundedAccount, key, openAccount } from './support/fixtures.js';
import { ledgerViolations } from './support/ledger-invariants.js';
import { startTestServer, type TestServer } from './support/server.js';
import { deferred, within } from './support/waits.js';

const CALLS = 30;
const QUEUE = 3;

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({
    LEDGER_BATCHES_IN_FLIGHT: '1',
    LEDGER_BATCH_MAX_SIZE: '1',
    LEDGER_QUEUE_MAX_LENGTH: String(QUEUE),
    LEDGER_OVERLOAD_RETRY_AFTER_MS: '300',
  });
});
afterAll(async () => {
  await server?.stop();
});

it('refuses what does not fit the queue with UNAVAILABLE and a retry hint, never INTERNAL', async () => {
  const clients = clientsFor('grpc', server.url);
  const payer = await fundedAccount(clients, 1_000_000n);
  const payee = await openAccount(clients);

  // Holds the payer's balance row, so the one batch in flight waits and the queue stays full.
  const blocker = new pg.Client({ connectionString: server.database.url });
  await blocker.connect();
  await blocker.query('begin');
  await blocker.query('select 1 from account_balances where account_id = $1 for update', [payer]);

  let settled = 0;
  const enoughSettled = deferred();
  const calls = Array.from({ length: CALLS }, () =>
    clients.payments
      .authorizePayment({
        idempotencyKey: key('overload'),
        payerAccountId: payer,
        payeeAccountId: payee,
        amount: { amountMinor: 1n, currency: 'USD' },
      })
      .then(
        (response) => ({ status: response.payment?.status }),
        (error: unknown) => ({ error: ConnectError.from(error) }),
      )
      .finally(() => {
        // One in flight and QUEUE waiting cannot finish while the row is held; the rest must be answered.
        if (++settled === CALLS - 1 - QUEUE) enoughSettled.resolve();
      }),
  );
  try {
    await within(enoughSettled.promise, 60_000, 'refusals while the ledger is held up');
  } finally {
    await blocker.query('rollback');
    await blocker.end();
  }
  const answers = await Promise.all(calls);

  const refused = answers.flatMap((answer) => ('error' in answer ? [answer.error] : []));
  expect(refused.map((error) => error.code)).not.toContain(Code.Internal);
  const overloaded = refused.filter((error) => error.code === Code.Unavailable);
  expect(overloaded.length).toBeGreaterThan(0);
  for (const error of overloaded) {
    expect(error.findDetails(ErrorDetailSchema)[0]?.reason).toBe('LEDGER_OVERLOADED');
    expect(error.rawMessage).toMatch(/retry in about 300 ms with the same idempotency key/);
  }
  // The only other refusal a held row may cause: its lock wait timed out (also retryable).
  for (const error of refused.filter((error) => error.code !== Code.Unavailable)) {
    expect(error.code).toBe(Code.Aborted);
  }
  const completed = answers.filter((answer) => 'status' in answer && answer.status === PaymentStatus.COMPLETED);
  expect(completed.length + refused.length).toBe(CALLS);
  const [row] = await server.database.query<{ count: string }>(
    'select count(*)::text as count from payments where payer_account_id = $1',
    [payer],
  );
  expect(Number(row?.count)).toBe(completed.length);
  expect(await ledgerViolations(server.database)).toEqual([]);
});
