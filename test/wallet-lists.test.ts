/**
 * The wallet's listings over every protocol: ListAccounts, ListPayments, GetRefund and ListRefunds, their
 * cursors (stable when rows share a timestamp and while rows are inserted), filters, bounds, and ownership
 * (another user's data answers NOT_FOUND).
 */
import { type Timestamp, timestampMs } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaptureMode, PaymentStatus, RefundStatus } from '../gen/payment/v1/payment_pb.js';
import type { LedgerCommand } from '../src/ledger/commands.js';
import { refusal } from './support/calls.js';
import { type Clients, clientsFor, PROTOCOLS } from './support/clients.js';
import { signToken } from './support/credentials.js';
import { deposit, key, merchantAccount, openAccount } from './support/fixtures.js';
import { ledgerViolations } from './support/ledger-invariants.js';
import { startTestServer, type TestServer } from './support/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ SETTLEMENT_INTERVAL_SECONDS: '0' });
});
afterAll(async () => {
  if (server) expect(await ledgerViolations(server.database)).toEqual([]);
  await server?.stop();
});

/** `count` AUTOMATIC payments from payer to payee in ONE ledger transaction: they share created_at. */
async function paymentsSharingATimestamp(payer: string, payee: string, count: number): Promise<string[]> {
  const commands: LedgerCommand[] = Array.from({ length: count }, (_, index) => ({
    kind: 'authorizePayment',
    principal: 'test:batch',
    idempotencyKey: key('batch'),
    payerAccountId: payer,
    payeeAccountId: payee,
    amountMinor: BigInt(index + 1),
    currency: 'USD',
    description: `batch ${index}`,
    captureMode: 'AUTOMATIC',
    holdDurationMs: 0,
  }));
  const results = await server.service.ledger.apply(commands);
  return results.map((result) => {
    if (!result.ok || result.outcome.kind !== 'payment') throw new Error('batch payment failed');
    return result.outcome.payment.id;
  });
}

async function pay(clients: Clients, payer: string, payee: string, amountMinor: bigint, captureMode?: CaptureMode) {
  const { payment } = await clients.payments.authorizePayment({
    idempotencyKey: key('pay'),
    payerAccountId: payer,
    payeeAccountId: payee,
    amount: { amountMinor, currency: 'USD' },
    captureMode,
  });
  return payment!;
}

