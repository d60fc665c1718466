/**
 * Every RPC through each of the three protocols with a real client, including the error codes a client
 * must be able to rely on.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import { beforeAll, describe, expect, it } from 'vitest';
import { AccountStatus, EntryDirection } from '../gen/payment/v1/account_pb.js';
import { ErrorDetailSchema } from '../gen/payment/v1/errors_pb.js';
import { DeclineReason, PaymentStatus } from '../gen/payment/v1/payment_pb.js';
import { type Clients, clientsFor, PROTOCOLS } from './support/clients.js';
import { availableOf, fundedAccount, key, openAccount } from './support/fixtures.js';
import { serverForFile } from './support/server.js';

const server = serverForFile({}, { checkLedgerAfterEach: true });

async function expectError(call: Promise<unknown>, code: Code, reason?: string): Promise<ConnectError> {
  const error = await call.then(
    () => {
      throw new Error(`expected ${Code[code]}, but the call succeeded`);
    },
    (caught: unknown) => ConnectError.from(caught),
  );
  expect(Code[error.code]).toBe(Code[code]);
  if (reason) expect(error.findDetails(ErrorDetailSchema)[0]?.reason).toBe(reason);
  return error;
}

describe.each(PROTOCOLS)('over %s', (protocol) => {
  let clients: Clients;
  beforeAll(() => {
    clients = clientsFor(protocol, server.url);
  });

  it('creates and reads an account', async () => {
    const { account } = await clients.accounts.createAccount({
      idempotencyKey: key(),
      ownerRef: 'user:alice',
      currency: 'JPY',
    });
    expect(account?.id).toMatch(/^acct_[0-9a-z]{26}$/);
    expect(account?.status).toBe(AccountStatus.ACTIVE);
    const read = await clients.accounts.getAccount({ accountId: account!.id });
    expect(read.account).toEqual(account);
  });

  it('deposits funds double-entry and shows them in the balance and entries', async () => {
    const accountId = await openAccount(clients, 'KWD');
    const { deposit } = await clients.accounts.depositFunds({
      idempotencyKey: key(),
      accountId,
      amount: { amountMinor: 1250n, currency: 'KWD' },
    });
    expect(deposit?.id).toMatch(/^dep_/);
    const { balance } = await clients.payments.getAccountBalance({ accountId });
    expect(balance?.available?.amountMinor).toBe(1250n);
    expect(balance?.posted?.amountMinor).toBe(1250n);
    expect(balance?.held?.amountMinor).toBe(0n);
    expect(balance?.currency).toBe('KWD');
    expect(balance?.version).toBe(1n);
    const { entries } = await clients.accounts.listLedgerEntries({ accountId });
    expect(entries).toHaveLength(1);
    expect(entries[0]?.direction).toBe(EntryDirection.CREDIT);
    expect(entries[0]?.referenceId).toBe(deposit?.id);
  });

  it('authorizes a payment that moves money at once, and reads it back', async () => {
    const payer = await fundedAccount(clients, 10_000n);
    const payee = await openAccount(clients);
    const { payment } = await clients.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: payer,
      payeeAccountId: payee,
      amount: { amountMinor: 2_550n, currency: 'USD' },
      description: 'dinner',
    });
    expect(payment?.status).toBe(PaymentStatus.COMPLETED);
    expect(payment?.declineReason).toBe(DeclineReason.UNSPECIFIED);
    expect(await availableOf(clients, payer)).toBe(7_450n);
    expect(await availableOf(clients, payee)).toBe(2_550n);
    const read = await clients.payments.getPayment({ paymentId: payment!.id });
    expect(read.payment).toEqual(payment);

    const payerEntries = await clients.accounts.listLedgerEntries({ accountId: payer });
    expect(payerEntries.entries.map((entry) => [entry.direction, entry.amount?.amountMinor])).toEqual([
      [EntryDirection.DEBIT, 2_550n],
      [EntryDirection.CREDIT, 10_000n],
    ]);
    expect(payerEntries.entries[0]?.balanceAfter?.amountMinor).toBe(7_450n);
  });

  it('records business refusals as DECLINED payments with a reason, moving nothing', async () => {
    const payer = await fundedAccount(clients, 100n);
    const payee = await openAccount(clients);
    const euroPayee = await openAccount(clients, 'EUR');
    const cases: [string, bigint, string, DeclineReason][] = [
      [payee, 101n, 'USD', DeclineReason.INSUFFICIENT_FUNDS],
      [euroPayee, 50n, 'USD', DeclineReason.CURRENCY_MISMATCH],
      [payee, 1_000_000_01n, 'USD', DeclineReason.AMOUNT_ABOVE_LIMIT],
    ];
    for (const [payeeId, amountMinor, currency, reason] of cases) {
      const { payment } = await clients.payments.authorizePayment({
        idempotencyKey: key(),
        payerAccountId: payer,
        payeeAccountId: payeeId,
        amount: { amountMinor, currency },
      });
      expect(payment?.status).toBe(PaymentStatus.DECLINED);
      expect(DeclineReason[payment!.declineReason]).toBe(DeclineReason[reason]);
      expect((await clients.payments.getPayment({ paymentId: payment!.id })).payment?.status).toBe(
        PaymentStatus.DECLINED,
      );
    }
    expect(await availableOf(clients, payer)).toBe(100n);
    expect(await availableOf(clients, payee)).toBe(0n);
  });

  it('declines payments from or to an inactive account', async () => {
    const payer = await fundedAccount(clients, 500n);
    const frozen = await fundedAccount(clients, 500n);
    await server.database.query(`update accounts set status = 'FROZEN' where id = $1`, [frozen]);
    const toFrozen = await clients.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: payer,
      payeeAccountId: frozen,
      amount: { amountMinor: 1n, currency: 'USD' },
    });
    expect(toFrozen.payment?.declineReason).toBe(DeclineReason.PAYEE_ACCOUNT_INACTIVE);
    const fromFrozen = await clients.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: frozen,
      payeeAccountId: payer,
      amount: { amountMinor: 1n, currency: 'USD' },
    });
    expect(fromFrozen.payment?.declineReason).toBe(DeclineReason.PAYER_ACCOUNT_INACTIVE);
    expect(await availableOf(clients, frozen)).toBe(500n);
  });

  it('refuses malformed requests with INVALID_ARGUMENT and records nothing', async () => {
    const payer = await fundedAccount(clients, 1_000n);
    const payee = await openAccount(clients);
    const valid = {
      idempotencyKey: key(),
      payerAccountId: payer,
      payeeAccountId: payee,
      amount: { amountMinor: 10n, currency: 'USD' },
    };
    const [paymentsBefore] = await server.database.query<{ n: string }>('select count(*)::text as n from payments');
    const bad: [Partial<typeof valid> & Record<string, unknown>, string][] = [
      [{ idempotencyKey: '' }, 'IDEMPOTENCY_KEY_MISSING'],
      [{ idempotencyKey: 'x'.repeat(256) }, 'IDEMPOTENCY_KEY_INVALID'],
      [{ amount: { amountMinor: 0n, currency: 'USD' } }, 'AMOUNT_NOT_POSITIVE'],
      [{ amount: { amountMinor: -5n, currency: 'USD' } }, 'AMOUNT_NOT_POSITIVE'],
      [{ amount: undefined }, 'AMOUNT_REQUIRED'],
      [{ amount: { amountMinor: 10n, currency: 'ABC' } }, 'CURRENCY_UNKNOWN'],
      [{ amount: { amountMinor: 10n, currency: 'usd' } }, 'CURRENCY_UNKNOWN'],
      [{ payeeAccountId: payer }, 'SAME_ACCOUNT'],
      [{ payerAccountId: '' }, 'FIELD_REQUIRED'],
    ];
    for (const [change, reason] of bad) {
      const error = await expectError(
        clients.payments.authorizePayment({ ...valid, ...change }),
        Code.InvalidArgument,
        reason,
      );
      expect(error.rawMessage).not.toMatch(/select|insert|update|postgres|at .*\.ts/i);
    }
    const [paymentsAfter] = await server.database.query<{ n: string }>('select count(*)::text as n from payments');
    expect(paymentsAfter?.n).toBe(paymentsBefore?.n);
    expect(await availableOf(clients, payer)).toBe(1_000n);
    // Nothing was recorded under the key either: the same key now works for a valid request.
    const { payment } = await clients.payments.authorizePayment(valid);
    expect(payment?.status).toBe(PaymentStatus.COMPLETED);
  });

  it('answers NOT_FOUND for unknown accounts and payments, recording nothing', async () => {
    const payer = await fundedAccount(clients, 1_000n);
    const unknown = 'acct_00000000000000000000000000';
    const idempotencyKey = key();
    await expectError(
      clients.payments.authorizePayment({
        idempotencyKey,
        payerAccountId: payer,
        payeeAccountId: unknown,
        amount: { amountMinor: 1n, currency: 'USD' },
      }),
      Code.NotFound,
      'ACCOUNT_NOT_FOUND',
    );
    await expectError(clients.payments.getPayment({ paymentId: 'pay_00000000000000000000000000' }), Code.NotFound);
    await expectError(clients.payments.getPayment({ paymentId: 'not-an-id' }), Code.NotFound);
    await expectError(clients.payments.getAccountBalance({ accountId: unknown }), Code.NotFound);
    await expectError(clients.accounts.getAccount({ accountId: unknown }), Code.NotFound);
    await expectError(clients.accounts.listLedgerEntries({ accountId: unknown }), Code.NotFound);
    await expectError(
      clients.accounts.depositFunds({
        idempotencyKey: key(),
        accountId: unknown,
        amount: { amountMinor: 1n, currency: 'USD' },
      }),
      Code.NotFound,
    );
    // The ledger's own funding account is not a customer account.
    await expectError(clients.payments.getAccountBalance({ accountId: 'sys_funding_USD' }), Code.NotFound);
    expect(await availableOf(clients, payer)).toBe(1_000n);
    const keys = await server.database.query('select 1 from idempotency_keys where idempotency_key = $1', [
      idempotencyKey,
    ]);
    expect(keys).toHaveLength(0);
  });

  it('refuses deposits in the wrong currency with FAILED_PRECONDITION', async () => {
    const accountId = await openAccount(clients, 'EUR');
    await expectError(
      clients.accounts.depositFunds({ idempotencyKey: key(), accountId, amount: { amountMinor: 5n, currency: 'USD' } }),
      Code.FailedPrecondition,
      'CURRENCY_MISMATCH',
    );
    expect(await availableOf(clients, accountId)).toBe(0n);
  });

  it('validates CreateAccount and ListLedgerEntries input', async () => {
    await expectError(
      clients.accounts.createAccount({ idempotencyKey: key(), ownerRef: 'u', currency: 'XXX' }),
      Code.InvalidArgument,
      'CURRENCY_UNKNOWN',
    );
    await expectError(
      clients.accounts.createAccount({ idempotencyKey: key(), ownerRef: '', currency: 'USD' }),
      Code.InvalidArgument,
      'FIELD_REQUIRED',
    );
    const accountId = await openAccount(clients);
    await expectError(
      clients.accounts.listLedgerEntries({ accountId, pageToken: 'garbage' }),
      Code.InvalidArgument,
      'PAGE_TOKEN_INVALID',
    );
    await expectError(clients.accounts.listLedgerEntries({ accountId, pageSize: -1 }), Code.InvalidArgument);
  });

  it('pages through ledger entries with an opaque cursor, newest first', async () => {
    const accountId = await openAccount(clients);
    for (let i = 1n; i <= 7n; i++) {
      await clients.accounts.depositFunds({
        idempotencyKey: key(),
        accountId,
        amount: { amountMinor: i, currency: 'USD' },
      });
    }
    const seen: bigint[] = [];
    let pageToken = '';
    for (let page = 0; page < 10; page++) {
      const result = await clients.accounts.listLedgerEntries({ accountId, pageSize: 3, pageToken });
      seen.push(...result.entries.map((entry) => entry.amount!.amountMinor));
      pageToken = result.nextPageToken;
      if (!pageToken) break;
    }
    expect(seen).toEqual([7n, 6n, 5n, 4n, 3n, 2n, 1n]);
    // A token from one account's listing is refused for another.
    const other = await openAccount(clients);
    const first = await clients.accounts.listLedgerEntries({ accountId, pageSize: 1 });
    await expectError(
      clients.accounts.listLedgerEntries({ accountId: other, pageToken: first.nextPageToken }),
      Code.InvalidArgument,
    );
  });
});
