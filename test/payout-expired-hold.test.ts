/**
 * A payout weighs what the account can really spend: from its expiry a hold no longer reduces it, whether or
 * not the sweeper has run (issue 11.12, already true for payments). PayoutFunds, added later, still counted an
 * expired hold and refused INSUFFICIENT_FUNDS until the sweeper came by. The expired hold is released in the
 * payout's own transaction; a payout refused all the same releases nothing (a refusal writes nothing).
 */
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorDetailSchema } from '../gen/payment/v1/errors_pb.js';
import { CaptureMode, PaymentStatus } from '../gen/payment/v1/payment_pb.js';
import { connectErrorOf } from './support/calls.js';
import { type Clients, clientsFor, type ProtocolName } from './support/clients.js';
import { balanceOf, fundedAccount, key, openAccount } from './support/fixtures.js';
import { ledgerViolations } from './support/ledger-invariants.js';
import { startTestServer, type TestServer } from './support/server.js';
import { within } from './support/waits.js';

let server: TestServer;
beforeAll(async () => {
  // One-second holds expire during the test; the sweeper must not be what releases them.
  server = await startTestServer({ HOLD_MIN_SECONDS: '1', HOLD_SWEEP_INTERVAL_SECONDS: '86400' });
});
afterAll(async () => {
  await server?.stop();
});

/** A one-second hold of `amountMinor` on `payer`, once the server's clock (this host's) has passed its expiry. */
async function expiredHold(clients: Clients, payer: string, amountMinor: bigint): Promise<string> {
  const { payment: hold } = await clients.payments.authorizePayment({
    idempotencyKey: key(),
    payerAccountId: payer,
    payeeAccountId: await openAccount(clients),
    amount: { amountMinor, currency: 'USD' },
    captureMode: CaptureMode.MANUAL,
    holdDuration: { seconds: 1n, nanos: 0 },
  });
  const expiresAtMs = Number(hold!.expireTime!.seconds) * 1000 + hold!.expireTime!.nanos / 1e6;
  await within(
    (async () => {
      while (Date.now() <= expiresAtMs + 5) await new Promise((resolve) => setTimeout(resolve, 20));
    })(),
    10_000,
    'the hold expiring',
  );
  return hold!.id;
}

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

it('leaves the ledger balanced', async () => {
  expect(await ledgerViolations(server.database)).toEqual([]);
});
