/**
 * FreezeAccount, UnfreezeAccount, CloseAccount and PayoutFunds over every protocol: what a frozen or closed
 * account may still do, idempotency, the events they emit, who may call them, and the ledger check after.
 */
import { fromBinary } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import { sql } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { AccountFrozenSchema, FundsPaidOutSchema } from '../gen/payment/events/v1/events_pb.js';
import { AccountStatus } from '../gen/payment/v1/account_pb.js';
import { DeclineReason, PaymentStatus, RefundStatus } from '../gen/payment/v1/payment_pb.js';
import { checkLedger } from '../src/ledger/check.js';
import { connectErrorOf, refusal } from './support/calls.js';
import { type Clients, clientsFor, PROTOCOLS } from './support/clients.js';
import { signToken } from './support/credentials.js';
import {
  authorizeHold,
  balanceOf,
  deposit,
  fundedAccount,
  key,
  merchantAccount,
  openAccount,
} from './support/fixtures.js';
import { serverForFile } from './support/server.js';

const server = serverForFile({ SETTLEMENT_INTERVAL_SECONDS: '0' }, { checkLedgerAfterEach: true });

async function payloadOf(aggregateId: string, eventType: string): Promise<Uint8Array> {
  const result = (await server.service.database.db.execute(
    sql`select payload from outbox_events where aggregate_id = ${aggregateId} and event_type = ${eventType}`,
  )) as unknown as { rows: { payload: Uint8Array }[] };
  const [row] = result.rows;
  if (!row) throw new Error(`no ${eventType} event for ${aggregateId}`);
  return new Uint8Array(row.payload);
}

async function eventTypesOf(aggregateId: string): Promise<string[]> {
  const result = (await server.service.database.db.execute(
    sql`select event_type from outbox_events where aggregate_id = ${aggregateId} order by aggregate_seq`,
  )) as unknown as { rows: { event_type: string }[] };
  return result.rows.map((row) => row.event_type);
}

