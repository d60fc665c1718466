/**
 * Who may move which money, over every protocol: credentials are checked (UNAUTHENTICATED), methods are
 * checked against the caller (PERMISSION_DENIED), and someone else's resource is indistinguishable from a
 * missing one (NOT_FOUND), with nothing changed.
 */
import http from 'node:http';
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaptureMode, PaymentStatus } from '../gen/payment/v1/payment_pb.js';
import { createApiKey, revokeApiKey } from '../src/auth/api-keys.js';
import { type Clients, clientsFor, PROTOCOLS } from './support/clients.js';
import { type Credentials, signForeignToken, signToken } from './support/credentials.js';
import { key } from './support/fixtures.js';
import { ledgerViolations } from './support/ledger-invariants.js';
import { startTestServer, type TestServer } from './support/server.js';

let server: TestServer;
let backend: Clients;
let alicePayer: string;
let bobAccount: string;
let aliceToken: string;
let bobToken: string;

async function codeOf(call: Promise<unknown>): Promise<string> {
  return call.then(
    () => 'OK',
    (error: unknown) => Code[ConnectError.from(error).code],
  );
}

async function openOwned(ownerRef: string, depositMinor: bigint): Promise<string> {
  const { account } = await backend.accounts.createAccount({ idempotencyKey: key(), ownerRef, currency: 'USD' });
  if (depositMinor > 0n) {
    await backend.accounts.depositFunds({
      idempotencyKey: key(),
      accountId: account!.id,
      amount: { amountMinor: depositMinor, currency: 'USD' },
    });
  }
  return account!.id;
}

async function postedOf(accountId: string): Promise<bigint> {
  return (await backend.payments.getAccountBalance({ accountId })).balance!.posted!.amountMinor;
}

beforeAll(async () => {
  server = await startTestServer();
  backend = clientsFor('connect-json', server.url);
  alicePayer = await openOwned('alice-id', 10_000n);
  bobAccount = await openOwned('bob-id', 10_000n);
  aliceToken = await signToken('alice-id');
  bobToken = await signToken('bob-id');
});
afterAll(async () => {
  expect(await ledgerViolations(server.database)).toEqual([]);
  await server?.stop();
});

