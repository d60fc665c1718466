/**
 * ErrorDetail.field on the account-status refusals (issue 11.11: fill the field wherever there is one). A
 * payout from a frozen account answered ACCOUNT_INACTIVE with an empty field while a deposit to the same
 * account named account_id; ACCOUNT_NOT_EMPTY and ACCOUNT_CLOSED named nothing either.
 */
import { Code } from '@connectrpc/connect';
import { beforeAll, describe, expect, it } from 'vitest';
import { ErrorDetailSchema } from '../gen/payment/v1/errors_pb.js';
import { connectErrorOf } from './support/calls.js';
import { type Clients, clientsFor, type ProtocolName } from './support/clients.js';
import { balanceOf, fundedAccount, key, openAccount } from './support/fixtures.js';
import { serverForFile } from './support/server.js';

const server = serverForFile();

async function refusal(call: Promise<unknown>) {
  const error = await connectErrorOf(call);
  const detail = error.findDetails(ErrorDetailSchema)[0];
  return { code: Code[error.code], reason: detail?.reason, field: detail?.field };
}

describe.each(['connect-json', 'grpc'] satisfies ProtocolName[])('over %s', (protocol) => {
  let clients: Clients;
  beforeAll(() => {
    clients = clientsFor(protocol, server.url);
  });

  it('names account_id when a payout, a deposit or a close is refused by the account status', async () => {
    const account = await fundedAccount(clients, 1_000n);
    await clients.accounts.freezeAccount({ idempotencyKey: key(), accountId: account, reason: 'review' });
    const amount = { amountMinor: 100n, currency: 'USD' };
    const expected = { code: 'FailedPrecondition', reason: 'ACCOUNT_INACTIVE', field: 'account_id' };
    expect(await refusal(clients.accounts.payoutFunds({ idempotencyKey: key(), accountId: account, amount }))).toEqual(
      expected,
    );
    expect(await refusal(clients.accounts.depositFunds({ idempotencyKey: key(), accountId: account, amount }))).toEqual(
      expected,
    );
    expect(await refusal(clients.accounts.closeAccount({ idempotencyKey: key(), accountId: account }))).toEqual({
      code: 'FailedPrecondition',
      reason: 'ACCOUNT_NOT_EMPTY',
      field: 'account_id',
    });
    expect((await balanceOf(clients, account)).available).toBe(1_000n);
  });

  it('names account_id when a closed account is asked to change again', async () => {
    const account = await openAccount(clients);
    await clients.accounts.closeAccount({ idempotencyKey: key(), accountId: account });
    expect(await refusal(clients.accounts.freezeAccount({ idempotencyKey: key(), accountId: account }))).toEqual({
      code: 'FailedPrecondition',
      reason: 'ACCOUNT_CLOSED',
      field: 'account_id',
    });
  });
});