describe.each(PROTOCOLS)('over %s', (protocol) => {
  let clients: Clients;
  beforeAll(() => {
    clients = clientsFor(protocol, server.url);
  });
  const freeze = (accountId: string, idempotencyKey = key('freeze')) =>
    clients.accounts.freezeAccount({ idempotencyKey, accountId, reason: 'fraud review' });
  const unfreeze = (accountId: string) => clients.accounts.unfreezeAccount({ idempotencyKey: key(), accountId });
  const close = (accountId: string) => clients.accounts.closeAccount({ idempotencyKey: key(), accountId });
  const pay = async (payer: string, payee: string, amountMinor: bigint) =>
    (
      await clients.payments.authorizePayment({
        idempotencyKey: key(),
        payerAccountId: payer,
        payeeAccountId: payee,
        amount: { amountMinor, currency: 'USD' },
      })
    ).payment!;

  it('a frozen account neither pays nor is paid, but its holds can still be captured or voided', async () => {
    const account = await fundedAccount(clients, 10_000n);
    const other = await fundedAccount(clients, 10_000n);
    const captured = await authorizeHold(clients, account, other, 1_000n);
    const voided = await authorizeHold(clients, account, other, 2_000n);

    const frozen = await freeze(account);
    expect(frozen.account?.status).toBe(AccountStatus.FROZEN);
    // Idempotent: freezing again changes nothing and emits nothing.
    expect((await freeze(account)).account?.status).toBe(AccountStatus.FROZEN);

    expect((await pay(account, other, 100n)).declineReason).toBe(DeclineReason.PAYER_ACCOUNT_INACTIVE);
    expect((await pay(other, account, 100n)).declineReason).toBe(DeclineReason.PAYEE_ACCOUNT_INACTIVE);
    expect(await refusal(deposit(clients, account, 100n))).toEqual({
      code: 'FailedPrecondition',
      reason: 'ACCOUNT_INACTIVE',
    });
    expect(
      await refusal(
        clients.accounts.payoutFunds({
          idempotencyKey: key(),
          accountId: account,
          amount: { amountMinor: 1n, currency: 'USD' },
        }),
      ),
    ).toEqual({ code: 'FailedPrecondition', reason: 'ACCOUNT_INACTIVE' });
    // Holds it placed before the freeze finish normally: the money was already reserved.
    expect(
      (await clients.payments.capturePayment({ idempotencyKey: key(), paymentId: captured })).payment?.status,
    ).toBe(PaymentStatus.COMPLETED);
    expect((await clients.payments.voidPayment({ idempotencyKey: key(), paymentId: voided })).payment?.status).toBe(
      PaymentStatus.VOIDED,
    );

    expect((await unfreeze(account)).account?.status).toBe(AccountStatus.ACTIVE);
    expect((await pay(account, other, 100n)).status).toBe(PaymentStatus.COMPLETED);
    expect(await eventTypesOf(account)).toEqual([
      'AccountCreated',
      'FundsDeposited',
      'AccountFrozen',
      'AccountUnfrozen',
    ]);
    const frozenEvent = fromBinary(AccountFrozenSchema, await payloadOf(account, 'AccountFrozen'));
    expect(frozenEvent.account?.status).toBe(AccountStatus.FROZEN);
    expect(frozenEvent.reason).toBe('fraud review');
    expect(frozenEvent.metadata?.aggregateId).toBe(account);
  });

  it('a refund to or from a frozen account is declined, and a frozen merchant is still settled', async () => {
    const payer = await fundedAccount(clients, 10_000n);
    const shop = await merchantAccount(clients);
    const payment = await pay(payer, shop, 3_000n);
    await freeze(shop);
    const { refund } = await clients.payments.refundPayment({ idempotencyKey: key(), paymentId: payment.id });
    expect(refund?.status).toBe(RefundStatus.DECLINED);
    expect(refund?.declineReason).toBe(DeclineReason.PAYEE_ACCOUNT_INACTIVE);
    const { settlements } = await clients.settlements.runSettlement({ accountId: shop });
    expect(settlements[0]?.net?.amountMinor).toBe(3_000n);
    expect(await balanceOf(clients, shop)).toMatchObject({ available: 3_000n, pending: 0n });
  });

  it('closing needs every bucket at zero; a payout empties the account; closed is final', async () => {
    const account = await fundedAccount(clients, 5_000n);
    const payee = await openAccount(clients);
    const hold = await authorizeHold(clients, account, payee, 1_000n);
    expect(await refusal(close(account))).toEqual({ code: 'FailedPrecondition', reason: 'ACCOUNT_NOT_EMPTY' });
    await clients.payments.voidPayment({ idempotencyKey: key(), paymentId: hold });

    expect(
      await refusal(
        clients.accounts.payoutFunds({
          idempotencyKey: key(),
          accountId: account,
          amount: { amountMinor: 5_001n, currency: 'USD' },
        }),
      ),
    ).toEqual({ code: 'FailedPrecondition', reason: 'INSUFFICIENT_FUNDS' });
    const payoutKey = key('payout');
    const request = { idempotencyKey: payoutKey, accountId: account, amount: { amountMinor: 5_000n, currency: 'USD' } };
    const { payout } = await clients.accounts.payoutFunds(request);
    expect(payout?.id).toMatch(/^pout_/);
    expect(payout?.amount?.amountMinor).toBe(5_000n);
    // A retry pays nothing more and returns the same payout.
    expect((await clients.accounts.payoutFunds(request)).payout?.id).toBe(payout?.id);
    expect(await balanceOf(clients, account)).toEqual({ available: 0n, held: 0n, pending: 0n, posted: 0n });

    const closed = await close(account);
    expect(closed.account?.status).toBe(AccountStatus.CLOSED);
    expect((await close(account)).account?.status).toBe(AccountStatus.CLOSED);
    expect(await refusal(unfreeze(account))).toEqual({ code: 'FailedPrecondition', reason: 'ACCOUNT_CLOSED' });
    expect(await refusal(freeze(account))).toEqual({ code: 'FailedPrecondition', reason: 'ACCOUNT_CLOSED' });
    expect((await pay(payee, account, 1n)).status).toBe(PaymentStatus.DECLINED);
    expect(await eventTypesOf(account)).toEqual(['AccountCreated', 'FundsDeposited', 'FundsPaidOut', 'AccountClosed']);
    const paidOut = fromBinary(FundsPaidOutSchema, await payloadOf(account, 'FundsPaidOut'));
    expect(paidOut.payout?.id).toBe(payout?.id);
    expect(paidOut.balance?.available?.amountMinor).toBe(0n);
    const report = await clients.admin.checkLedger({});
    expect(report.checks.map((check) => check.name)).toEqual(
      expect.arrayContaining(['deposits_and_payouts_match_entries', 'closed_accounts_empty']),
    );
    expect(report.passed).toBe(true);
  });

  it('refuses bad input, unknown accounts and wallet users', async () => {
    const account = await fundedAccount(clients, 100n);
    expect(await refusal(freeze('acct_00000000000000000000000000'))).toEqual({
      code: 'NotFound',
      reason: 'ACCOUNT_NOT_FOUND',
    });
    expect(await refusal(clients.accounts.freezeAccount({ idempotencyKey: '', accountId: account }))).toEqual({
      code: 'InvalidArgument',
      reason: 'IDEMPOTENCY_KEY_MISSING',
    });
    expect(
      await refusal(
        clients.accounts.payoutFunds({
          idempotencyKey: key(),
          accountId: account,
          amount: { amountMinor: 0n, currency: 'USD' },
        }),
      ),
    ).toEqual({ code: 'InvalidArgument', reason: 'AMOUNT_NOT_POSITIVE' });
    expect(
      await refusal(
        clients.accounts.payoutFunds({
          idempotencyKey: key(),
          accountId: account,
          amount: { amountMinor: 1n, currency: 'EUR' },
        }),
      ),
    ).toEqual({ code: 'FailedPrecondition', reason: 'CURRENCY_MISMATCH' });
    const user = clientsFor(protocol, server.url, { token: await signToken('user:test') });
    expect(
      (await connectErrorOf(user.accounts.freezeAccount({ idempotencyKey: key(), accountId: account }))).code,
    ).toBe(Code.PermissionDenied);
    expect(
      (
        await connectErrorOf(
          user.accounts.payoutFunds({
            idempotencyKey: key(),
            accountId: account,
            amount: { amountMinor: 1n, currency: 'USD' },
          }),
        )
      ).code,
    ).toBe(Code.PermissionDenied);
    expect(await balanceOf(clients, account)).toMatchObject({ available: 100n });
  });
});