describe.each(PROTOCOLS)('over %s', (protocol) => {
  const as = (credentials: Credentials) => clientsFor(protocol, server.url, credentials);

  it('refuses missing and unusable credentials with UNAUTHENTICATED, saying which but never why', async () => {
    const revoked = await createApiKey(server.service.database.db, 'to-revoke', ['payments:read']);
    await revokeApiKey(server.service.database.db, revoked.id);
    const cases: [string, Credentials, string][] = [
      ['no credentials', {}, 'missing credentials'],
      ['an expired token', { token: await signToken('alice-id', { expiresIn: -120 }) }, 'invalid bearer token'],
      ['a token not valid yet', { token: await signToken('alice-id', { notBefore: 600 }) }, 'invalid bearer token'],
      ['a wrong issuer', { token: await signToken('alice-id', { issuer: 'https://other' }) }, 'invalid bearer token'],
      ['a wrong audience', { token: await signToken('alice-id', { audience: 'other' }) }, 'invalid bearer token'],
      ['a bad signature', { token: await signForeignToken('alice-id') }, 'invalid bearer token'],
      ['a garbled token', { token: 'not.a.jwt' }, 'invalid bearer token'],
      ['a revoked API key', { apiKey: revoked.key }, 'invalid API key'],
      ['an unknown API key', { apiKey: `plk_0123456789abcdef_${'A'.repeat(43)}` }, 'invalid API key'],
    ];
    for (const [what, credentials, message] of cases) {
      const error = await as(credentials)
        .payments.getAccountBalance({ accountId: alicePayer })
        .then(
          () => undefined,
          (caught: unknown) => ConnectError.from(caught),
        );
      expect(error?.code, what).toBe(Code.Unauthenticated);
      expect(error?.rawMessage, what).toContain(message);
      expect(error?.rawMessage, what).not.toMatch(/signature|expired|issuer|audience|claim|nbf|exp/i);
    }
  });

  it('lets a user read and pay from their own account', async () => {
    const alice = as({ token: aliceToken });
    expect((await alice.payments.getAccountBalance({ accountId: alicePayer })).balance?.accountId).toBe(alicePayer);
    const { payment } = await alice.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: alicePayer,
      payeeAccountId: bobAccount,
      amount: { amountMinor: 5n, currency: 'USD' },
    });
    expect(payment?.status).toBe(PaymentStatus.COMPLETED);
    // Both parties see the payment; a third user does not.
    expect((await as({ token: bobToken }).payments.getPayment({ paymentId: payment!.id })).payment?.id).toBe(
      payment!.id,
    );
    const carol = as({ token: await signToken('carol-id') });
    expect(await codeOf(carol.payments.getPayment({ paymentId: payment!.id }))).toBe('NotFound');
  });

  it("answers NOT_FOUND for another user's account, exactly as for a missing one, and changes nothing", async () => {
    const bob = as({ token: bobToken });
    const before = [await postedOf(alicePayer), await postedOf(bobAccount)];
    const stealing = await bob.payments
      .authorizePayment({
        idempotencyKey: key(),
        payerAccountId: alicePayer,
        payeeAccountId: bobAccount,
        amount: { amountMinor: 100n, currency: 'USD' },
      })
      .then(
        () => undefined,
        (caught: unknown) => ConnectError.from(caught),
      );
    const missing = await bob.payments
      .authorizePayment({
        idempotencyKey: key(),
        payerAccountId: 'acct_00000000000000000000000000',
        payeeAccountId: bobAccount,
        amount: { amountMinor: 100n, currency: 'USD' },
      })
      .then(
        () => undefined,
        (caught: unknown) => ConnectError.from(caught),
      );
    expect(stealing?.code).toBe(Code.NotFound);
    expect(missing?.code).toBe(Code.NotFound);
    expect(stealing?.rawMessage.replace(alicePayer, 'ID')).toBe(
      missing?.rawMessage.replace('acct_00000000000000000000000000', 'ID'),
    );
    expect(await codeOf(bob.payments.getAccountBalance({ accountId: alicePayer }))).toBe('NotFound');
    expect(await codeOf(bob.accounts.getAccount({ accountId: alicePayer }))).toBe('NotFound');
    expect(await codeOf(bob.accounts.listLedgerEntries({ accountId: alicePayer }))).toBe('NotFound');
    expect([await postedOf(alicePayer), await postedOf(bobAccount)]).toEqual(before);
  });

  it('keeps account creation, deposits, settlement and the ledger check for backends', async () => {
    const alice = as({ token: aliceToken });
    expect(
      await codeOf(alice.accounts.createAccount({ idempotencyKey: key(), ownerRef: 'alice-id', currency: 'USD' })),
    ).toBe('PermissionDenied');
    expect(
      await codeOf(
        alice.accounts.depositFunds({
          idempotencyKey: key(),
          accountId: alicePayer,
          amount: { amountMinor: 1n, currency: 'USD' },
        }),
      ),
    ).toBe('PermissionDenied');
    expect(await codeOf(alice.settlements.runSettlement({}))).toBe('PermissionDenied');
    expect(await codeOf(alice.admin.checkLedger({}))).toBe('PermissionDenied');
  });

  it('lets only the payee side capture: a backend with the scope, or the payee owner', async () => {
    const hold = async () =>
      (
        await as({ token: aliceToken }).payments.authorizePayment({
          idempotencyKey: key(),
          payerAccountId: alicePayer,
          payeeAccountId: bobAccount,
          amount: { amountMinor: 10n, currency: 'USD' },
          captureMode: CaptureMode.MANUAL,
        })
      ).payment!.id;
    const readOnly = await createApiKey(server.service.database.db, 'reader', ['payments:read']);
    const capturer = await createApiKey(server.service.database.db, 'capturer', ['payments:capture']);

    const first = await hold();
    expect(
      await codeOf(as({ apiKey: readOnly.key }).payments.capturePayment({ idempotencyKey: key(), paymentId: first })),
    ).toBe('PermissionDenied');
    // The payer cannot capture their own hold: for them, as payer, there is nothing to capture.
    expect(
      await codeOf(as({ token: aliceToken }).payments.capturePayment({ idempotencyKey: key(), paymentId: first })),
    ).toBe('NotFound');
    expect((await backend.payments.getPayment({ paymentId: first })).payment?.status).toBe(PaymentStatus.AUTHORIZED);
    const captured = await as({ apiKey: capturer.key }).payments.capturePayment({
      idempotencyKey: key(),
      paymentId: first,
    });
    expect(captured.payment?.status).toBe(PaymentStatus.COMPLETED);

    const second = await hold();
    const byPayee = await as({ token: bobToken }).payments.voidPayment({ idempotencyKey: key(), paymentId: second });
    expect(byPayee.payment?.status).toBe(PaymentStatus.VOIDED);
  });

  it('scopes idempotency keys per principal: one key, two callers, two independent payments', async () => {
    const shared = key('shared');
    const request = (payer: string, payee: string) => ({
      idempotencyKey: shared,
      payerAccountId: payer,
      payeeAccountId: payee,
      amount: { amountMinor: 3n, currency: 'USD' },
    });
    const byAlice = await as({ token: aliceToken }).payments.authorizePayment(request(alicePayer, bobAccount));
    const byBob = await as({ token: bobToken }).payments.authorizePayment(request(bobAccount, alicePayer));
    expect(byAlice.payment?.id).not.toBe(byBob.payment?.id);
    expect(byAlice.payment?.status).toBe(PaymentStatus.COMPLETED);
    expect(byBob.payment?.status).toBe(PaymentStatus.COMPLETED);
    // Each replays its own.
    const again = await as({ token: bobToken }).payments.authorizePayment(request(bobAccount, alicePayer));
    expect(again.payment?.id).toBe(byBob.payment?.id);
  });

  it('serves health checks without credentials', async () => {
    const response = await fetch(`${server.url}/healthz`);
    expect(response.status).toBe(200);
  });
});

