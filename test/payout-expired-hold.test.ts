/**
 * A payout weighs what the account can really spend: from its expiry a hold no longer reduces it, whether or
 * not the sweeper has run (issue 11.12, already true for payments). PayoutFunds, added later, still counted an
 * expired hold and refused INSUFFICIENT_FUNDS until the sweeper came by. The expired hold is released in the
 * payout's own transaction; a payout refused all the same releases nothing (a refusal writes nothing).
 */
import { Code } from '@connectrpc/connect';
import { beforeAll, describe, expect, it } from 'vitest';
import { ErrorDetailSchema } from '../gen/payment/v1/errors_pb.js';
import { PaymentStatus } from '../gen/payment/v1/payment_pb.js';
import { connectErrorOf } from './support/calls.js';
import { type Clients, clientsFor, type ProtocolName } from './support/clients.js';
import { balanceOf, expiredHold, fundedAccount, key } from './support/fixtures.js';
import { serverForFile } from './support/server.js';

// One-second holds expire during the test; the sweeper must not be what releases them.
const server = serverForFile(
  { HOLD_MIN_SECONDS: '1', HOLD_SWEEP_INTERVAL_SECONDS: '86400' },
  { checkLedgerAfterEach: true },
);

describe.each(['connect-json', 'grpc'] satisfies ProtocolName[])('over %s', (protocol) => {
  let clients: Clients;
  beforeAll(() => {
    clients = clientsFor(protocol, server.url);
  });
  const payout = (accountId: string, amountMinor: bigint) =>
    clients.accounts.payoutFunds({ idempotencyKey: key(), accountId, amount: { amountMinor, currency: 'USD' } });

  it('pays out money an expired hold no longer reserves, before the sweeper runs', async () => {
    const account = await fundedAccount(clients, 1_000n);
    const hold = await expiredHold(clients, account, 700n);
    const { payout: paid } = await payout(account, 1_000n);
    expect(paid?.amount?.amountMinor).toBe(1_000n);
    expect((await clients.payments.getPayment({ paymentId: hold })).payment?.status).toBe(PaymentStatus.EXPIRED);
    expect(await balanceOf(clients, account)).toMatchObject({ available: 0n, held: 0n, posted: 0n });
  });

  it('releases nothing when the payout is refused all the same', async () => {
    const account = await fundedAccount(clients, 1_000n);
    const hold = await expiredHold(clients, account, 700n);
    const error = await connectErrorOf(payout(account, 1_001n));
    expect(Code[error.code]).toBe('FailedPrecondition');
    expect(error.findDetails(ErrorDetailSchema)[0]?.reason).toBe('INSUFFICIENT_FUNDS');
    expect(error.rawMessage).toContain('1000 minor units');
    expect((await clients.payments.getPayment({ paymentId: hold })).payment?.status).toBe(PaymentStatus.AUTHORIZED);
    expect(await balanceOf(clients, account)).toMatchObject({ available: 300n, held: 700n });
  });
});