describe('the ledger check', () => {
  const exec = (query: ReturnType<typeof sql>) => server.service.database.db.execute(query);
  const failing = async () =>
    (await checkLedger(server.service.database.db)).checks.filter((check) => !check.passed).map((check) => check.name);

  it('catches a payout whose entries do not match it, and a closed account that holds money', async () => {
    const clients = clientsFor('connect-json', server.url);
    const account = await fundedAccount(clients, 1_000n);
    const { payout } = await clients.accounts.payoutFunds({
      idempotencyKey: key(),
      accountId: account,
      amount: { amountMinor: 400n, currency: 'USD' },
    });
    expect(await failing()).toEqual([]);

    await exec(sql`update payouts set amount_minor = amount_minor + 1 where id = ${payout!.id}`);
    try {
      expect(await failing()).toEqual(['deposits_and_payouts_match_entries']);
    } finally {
      await exec(sql`update payouts set amount_minor = amount_minor - 1 where id = ${payout!.id}`);
    }

    await exec(sql`update accounts set status = 'CLOSED' where id = ${account}`);
    try {
      expect(await failing()).toEqual(['closed_accounts_empty']);
    } finally {
      await exec(sql`update accounts set status = 'ACTIVE' where id = ${account}`);
    }
    expect(await failing()).toEqual([]);
  });
});
