/** Races that must never create, lose or double-count money. */
import { Code, ConnectError } from '@connectrpc/connect';
import { expect, it } from 'vitest';
import { PaymentStatus } from '../gen/payment/v1/payment_pb.js';
import { clientsFor } from './support/clients.js';
import { availableOf, fundedAccount, key, openAccount } from './support/fixtures.js';
import { ledgerViolations } from './support/ledger-invariants.js';
import { serverForFile } from './support/server.js';

const server = serverForFile();

it('200 concurrent payments of 1 from a payer holding 50: exactly 50 complete, 150 decline', async () => {
  const clients = clientsFor('grpc', server.url);
  const payer = await fundedAccount(clients, 50n);
  const payees = await Promise.all(Array.from({ length: 4 }, () => openAccount(clients)));
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, index) =>
      clients.payments.authorizePayment({
        idempotencyKey: key(),
        payerAccountId: payer,
        payeeAccountId: payees[index % payees.length]!,
        amount: { amountMinor: 1n, currency: 'USD' },
      }),
    ),
  );
  const statuses = results.map((result) => result.payment?.status);
  expect(statuses.filter((status) => status === PaymentStatus.COMPLETED)).toHaveLength(50);
  expect(statuses.filter((status) => status === PaymentStatus.DECLINED)).toHaveLength(150);
  expect(await availableOf(clients, payer)).toBe(0n);
  const received = await Promise.all(payees.map((payee) => availableOf(clients, payee)));
  expect(received.reduce((sum, amount) => sum + amount, 0n)).toBe(50n);
  expect(await ledgerViolations(server.database)).toEqual([]);
});

it('500 concurrent A→B and B→A payments finish with no deadlock error reaching a client', async () => {
  const clients = clientsFor('grpc', server.url);
  const alice = await fundedAccount(clients, 100_000n);
  const bob = await fundedAccount(clients, 100_000n);
  const outcomes = await Promise.all(
    Array.from({ length: 500 }, (_, index) => {
      const forward = index % 2 === 0;
      return clients.payments
        .authorizePayment({
          idempotencyKey: key(),
          payerAccountId: forward ? alice : bob,
          payeeAccountId: forward ? bob : alice,
          amount: { amountMinor: BigInt(1 + (index % 7)), currency: 'USD' },
        })
        .then(
          (response) => ({ status: response.payment?.status, amount: BigInt(1 + (index % 7)), forward }),
          (error: unknown) => ({ error: ConnectError.from(error) }),
        );
    }),
  );
  const failures = outcomes.flatMap((outcome) => ('error' in outcome ? [Code[outcome.error.code]] : []));
  expect(failures).toEqual([]);
  let aliceExpected = 100_000n;
  for (const outcome of outcomes) {
    if ('error' in outcome || outcome.status !== PaymentStatus.COMPLETED) continue;
    aliceExpected += outcome.forward ? -outcome.amount : outcome.amount;
  }
  expect(await availableOf(clients, alice)).toBe(aliceExpected);
  expect((await availableOf(clients, alice)) + (await availableOf(clients, bob))).toBe(200_000n);
  expect(await ledgerViolations(server.database)).toEqual([]);
});
