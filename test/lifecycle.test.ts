/**
 * The payment lifecycle through the API over every protocol: hold → capture / void, refunds, settlement,
 * and every refused transition, each leaving the ledger check green.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { CaptureMode, DeclineReason, PaymentStatus, RefundStatus } from '../gen/payment/v1/payment_pb.js';
import { refusal } from './support/calls.js';
import { type Clients, clientsFor, PROTOCOLS } from './support/clients.js';
import { authorizeHold, balanceOf, fundedAccount, key, merchantAccount, openAccount } from './support/fixtures.js';
import { serverForFile } from './support/server.js';

const server = serverForFile({ SETTLEMENT_INTERVAL_SECONDS: '0' }, { checkLedgerAfterEach: true });

describe.each(PROTOCOLS)('over %s', (protocol) => {
  let clients: Clients;
  beforeAll(() => {
    clients = clientsFor(protocol, server.url);
  });

  it('holds on MANUAL authorization, then a partial capture moves the amount and releases the rest', async () => {
    const payer = await fundedAccount(clients, 10_000n);
    const payee = await openAccount(clients);
    const paymentId = await authorizeHold(clients, payer, payee, 4_000n);
    const held = (await clients.payments.getPayment({ paymentId })).payment!;
    expect(held.status).toBe(PaymentStatus.AUTHORIZED);
    expect(held.captureMode).toBe(CaptureMode.MANUAL);
    expect(held.expireTime).toBeDefined();
    expect(await balanceOf(clients, payer)).toEqual({ available: 6_000n, held: 4_000n, pending: 0n, posted: 10_000n });
    expect(await balanceOf(clients, payee)).toMatchObject({ available: 0n, posted: 0n });

    const { payment } = await clients.payments.capturePayment({
      idempotencyKey: key(),
      paymentId,
      amount: { amountMinor: 2_500n, currency: 'USD' },
    });
    expect(payment?.status).toBe(PaymentStatus.COMPLETED);
    expect(payment?.capturedAmount?.amountMinor).toBe(2_500n);
    expect(await balanceOf(clients, payer)).toEqual({ available: 7_500n, held: 0n, pending: 0n, posted: 7_500n });
    expect(await balanceOf(clients, payee)).toMatchObject({ available: 2_500n, posted: 2_500n });

    const again = await refusal(clients.payments.capturePayment({ idempotencyKey: key(), paymentId }));
    expect(again).toEqual({ code: 'FailedPrecondition', reason: 'PAYMENT_NOT_AUTHORIZED' });
  });

  it('voids a hold, releasing all of it; a voided payment can be neither captured nor voided again', async () => {
    const payer = await fundedAccount(clients, 1_000n);
    const payee = await openAccount(clients);
    const paymentId = await authorizeHold(clients, payer, payee, 700n);
    const { payment } = await clients.payments.voidPayment({ idempotencyKey: key(), paymentId });
    expect(payment?.status).toBe(PaymentStatus.VOIDED);
    expect(await balanceOf(clients, payer)).toEqual({ available: 1_000n, held: 0n, pending: 0n, posted: 1_000n });
    expect(await refusal(clients.payments.capturePayment({ idempotencyKey: key(), paymentId }))).toMatchObject({
      code: 'FailedPrecondition',
    });
    expect(await refusal(clients.payments.voidPayment({ idempotencyKey: key(), paymentId }))).toMatchObject({
      code: 'FailedPrecondition',
    });
  });

  it('refuses over-capture, wrong currency, unknown payments and bad hold durations', async () => {
    const payer = await fundedAccount(clients, 1_000n);
    const payee = await openAccount(clients);
    const paymentId = await authorizeHold(clients, payer, payee, 500n);
    expect(
      await refusal(
        clients.payments.capturePayment({
          idempotencyKey: key(),
          paymentId,
          amount: { amountMinor: 501n, currency: 'USD' },
        }),
      ),
    ).toEqual({ code: 'FailedPrecondition', reason: 'AMOUNT_EXCEEDS_AUTHORIZED' });
    expect(
      await refusal(
        clients.payments.capturePayment({
          idempotencyKey: key(),
          paymentId,
          amount: { amountMinor: 5n, currency: 'EUR' },
        }),
      ),
    ).toEqual({ code: 'FailedPrecondition', reason: 'CURRENCY_MISMATCH' });
    expect(
      await refusal(
        clients.payments.capturePayment({
          idempotencyKey: key(),
          paymentId,
          amount: { amountMinor: 0n, currency: 'USD' },
        }),
      ),
    ).toEqual({ code: 'InvalidArgument', reason: 'AMOUNT_NOT_POSITIVE' });
    expect(
      await refusal(
        clients.payments.capturePayment({ idempotencyKey: key(), paymentId: 'pay_00000000000000000000000000' }),
      ),
    ).toEqual({ code: 'NotFound', reason: 'PAYMENT_NOT_FOUND' });
    expect(await refusal(clients.payments.voidPayment({ idempotencyKey: '', paymentId }))).toMatchObject({
      code: 'InvalidArgument',
    });
    const tooLong = authorizeHold(clients, payer, payee, 1n, 365 * 86_400);
    expect(await refusal(tooLong)).toEqual({ code: 'InvalidArgument', reason: 'HOLD_DURATION_OUT_OF_RANGE' });
    // Still authorized and still held: none of the refusals changed anything.
    expect((await clients.payments.getPayment({ paymentId })).payment?.status).toBe(PaymentStatus.AUTHORIZED);
    expect(await balanceOf(clients, payer)).toMatchObject({ available: 500n, held: 500n });
  });

  it('declines a hold the payer cannot fund, holding nothing', async () => {
    const payer = await fundedAccount(clients, 100n);
    const payee = await openAccount(clients);
    const { payment } = await clients.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: payer,
      payeeAccountId: payee,
      amount: { amountMinor: 101n, currency: 'USD' },
      captureMode: CaptureMode.MANUAL,
    });
    expect(payment?.status).toBe(PaymentStatus.DECLINED);
    expect(payment?.declineReason).toBe(DeclineReason.INSUFFICIENT_FUNDS);
    expect(await balanceOf(clients, payer)).toMatchObject({ available: 100n, held: 0n });
  });

  it('refunds partially then fully, never above the captured amount', async () => {
    const payer = await fundedAccount(clients, 1_000n);
    const payee = await openAccount(clients);
    const paymentId = await authorizeHold(clients, payer, payee, 800n);
    await clients.payments.capturePayment({
      idempotencyKey: key(),
      paymentId,
      amount: { amountMinor: 600n, currency: 'USD' },
    });
    const first = await clients.payments.refundPayment({
      idempotencyKey: key(),
      paymentId,
      amount: { amountMinor: 200n, currency: 'USD' },
      reason: 'one item returned',
    });
    expect(first.refund?.status).toBe(RefundStatus.COMPLETED);
    expect(first.refund?.id).toMatch(/^ref_/);
    expect(first.payment?.status).toBe(PaymentStatus.PARTIALLY_REFUNDED);
    expect(
      await refusal(
        clients.payments.refundPayment({
          idempotencyKey: key(),
          paymentId,
          amount: { amountMinor: 401n, currency: 'USD' },
        }),
      ),
    ).toEqual({ code: 'FailedPrecondition', reason: 'REFUND_EXCEEDS_CAPTURED' });
    const rest = await clients.payments.refundPayment({ idempotencyKey: key(), paymentId });
    expect(rest.refund?.amount?.amountMinor).toBe(400n);
    expect(rest.payment?.status).toBe(PaymentStatus.REFUNDED);
    expect(rest.payment?.refundedAmount?.amountMinor).toBe(600n);
    expect(await balanceOf(clients, payer)).toMatchObject({ available: 1_000n, held: 0n });
    expect(await balanceOf(clients, payee)).toMatchObject({ available: 0n });
    expect(await refusal(clients.payments.refundPayment({ idempotencyKey: key(), paymentId }))).toEqual({
      code: 'FailedPrecondition',
      reason: 'PAYMENT_NOT_REFUNDABLE',
    });
  });

  it('declines a refund the payee cannot fund, moving nothing', async () => {
    const payer = await fundedAccount(clients, 500n);
    const payee = await openAccount(clients);
    const elsewhere = await openAccount(clients);
    const { payment } = await clients.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: payer,
      payeeAccountId: payee,
      amount: { amountMinor: 300n, currency: 'USD' },
    });
    // The payee spends the money before the refund arrives.
    await clients.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: payee,
      payeeAccountId: elsewhere,
      amount: { amountMinor: 250n, currency: 'USD' },
    });
    const { refund, payment: after } = await clients.payments.refundPayment({
      idempotencyKey: key(),
      paymentId: payment!.id,
    });
    expect(refund?.status).toBe(RefundStatus.DECLINED);
    expect(refund?.declineReason).toBe(DeclineReason.INSUFFICIENT_FUNDS);
    expect(after?.status).toBe(PaymentStatus.COMPLETED);
    expect(after?.refundedAmount?.amountMinor).toBe(0n);
    expect(await balanceOf(clients, payee)).toMatchObject({ available: 50n });
  });

  it('replays captures and refunds by key without a second effect', async () => {
    const payer = await fundedAccount(clients, 1_000n);
    const payee = await openAccount(clients);
    const paymentId = await authorizeHold(clients, payer, payee, 500n);
    const capture = { idempotencyKey: key(), paymentId };
    const first = await clients.payments.capturePayment(capture);
    const second = await clients.payments.capturePayment(capture);
    expect(second.payment).toEqual(first.payment);
    const refund = { idempotencyKey: key(), paymentId, amount: { amountMinor: 100n, currency: 'USD' } };
    const refunded = await clients.payments.refundPayment(refund);
    const replayed = await clients.payments.refundPayment(refund);
    expect(replayed.refund).toEqual(refunded.refund);
    expect(await balanceOf(clients, payer)).toMatchObject({ available: 600n });
  });

  it('lands merchant captures in pending settlement until a settlement run', async () => {
    const payer = await fundedAccount(clients, 10_000n);
    const merchant = await merchantAccount(clients);
    const automatic = await clients.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: payer,
      payeeAccountId: merchant,
      amount: { amountMinor: 1_000n, currency: 'USD' },
    });
    const holdId = await authorizeHold(clients, payer, merchant, 3_000n);
    await clients.payments.capturePayment({
      idempotencyKey: key(),
      paymentId: holdId,
      amount: { amountMinor: 2_000n, currency: 'USD' },
    });
    // Refunded before settlement: taken from pending settlement.
    await clients.payments.refundPayment({
      idempotencyKey: key(),
      paymentId: automatic.payment!.id,
      amount: { amountMinor: 300n, currency: 'USD' },
    });
    expect(await balanceOf(clients, merchant)).toEqual({ available: 0n, held: 0n, pending: 2_700n, posted: 2_700n });

    const { settlements } = await clients.settlements.runSettlement({ accountId: merchant });
    expect(settlements).toHaveLength(1);
    const [settlement] = settlements;
    expect(settlement?.gross?.amountMinor).toBe(3_000n);
    expect(settlement?.refunds?.amountMinor).toBe(300n);
    expect(settlement?.net?.amountMinor).toBe(2_700n);
    expect(settlement?.paymentCount).toBe(2n);
    expect([...settlement!.paymentIds].sort()).toEqual([automatic.payment!.id, holdId].sort());
    expect(await balanceOf(clients, merchant)).toEqual({ available: 2_700n, held: 0n, pending: 0n, posted: 2_700n });
    const covered = await clients.payments.getPayment({ paymentId: holdId });
    expect(covered.payment?.settlementId).toBe(settlement?.id);

    // Nothing is settled twice, and refunds after settlement come from available.
    expect((await clients.settlements.runSettlement({ accountId: merchant })).settlements).toHaveLength(0);
    await clients.payments.refundPayment({
      idempotencyKey: key(),
      paymentId: holdId,
      amount: { amountMinor: 500n, currency: 'USD' },
    });
    expect(await balanceOf(clients, merchant)).toMatchObject({ available: 2_200n, pending: 0n });

    const read = await clients.settlements.getSettlement({ settlementId: settlement!.id });
    expect(read.settlement).toEqual(settlement);
    const listed = await clients.settlements.listSettlements({ accountId: merchant });
    expect(listed.settlements.map((item) => item.id)).toEqual([settlement!.id]);
    expect(
      await refusal(clients.settlements.getSettlement({ settlementId: 'stl_00000000000000000000000000' })),
    ).toEqual({
      code: 'NotFound',
      reason: 'SETTLEMENT_NOT_FOUND',
    });
  });

  it('reports a clean ledger through the admin RPC', async () => {
    const report = await clients.admin.checkLedger({});
    expect(report.passed).toBe(true);
    expect(report.checks.map((check) => check.name)).toContain('payment_entries_match_status');
  });
});