describe.each(PROTOCOLS)('over %s', (protocol) => {
  let backend: Clients;
  let alice: Clients;
  let bob: Clients;
  let aliceOwner: string;
  let bobOwner: string;
  beforeAll(async () => {
    backend = clientsFor(protocol, server.url);
    aliceOwner = `alice-${protocol}-${key()}`;
    bobOwner = `bob-${protocol}-${key()}`;
    alice = clientsFor(protocol, server.url, { token: await signToken(aliceOwner) });
    bob = clientsFor(protocol, server.url, { token: await signToken(bobOwner) });
  });

  it('ListAccounts pages a user through their own accounts, oldest first, and hides other owners', async () => {
    const opened = [];
    for (const currency of ['USD', 'EUR', 'GBP']) opened.push(await openAccount(backend, currency, aliceOwner));
    await openAccount(backend, 'USD', bobOwner);

    const first = await alice.accounts.listAccounts({ pageSize: 2 });
    expect(first.accounts.map((account) => account.id)).toEqual(opened.slice(0, 2));
    expect(first.nextPageToken).not.toBe('');
    const second = await alice.accounts.listAccounts({ pageSize: 2, pageToken: first.nextPageToken });
    expect(second.accounts.map((account) => account.id)).toEqual(opened.slice(2));
    expect(second.nextPageToken).toBe('');

    // A backend names the owner; a user may not name someone else.
    const byBackend = await backend.accounts.listAccounts({ ownerRef: aliceOwner });
    expect(byBackend.accounts.map((account) => account.id)).toEqual(opened);
    expect(await refusal(alice.accounts.listAccounts({ ownerRef: bobOwner }))).toEqual({
      code: 'NotFound',
      reason: 'OWNER_NOT_FOUND',
    });
    expect(await refusal(backend.accounts.listAccounts({}))).toEqual({
      code: 'InvalidArgument',
      reason: 'FIELD_REQUIRED',
    });
    // A token belongs to its listing: replayed for another owner it is refused.
    expect(
      await refusal(backend.accounts.listAccounts({ ownerRef: bobOwner, pageToken: first.nextPageToken })),
    ).toEqual({ code: 'InvalidArgument', reason: 'PAGE_TOKEN_INVALID' });
  });

  it('ListPayments pages newest first without skipping or repeating rows that share a timestamp', async () => {
    const payer = await openAccount(backend, 'USD', aliceOwner);
    const payee = await openAccount(backend, 'USD', bobOwner);
    await deposit(backend, payer, 1_000_000n);
    const shared = await paymentsSharingATimestamp(payer, payee, 7);

    const seen: string[] = [];
    let pageToken = '';
    for (let page = 0; page < 10; page++) {
      const result = await alice.payments.listPayments({ accountId: payer, pageSize: 2, pageToken });
      expect(result.payments.length).toBeLessThanOrEqual(2);
      seen.push(...result.payments.map((payment) => payment.id));
      // Concurrent inserts while paging: newer rows belong before the first page, never inside later ones.
      await pay(backend, payer, payee, 1n);
      pageToken = result.nextPageToken;
      if (pageToken === '') break;
    }
    expect(pageToken).toBe('');
    expect(new Set(seen).size).toBe(seen.length);
    expect([...seen].sort()).toEqual([...shared].sort());
    // Rows sharing created_at come in id order (descending), the cursor's tie-breaker.
    expect(seen).toEqual([...shared].sort().reverse());
  });

  it('ListPayments filters by status and created-time range and sees the account as payer or payee', async () => {
    const account = await openAccount(backend, 'USD', aliceOwner);
    const other = await openAccount(backend, 'USD', bobOwner);
    await deposit(backend, account, 10_000n);
    await deposit(backend, other, 10_000n);
    const sent = await pay(backend, account, other, 100n);
    const received = await pay(backend, other, account, 200n);
    const declined = await pay(backend, account, other, 1_000_000n);
    const held = await pay(backend, account, other, 300n, CaptureMode.MANUAL);
    expect(declined.status).toBe(PaymentStatus.DECLINED);

    const all = await alice.payments.listPayments({ accountId: account });
    expect(all.payments.map((payment) => payment.id)).toEqual([held.id, declined.id, received.id, sent.id]);
    const completed = await alice.payments.listPayments({ accountId: account, statuses: [PaymentStatus.COMPLETED] });
    expect(completed.payments.map((payment) => payment.id)).toEqual([received.id, sent.id]);
    const openOrDeclined = await alice.payments.listPayments({
      accountId: account,
      statuses: [PaymentStatus.AUTHORIZED, PaymentStatus.DECLINED],
    });
    expect(openOrDeclined.payments.map((payment) => payment.id)).toEqual([held.id, declined.id]);

    const from = received.createTime!;
    const ranged = await alice.payments.listPayments({
      accountId: account,
      createTimeFrom: from,
      createTimeTo: held.createTime,
    });
    // Computed from the listing's own times, so the assertion holds even when two payments share a millisecond.
    const millis = (payment: { createTime?: Timestamp }) => timestampMs(payment.createTime!);
    const expected = all.payments.filter(
      (payment) => millis(payment) >= timestampMs(from) && millis(payment) < millis(held),
    );
    expect(ranged.payments.map((payment) => payment.id)).toEqual(expected.map((payment) => payment.id));
    expect(ranged.payments.map((payment) => payment.id)).not.toContain(held.id);
    expect(
      await refusal(
        alice.payments.listPayments({ accountId: account, createTimeFrom: held.createTime, createTimeTo: from }),
      ),
    ).toEqual({ code: 'InvalidArgument', reason: 'TIME_RANGE_EMPTY' });
    expect(await refusal(alice.payments.listPayments({ accountId: account, statuses: [99 as PaymentStatus] }))).toEqual(
      {
        code: 'InvalidArgument',
        // Undefined enum numbers are refused at the edge for every RPC (api/strict-input.ts), before the listing.
        reason: 'FIELD_INVALID',
      },
    );
    expect(await refusal(alice.payments.listPayments({ accountId: account, pageSize: -1 }))).toEqual({
      code: 'InvalidArgument',
      reason: 'PAGE_SIZE_INVALID',
    });
    // A token is bound to its filters.
    const paged = await alice.payments.listPayments({ accountId: account, pageSize: 1 });
    expect(
      await refusal(
        alice.payments.listPayments({
          accountId: account,
          pageSize: 1,
          pageToken: paged.nextPageToken,
          statuses: [PaymentStatus.COMPLETED],
        }),
      ),
    ).toEqual({ code: 'InvalidArgument', reason: 'PAGE_TOKEN_INVALID' });

    // Bob's own account is bob's; alice's is not his to list.
    expect(await refusal(bob.payments.listPayments({ accountId: account }))).toEqual({
      code: 'NotFound',
      reason: 'ACCOUNT_NOT_FOUND',
    });
    expect((await bob.payments.listPayments({ accountId: other })).payments).toHaveLength(4);
  });

  it('GetRefund and ListRefunds show a payment’s refunds to its parties only', async () => {
    const payer = await openAccount(backend, 'USD', bobOwner);
    const shop = await merchantAccount(backend);
    await deposit(backend, payer, 10_000n);
    const payment = await pay(backend, payer, shop, 1_000n);
    const refunds = [];
    for (const amountMinor of [100n, 200n, 300n]) {
      const { refund } = await backend.payments.refundPayment({
        idempotencyKey: key('refund'),
        paymentId: payment.id,
        amount: { amountMinor, currency: 'USD' },
        reason: `part ${amountMinor}`,
      });
      refunds.push(refund!);
    }
    expect(refunds.every((refund) => refund.status === RefundStatus.COMPLETED)).toBe(true);

    const got = await bob.payments.getRefund({ refundId: refunds[1]!.id });
    expect(got.refund?.amount?.amountMinor).toBe(200n);
    expect(got.refund?.paymentId).toBe(payment.id);

    const first = await bob.payments.listRefunds({ paymentId: payment.id, pageSize: 2 });
    const second = await bob.payments.listRefunds({
      paymentId: payment.id,
      pageSize: 2,
      pageToken: first.nextPageToken,
    });
    expect([...first.refunds, ...second.refunds].map((refund) => refund.id)).toEqual(
      refunds.map((refund) => refund.id).reverse(),
    );
    expect(second.nextPageToken).toBe('');

    expect(await refusal(alice.payments.getRefund({ refundId: refunds[0]!.id }))).toEqual({
      code: 'NotFound',
      reason: 'REFUND_NOT_FOUND',
    });
    expect(await refusal(alice.payments.listRefunds({ paymentId: payment.id }))).toEqual({
      code: 'NotFound',
      reason: 'PAYMENT_NOT_FOUND',
    });
    expect(await refusal(bob.payments.getRefund({ refundId: 'ref_00000000000000000000000000' }))).toEqual({
      code: 'NotFound',
      reason: 'REFUND_NOT_FOUND',
    });
    expect(await refusal(bob.payments.getRefund({ refundId: '' }))).toEqual({
      code: 'InvalidArgument',
      reason: 'FIELD_REQUIRED',
    });
  });
});