it('refuses a deadline longer than the configured maximum before doing any work', async () => {
  // A maximum far above what a create takes even on a loaded machine, so the call within it is not cut short.
  const limited = await startTestServer({ MAX_REQUEST_TIMEOUT_MS: '20000' });
  try {
    const clients = clientsFor('grpc', limited.url);
    const [before] = await limited.database.query<{ n: string }>('select count(*)::text as n from accounts');
    const refused = await codeOf(
      clients.accounts.createAccount({ idempotencyKey: key(), ownerRef: 'x', currency: 'USD' }, { timeoutMs: 60_000 }),
    );
    expect(refused).toBe('InvalidArgument');
    const [after] = await limited.database.query<{ n: string }>('select count(*)::text as n from accounts');
    expect(after?.n).toBe(before?.n);
    expect(
      await codeOf(
        clients.accounts.createAccount(
          { idempotencyKey: key(), ownerRef: 'x', currency: 'USD' },
          { timeoutMs: 10_000 },
        ),
      ),
    ).toBe('OK');
  } finally {
    await limited.stop();
  }
});

describe('credential headers as HTTP writes them', () => {
  /** GetAccountBalance of Alice's account over Connect JSON on HTTP/1.1, with headers as given (arrays repeat). */
  function balanceCall(headers: Record<string, string | string[]>) {
    const url = new URL('/payment.v1.PaymentService/GetAccountBalance', server.url);
    const body = JSON.stringify({ accountId: alicePayer });
    return new Promise<{ status: number; body: { code?: string; message?: string } }>((resolve, reject) => {
      const request = http.request(url, {
        method: 'POST',
        headers: Object.assign({ 'content-type': 'application/json', 'connect-protocol-version': '1' }, headers),
      });
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') }),
        );
      });
      request.on('error', reject);
      request.end(body);
    });
  }

  it('takes the Bearer scheme in any case, with one or more spaces (RFC 9110)', async () => {
    for (const authorization of [`bearer ${aliceToken}`, `BEARER  ${aliceToken}`, `Bearer ${aliceToken}`]) {
      expect({
        authorization: authorization.split(' ')[0],
        status: (await balanceCall({ authorization })).status,
      }).toEqual({ authorization: authorization.split(' ')[0], status: 200 });
    }
  });

  it('refuses a credential header sent twice, even the same value twice, instead of picking one', async () => {
    // HTTP keeps only the first Authorization header: Bob's token first read Bob's view of Alice's account.
    const cases: Record<string, string | string[]>[] = [
      { authorization: [`Bearer ${bobToken}`, `Bearer ${aliceToken}`] },
      { authorization: [`Bearer ${aliceToken}`, `Bearer ${aliceToken}`] },
      { 'x-api-key': [server.backendKey, server.backendKey] },
    ];
    for (const headers of cases) {
      const answer = await balanceCall(headers);
      expect({ headers: Object.keys(headers), status: answer.status, code: answer.body.code }).toEqual({
        headers: Object.keys(headers),
        status: 401,
        code: 'unauthenticated',
      });
      expect(answer.body.message).toContain('send exactly one credential');
    }
  });
});
