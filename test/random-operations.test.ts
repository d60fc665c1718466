/**
 * Seeded random operations (fast-check prints the seed and the shrunk case on failure): hundreds of mixed
 * deposits, payments, holds, captures, voids, refunds and settlement runs across a few accounts, run
 * concurrently in waves. Afterwards the ledger check must pass and every balance must equal what an
 * in-memory model of the same operations predicts from their results.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PaymentStatus, RefundStatus } from '../gen/payment/v1/payment_pb.js';
import { type Clients, clientsFor } from './support/clients.js';
import { authorizeHold, balanceOf, fundedAccount, key, merchantAccount } from './support/fixtures.js';
import { ledgerViolations } from './support/ledger-invariants.js';
import { startTestServer, type TestServer } from './support/server.js';

let server: TestServer;
let clients: Clients;
beforeAll(async () => {
  server = await startTestServer({ SETTLEMENT_INTERVAL_SECONDS: '0' });
  clients = clientsFor('connect-json', server.url);
});
afterAll(async () => {
  await server?.stop();
});

type Operation =
  | { kind: 'deposit'; account: number; amount: number }
  | { kind: 'pay'; from: number; to: number; amount: number }
  | { kind: 'hold'; from: number; to: number; amount: number }
  | { kind: 'capture'; hold: number; fraction: number }
  | { kind: 'void'; hold: number }
  | { kind: 'refund'; payment: number; amount: number }
  | { kind: 'settle' };

const PEOPLE = 3; // accounts 0..2 are PERSONAL, account 3 is a MERCHANT
const ACCOUNTS = PEOPLE + 1;
const WAVE = 8;

const operation: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({
    kind: fc.constant('deposit' as const),
    account: fc.nat(PEOPLE - 1),
    amount: fc.integer({ min: 1, max: 500 }),
  }),
  fc.record({
    kind: fc.constant('pay' as const),
    from: fc.nat(PEOPLE - 1),
    to: fc.nat(ACCOUNTS - 1),
    amount: fc.integer({ min: 1, max: 400 }),
  }),
  fc.record({
    kind: fc.constant('hold' as const),
    from: fc.nat(PEOPLE - 1),
    to: fc.nat(ACCOUNTS - 1),
    amount: fc.integer({ min: 1, max: 400 }),
  }),
  fc.record({ kind: fc.constant('capture' as const), hold: fc.nat(50), fraction: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant('void' as const), hold: fc.nat(50) }),
  fc.record({ kind: fc.constant('refund' as const), payment: fc.nat(50), amount: fc.integer({ min: 1, max: 300 }) }),
  fc.record({ kind: fc.constant('settle' as const) }),
);

/** Expected balances, driven only by what the server answered for each operation. */
class Model {
  readonly available = new Array<bigint>(ACCOUNTS).fill(0n);
  readonly held = new Array<bigint>(ACCOUNTS).fill(0n);
  /** A merchant's total (available + pending settlement): settlement moves money between the two. */
  readonly merchantTotal = [0n];
  readonly holds: { id: string; from: number; to: number; amount: bigint }[] = [];
  readonly captured: { id: string; from: number; to: number }[] = [];

  credit(account: number, amount: bigint) {
    if (account === PEOPLE) this.merchantTotal[0]! += amount;
    else this.available[account]! += amount;
  }
}

async function run(op: Operation, accounts: string[], model: Model): Promise<void> {
  switch (op.kind) {
    case 'deposit': {
      await clients.accounts.depositFunds({
        idempotencyKey: key(),
        accountId: accounts[op.account]!,
        amount: { amountMinor: BigInt(op.amount), currency: 'USD' },
      });
      model.available[op.account]! += BigInt(op.amount);
      return;
    }
    case 'pay': {
      if (op.from === op.to) return;
      const { payment } = await clients.payments.authorizePayment({
        idempotencyKey: key(),
        payerAccountId: accounts[op.from]!,
        payeeAccountId: accounts[op.to]!,
        amount: { amountMinor: BigInt(op.amount), currency: 'USD' },
      });
      if (payment?.status !== PaymentStatus.COMPLETED) return;
      model.available[op.from]! -= BigInt(op.amount);
      model.credit(op.to, BigInt(op.amount));
      model.captured.push({ id: payment.id, from: op.from, to: op.to });
      return;
    }
    case 'hold': {
      if (op.from === op.to) return;
      const id = await authorizeHold(clients, accounts[op.from]!, accounts[op.to]!, BigInt(op.amount));
      const { payment } = await clients.payments.getPayment({ paymentId: id });
      if (payment?.status !== PaymentStatus.AUTHORIZED) return;
      model.available[op.from]! -= BigInt(op.amount);
      model.held[op.from]! += BigInt(op.amount);
      model.holds.push({ id, from: op.from, to: op.to, amount: BigInt(op.amount) });
      return;
    }
    case 'capture':
    case 'void': {
      const hold = model.holds[op.hold % Math.max(model.holds.length, 1)];
      if (!hold) return;
      const captureAmount = op.kind === 'capture' ? (hold.amount * BigInt(op.fraction)) / 4n || 1n : 0n;
      const call =
        op.kind === 'capture'
          ? clients.payments.capturePayment({
              idempotencyKey: key(),
              paymentId: hold.id,
              amount: { amountMinor: captureAmount, currency: 'USD' },
            })
          : clients.payments.voidPayment({ idempotencyKey: key(), paymentId: hold.id });
      // Losing a race to another capture/void of the same hold is expected: FAILED_PRECONDITION, no effect.
      const answered = await call.catch(() => undefined);
      if (!answered) return;
      model.held[hold.from]! -= hold.amount;
      model.available[hold.from]! += hold.amount - captureAmount;
      if (captureAmount > 0n) {
        model.credit(hold.to, captureAmount);
        model.captured.push({ id: hold.id, from: hold.from, to: hold.to });
      }
      return;
    }
    case 'refund': {
      const payment = model.captured[op.payment % Math.max(model.captured.length, 1)];
      if (!payment) return;
      const answered = await clients.payments
        .refundPayment({
          idempotencyKey: key(),
          paymentId: payment.id,
          amount: { amountMinor: BigInt(op.amount), currency: 'USD' },
        })
        .catch(() => undefined);
      if (answered?.refund?.status !== RefundStatus.COMPLETED) return;
      model.credit(payment.from, BigInt(op.amount));
      model.credit(payment.to, -BigInt(op.amount));
      return;
    }
    case 'settle':
      await clients.settlements.runSettlement({});
      return;
  }
}

it('keeps the books exact under hundreds of concurrent random operations', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(operation, { minLength: 60, maxLength: 80 }), async (operations) => {
      const accounts = [
        ...(await Promise.all(Array.from({ length: PEOPLE }, () => fundedAccount(clients, 0n)))),
        await merchantAccount(clients),
      ];
      const model = new Model();
      for (let start = 0; start < operations.length; start += WAVE) {
        await Promise.all(operations.slice(start, start + WAVE).map((op) => run(op, accounts, model)));
      }
      await clients.settlements.runSettlement({});
      for (let index = 0; index < PEOPLE; index++) {
        expect(await balanceOf(clients, accounts[index]!)).toMatchObject({
          available: model.available[index],
          held: model.held[index],
        });
      }
      expect(await balanceOf(clients, accounts[PEOPLE]!)).toMatchObject({
        available: model.merchantTotal[0],
        pending: 0n,
        held: 0n,
      });
      expect(await ledgerViolations(server.database)).toEqual([]);
    }),
    { numRuns: 5, endOnFailure: true },
  );
}, 180_000);
