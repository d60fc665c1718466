/**
 * google.protobuf.Timestamp and Duration fields out of the range their definitions give. JSON cannot carry
 * such a value (RFC 3339 stops at year 9999), but a binary message carries any int64 seconds and int32 nanos:
 * ListPayments with a create_time_from past year 9999 answered INTERNAL ("Invalid time value" from Date, or
 * PostgreSQL's out-of-range error), and a hold_duration with negative nanos was quietly read as a shorter hold.
 * Every such value is INVALID_ARGUMENT naming the field, and changes nothing.
 */
import { Code } from '@connectrpc/connect';
import { beforeAll, describe, expect, it } from 'vitest';
import { ErrorDetailSchema } from '../gen/payment/v1/errors_pb.js';
import { CaptureMode } from '../gen/payment/v1/payment_pb.js';
import { connectErrorOf } from './support/calls.js';
import { type Clients, clientsFor, type ProtocolName } from './support/clients.js';
import { balanceOf, fundedAccount, key, openAccount } from './support/fixtures.js';
import { serverForFile } from './support/server.js';

const server = serverForFile({ LOG_LEVEL: 'error' });

async function refusal(call: Promise<unknown>): Promise<{ code: string; field?: string; message: string }> {
  const error = await connectErrorOf(call);
  const detail = error.findDetails(ErrorDetailSchema)[0];
  return { code: Code[error.code], field: detail?.field, message: error.rawMessage };
}

describe.each(['grpc', 'grpc-web'] satisfies ProtocolName[])('over %s', (protocol) => {
  let clients: Clients;
  let payer: string;
  let payee: string;
  beforeAll(async () => {
    clients = clientsFor(protocol, server.url);
    payer = await fundedAccount(clients, 10_000n);
    payee = await openAccount(clients);
  });

  it.each([
    ['create_time_from', '2^62 s', { createTimeFrom: { seconds: 2n ** 62n, nanos: 0 } }],
    ['create_time_from', '-2^62 s', { createTimeFrom: { seconds: -(2n ** 62n), nanos: 0 } }],
    ['create_time_to', 'year 10000', { createTimeTo: { seconds: 253_402_300_800n, nanos: 0 } }],
    ['create_time_to', 'negative nanos', { createTimeTo: { seconds: 1n, nanos: -1 } }],
    ['create_time_from', '10^9 nanos', { createTimeFrom: { seconds: 1n, nanos: 1_000_000_000 } }],
  ])('ListPayments refuses a %s out of range (%s)', async (field, _label, filter) => {
    const error = await refusal(clients.payments.listPayments({ accountId: payer, ...filter }));
    expect(error).toMatchObject({ code: 'InvalidArgument', field });
  });

  it('ListPayments takes the last time a Timestamp can hold, as either bound', async () => {
    const other = await fundedAccount(clients, 500n);
    await clients.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: other,
      payeeAccountId: payee,
      amount: { amountMinor: 100n, currency: 'USD' },
    });
    const last = { seconds: 253_402_300_799n, nanos: 999_999_999 };
    const upTo = await clients.payments.listPayments({ accountId: other, createTimeTo: last });
    expect(upTo.payments).toHaveLength(1);
    const from = await clients.payments.listPayments({ accountId: other, createTimeFrom: last });
    expect(from.payments).toEqual([]);
  });

  it.each([
    ['3600 s and -1 ns', { seconds: 3_600n, nanos: -1 }],
    ['3600 s and 10^9 ns', { seconds: 3_600n, nanos: 1_000_000_000 }],
    ['2^62 s', { seconds: 2n ** 62n, nanos: 0 }],
  ])('AuthorizePayment refuses hold_duration %s and holds nothing', async (_label, holdDuration) => {
    const error = await refusal(
      clients.payments.authorizePayment({
        idempotencyKey: key(),
        payerAccountId: payer,
        payeeAccountId: payee,
        amount: { amountMinor: 100n, currency: 'USD' },
        captureMode: CaptureMode.MANUAL,
        holdDuration,
      }),
    );
    expect(error).toMatchObject({ code: 'InvalidArgument', field: 'hold_duration' });
    expect(await balanceOf(clients, payer)).toMatchObject({ available: 10_000n, held: 0n });
  });
});
