/**
 * Malformed and extreme inputs at the edges (issue 11): each gets a clear INVALID_ARGUMENT (or the documented
 * refusal) naming the field, over Connect JSON and the binary protocols, and a refused request changes
 * nothing. Raw Connect JSON requests cover what a generated client can never send (numbers beyond 2^53,
 * "0x10", unknown enum names).
 */
import { fromBinary } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AccountType } from '../gen/payment/v1/account_pb.js';
import { ErrorDetailSchema } from '../gen/payment/v1/errors_pb.js';
import { CaptureMode, PaymentStatus } from '../gen/payment/v1/payment_pb.js';
import { connectErrorOf } from './support/calls.js';
import { type Clients, clientsFor, type ProtocolName } from './support/clients.js';
import { credentialHeaders, defaultCredentialsFor } from './support/credentials.js';
import { balanceOf, expiredHold, fundedAccount, key, openAccount } from './support/fixtures.js';
import { serverForFile } from './support/server.js';

// One-second holds can expire during the test; the sweeper must not be what releases them.
const server = serverForFile(
  { HOLD_MIN_SECONDS: '1', HOLD_SWEEP_INTERVAL_SECONDS: '86400' },
  { checkLedgerAfterEach: true },
);

async function refusal(
  call: Promise<unknown>,
): Promise<{ code: string; reason?: string; field?: string; message: string }> {
  const error = await connectErrorOf(call);
  const detail = error.findDetails(ErrorDetailSchema)[0];
  return { code: Code[error.code], reason: detail?.reason, field: detail?.field, message: error.rawMessage };
}

/** A Connect JSON request as curl would send it: the body is exactly `body`. */
async function postJson(path: string, body: string) {
  const response = await fetch(`${server.url}/${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'connect-protocol-version': '1',
      ...credentialHeaders(defaultCredentialsFor(server.url)),
    },
    body,
  });
  const json = (await response.json()) as Record<string, unknown>;
  return { status: response.status, json };
}

const DEPOSIT = 'payment.v1.AccountService/DepositFunds';

/** The ErrorDetail of a Connect JSON error body ({"details":[{"type":…,"value":base64}]}). */
function errorDetailOf(json: Record<string, unknown>) {
  const details = (json.details ?? []) as { type: string; value: string }[];
  const detail = details.find((d) => d.type === ErrorDetailSchema.typeName);
  return detail ? fromBinary(ErrorDetailSchema, Buffer.from(detail.value, 'base64')) : undefined;
}

function depositBody(accountId: string, amountJson: string, currency = 'USD'): string {
  return `{"idempotencyKey":"${key('raw')}","accountId":"${accountId}","amount":{"amountMinor":${amountJson},"currency":"${currency}"}}`;
}

describe('int64 read from Connect JSON', () => {
  let accountId: string;
  let clients: Clients;
  beforeAll(async () => {
    clients = clientsFor('connect-json', server.url);
    accountId = await openAccount(clients);
  });

  it.each([
    ['a number beyond 2^53', '9007199254740993'],
    ['a number with a fraction', '10.5'],
    ['a number that only rounds to an integer', '1.0000000000000001'],
    ['an exponent', '1e3'],
    ['a hex string', '"0x10"'],
    ['a binary string', '"0b11"'],
    ['an octal string', '"0o17"'],
    ['a leading space', '" 10"'],
    ['a trailing space', '"10 "'],
    ['a plus sign', '"+10"'],
    ['a leading zero', '"010"'],
    ['an empty string', '""'],
    ['a string beyond int64', '"9223372036854775808"'],
  ])('refuses %s (%s) and credits nothing', async (_label, amountJson) => {
    const { status, json } = await postJson(DEPOSIT, depositBody(accountId, amountJson));
    expect(json.code).toBe('invalid_argument');
    expect(status).toBe(400);
    expect(errorDetailOf(json)?.field).toBe('amount.amount_minor');
    expect((await balanceOf(clients, accountId)).posted).toBe(0n);
  });

  it('reads canonical decimal strings and safe numbers exactly', async () => {
    const asString = await postJson(DEPOSIT, depositBody(accountId, '"12345678"'));
    expect(asString.status).toBe(200);
    expect((asString.json.deposit as { amount: { amountMinor: string } }).amount.amountMinor).toBe('12345678');
    const asNumber = await postJson(DEPOSIT, depositBody(accountId, '7'));
    expect(asNumber.status).toBe(200);
    expect((await balanceOf(clients, accountId)).posted).toBe(12345685n);
  });
});

it('credits exactly the strict reading of every accepted JSON amount, and nothing for a refused one', async () => {
  const clients = clientsFor('connect-json', server.url);
  const accountId = await openAccount(clients);
  let expected = 0n;
  // Small amounts written every way a client might; the decoder's own property test covers the whole range.
  const written = fc
    .tuple(fc.constantFrom('', ' ', '+', '0', '0x', '-', '00'), fc.bigInt({ min: 0n, max: 999n }), fc.boolean())
    .map(([prefix, value, quoted]) => (quoted ? `"${prefix}${value}"` : `${prefix}${value}`));
  await fc.assert(
    fc.asyncProperty(written, async (amountJson) => {
      const { status } = await postJson(DEPOSIT, depositBody(accountId, amountJson));
      // Whitespace around a JSON number is JSON's, not the number's; inside a string it is part of the value.
      const canonical = /^(?:"([1-9][0-9]*)"|\s*([1-9][0-9]*))$/.exec(amountJson);
      expect(status).toBe(canonical ? 200 : 400);
      if (canonical) expected += BigInt(canonical[1] ?? canonical[2]!);
      expect((await balanceOf(clients, accountId)).posted).toBe(expected);
    }),
    // The account's balance carries over between runs, so a failure is reported as found, not shrunk.
    { numRuns: 40, endOnFailure: true },
  );
});

it('answers an unknown JSON field without repeating more than a short piece of it', async () => {
  const { status, json } = await postJson(DEPOSIT, `{"${'k'.repeat(20_000)}":1}`);
  expect(status).toBe(400);
  expect(json.code).toBe('invalid_argument');
  expect(String(json.message).length).toBeLessThan(200);
});

it('refuses invalid UTF-8 inside a binary message with INVALID_ARGUMENT, before any work', async () => {
  // GetAccountBalanceRequest { account_id = "ab\xff" }: field 1, length 3, one byte that is no UTF-8.
  const message = Buffer.from([0x0a, 0x03, 0x61, 0x62, 0xff]);
  const response = await fetch(`${server.url}/payment.v1.PaymentService/GetAccountBalance`, {
    method: 'POST',
    headers: {
      'content-type': 'application/proto',
      'connect-protocol-version': '1',
      ...credentialHeaders(defaultCredentialsFor(server.url)),
    },
    body: message,
  });
  const json = (await response.json()) as Record<string, unknown>;
  expect(response.status).toBe(400);
  expect(json.code).toBe('invalid_argument');
});

it('sends back a client x-request-id only when it is a short token', async () => {
  const echo = async (requestId: string) => {
    const response = await fetch(`${server.url}/healthz`, { headers: { 'x-request-id': requestId } });
    await response.arrayBuffer();
    return response.headers.get('x-request-id');
  };
  expect(await echo('req-42.a:b')).toBe('req-42.a:b');
  expect(await echo('r'.repeat(8_000))).toMatch(/^[0-9a-f-]{36}$/);
  expect(await echo('two words')).toMatch(/^[0-9a-f-]{36}$/);
});

describe('enum values a client cannot mean', () => {
  it.each([
    ['payment.v1.PaymentService/AuthorizePayment', 'captureMode', '7'],
    ['payment.v1.PaymentService/AuthorizePayment', 'captureMode', '"CAPTURE_MODE_LATER"'],
    ['payment.v1.AccountService/CreateAccount', 'type', '9'],
  ])('%s with %s %s is INVALID_ARGUMENT over Connect JSON', async (path, field, value) => {
    const body = `{"idempotencyKey":"${key()}","ownerRef":"user:test","currency":"USD","payerAccountId":"acct_00000000000000000000000000","payeeAccountId":"acct_00000000000000000000000001","amount":{"amountMinor":"1","currency":"USD"},"${field}":${value}}`;
    const request = JSON.parse(body) as Record<string, unknown>;
    // Each method gets only its own fields; unknown fields are refused for another reason.
    const own = path.endsWith('CreateAccount')
      ? { idempotencyKey: request.idempotencyKey, ownerRef: 'user:test', currency: 'USD', [field]: request[field] }
      : { ...request, ownerRef: undefined, currency: undefined };
    const { status, json } = await postJson(path, JSON.stringify(own));
    expect(status).toBe(400);
    expect(json.code).toBe('invalid_argument');
    expect(JSON.stringify(json)).not.toContain('internal');
  });
});

describe.each(['connect-json', 'grpc', 'grpc-web'] satisfies ProtocolName[])('over %s', (protocol) => {
  let clients: Clients;
  let payer: string;
  let payee: string;
  beforeAll(async () => {
    clients = clientsFor(protocol, server.url);
    payer = await fundedAccount(clients, 10_000n);
    payee = await openAccount(clients);
  });

  const authorize = (init: Record<string, unknown>) =>
    clients.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: payer,
      payeeAccountId: payee,
      amount: { amountMinor: 100n, currency: 'USD' },
      ...init,
    });

  it('refuses an unknown capture mode number and moves no money', async () => {
    const error = await refusal(authorize({ captureMode: 7 as CaptureMode }));
    expect(error).toMatchObject({ code: 'InvalidArgument', field: 'capture_mode' });
    expect((await balanceOf(clients, payer)).available).toBe(10_000n);
  });

  it('refuses an unknown account type number', async () => {
    const error = await refusal(
      clients.accounts.createAccount({
        idempotencyKey: key(),
        ownerRef: 'user:test',
        currency: 'USD',
        type: 9 as AccountType,
      }),
    );
    expect(error).toMatchObject({ code: 'InvalidArgument', field: 'type' });
  });

  it.each([
    ['description', 'lunch\u0000'],
    ['description', 'lunch\u001b[31m'],
    ['description', 'lunch\u007f'],
  ])('refuses a %s holding %j', async (field, value) => {
    const error = await refusal(authorize({ [field]: value }));
    expect(error).toMatchObject({ code: 'InvalidArgument', field, reason: 'FIELD_INVALID' });
    expect((await balanceOf(clients, payer)).available).toBe(10_000n);
  });

  it('refuses a lone surrogate (only Connect JSON can carry one: binary clients send U+FFFD)', async () => {
    const value = protocol === 'connect-json' ? 'half a pair \ud800' : 'half a pair \u0000';
    const error = await refusal(authorize({ description: value }));
    expect(error).toMatchObject({ code: 'InvalidArgument', field: 'description', reason: 'FIELD_INVALID' });
  });

  it('keeps line breaks in a description', async () => {
    const { payment } = await authorize({
      description: 'lunch\nfor two\t(tip incl.)',
      amount: { amountMinor: 1n, currency: 'USD' },
    });
    expect(payment?.description).toBe('lunch\nfor two\t(tip incl.)');
  });

  it('stores quotes, backslashes, JSON-like text and non-BMP characters exactly, and replays them', async () => {
    // The hot path sends each batch's rows as JSON text (writes-prepared.ts): none of this may be reinterpreted.
    const description = 'a "quoted" \\ back\\slash, {"json": [1, null]}, \\u0041 literally, ünï 🎉 \u2028';
    const idempotencyKey = `${key()}-"\\🎉`;
    const request = { idempotencyKey, description, amount: { amountMinor: 3n, currency: 'USD' } };
    const { payment } = await authorize(request);
    const stored = await clients.payments.getPayment({ paymentId: payment!.id });
    expect(stored.payment?.description).toBe(description);
    const replayed = await authorize(request);
    expect(replayed.payment).toEqual(payment);
  });

  it('refuses a NUL refund reason and a NUL owner reference', async () => {
    const { payment } = await authorize({ amount: { amountMinor: 2n, currency: 'USD' } });
    const refund = await refusal(
      clients.payments.refundPayment({ idempotencyKey: key(), paymentId: payment!.id, reason: '\u0000' }),
    );
    expect(refund).toMatchObject({ code: 'InvalidArgument', field: 'reason' });
    const account = await refusal(
      clients.accounts.createAccount({ idempotencyKey: key(), ownerRef: 'user:\u0000', currency: 'USD' }),
    );
    expect(account).toMatchObject({ code: 'InvalidArgument', field: 'owner_ref' });
  });

  it.each([
    ['payment_id', (c: Clients, id: string) => c.payments.getPayment({ paymentId: id })],
    ['account_id', (c: Clients, id: string) => c.accounts.getAccount({ accountId: id })],
    ['account_id', (c: Clients, id: string) => c.payments.getAccountBalance({ accountId: id })],
    ['settlement_id', (c: Clients, id: string) => c.settlements.getSettlement({ settlementId: id })],
  ])('refuses an 8,000-character %s without echoing it, and the connection still serves', async (field, call) => {
    const error = await refusal(call(clients, `acct_${'x'.repeat(8_000)}`));
    expect(error).toMatchObject({ code: 'InvalidArgument', field, reason: 'FIELD_TOO_LONG' });
    expect(error.message.length).toBeLessThan(200);
    expect((await balanceOf(clients, payer)).available).toBeGreaterThan(0n);
  });

  it('echoes at most a short piece of an unknown id', async () => {
    const id = `pay_${'0'.repeat(60)}`;
    const error = await refusal(clients.payments.getPayment({ paymentId: id }));
    expect(error).toMatchObject({ code: 'NotFound', field: 'payment_id' });
    expect(error.message.length).toBeLessThan(120);
  });
});

describe.each(['connect-json', 'grpc'] satisfies ProtocolName[])('state-dependent refusals over %s', (protocol) => {
  let clients: Clients;
  beforeAll(() => {
    clients = clientsFor(protocol, server.url);
  });

  it('refuses a deposit above the configured maximum, and the currency stays usable', async () => {
    const big = await openAccount(clients, 'CHF');
    const other = await openAccount(clients, 'CHF');
    const error = await refusal(
      clients.accounts.depositFunds({
        idempotencyKey: key(),
        accountId: big,
        amount: { amountMinor: 9_223_372_036_854_775_807n, currency: 'CHF' },
      }),
    );
    expect(error).toMatchObject({
      code: 'InvalidArgument',
      reason: 'AMOUNT_ABOVE_LIMIT',
      field: 'amount.amount_minor',
    });
    await clients.accounts.depositFunds({
      idempotencyKey: key(),
      accountId: big,
      amount: { amountMinor: 2n, currency: 'CHF' },
    });
    await clients.accounts.depositFunds({
      idempotencyKey: key(),
      accountId: other,
      amount: { amountMinor: 2n, currency: 'CHF' },
    });
    expect((await balanceOf(clients, other)).posted).toBe(2n);
  });

  it('creates no funding account for a first deposit to an unknown account', async () => {
    const currency = protocol === 'grpc' ? 'GBP' : 'NOK';
    const error = await refusal(
      clients.accounts.depositFunds({
        idempotencyKey: key(),
        accountId: 'acct_00000000000000000000000000',
        amount: { amountMinor: 100n, currency },
      }),
    );
    expect(error).toMatchObject({ code: 'NotFound', reason: 'ACCOUNT_NOT_FOUND', field: 'account_id' });
    const rows = await server.database.query('SELECT id FROM accounts WHERE currency = $1', [currency]);
    expect(rows).toEqual([]);
    // And the currency's first real deposit still finds (makes) its funding account.
    const accountId = await openAccount(clients, currency);
    await clients.accounts.depositFunds({ idempotencyKey: key(), accountId, amount: { amountMinor: 5n, currency } });
    expect((await balanceOf(clients, accountId)).posted).toBe(5n);
  });

  it('refuses forged page tokens before they reach the database', async () => {
    const accountId = await fundedAccount(clients, 10n);
    const forge = (position: string) => Buffer.from(`v1|${accountId}|${position}`).toString('base64url');
    for (const pageToken of [forge('9223372036854775808'), forge('0'), forge('99999999999999999999'), '!!!']) {
      const error = await refusal(clients.accounts.listLedgerEntries({ accountId, pageToken }));
      expect(error).toMatchObject({ code: 'InvalidArgument', reason: 'PAGE_TOKEN_INVALID', field: 'page_token' });
    }
    // Longer than any token of ours: refused by the string rule, before it is decoded.
    const long = await refusal(clients.accounts.listLedgerEntries({ accountId, pageToken: 'x'.repeat(301) }));
    expect(long).toMatchObject({ code: 'InvalidArgument', reason: 'FIELD_TOO_LONG', field: 'page_token' });
    const page = await clients.accounts.listLedgerEntries({ accountId, pageToken: forge('9223372036854775807') });
    expect(page.entries).toHaveLength(1);
  });

  it('answers a capture in another currency like a deposit in another currency', async () => {
    const payer = await fundedAccount(clients, 1_000n);
    const payee = await openAccount(clients);
    const { payment } = await clients.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: payer,
      payeeAccountId: payee,
      amount: { amountMinor: 100n, currency: 'USD' },
      captureMode: CaptureMode.MANUAL,
    });
    const capture = await refusal(
      clients.payments.capturePayment({
        idempotencyKey: key(),
        paymentId: payment!.id,
        amount: { amountMinor: 100n, currency: 'EUR' },
      }),
    );
    const deposit = await refusal(
      clients.accounts.depositFunds({
        idempotencyKey: key(),
        accountId: payer,
        amount: { amountMinor: 1n, currency: 'EUR' },
      }),
    );
    for (const error of [capture, deposit]) {
      expect(error).toMatchObject({
        code: 'FailedPrecondition',
        reason: 'CURRENCY_MISMATCH',
        field: 'amount.currency',
      });
    }
  });

  it('names the field for NOT_FOUND, PAYMENT_NOT_AUTHORIZED and credentials', async () => {
    const payer = await fundedAccount(clients, 1_000n);
    const unknown = 'acct_00000000000000000000000000';
    const pay = (payerAccountId: string, payeeAccountId: string) =>
      clients.payments.authorizePayment({
        idempotencyKey: key(),
        payerAccountId,
        payeeAccountId,
        amount: { amountMinor: 1n, currency: 'USD' },
      });
    expect(await refusal(pay(unknown, payer))).toMatchObject({ code: 'NotFound', field: 'payer_account_id' });
    expect(await refusal(pay(payer, unknown))).toMatchObject({ code: 'NotFound', field: 'payee_account_id' });
    const payee = await openAccount(clients);
    const { payment } = await pay(payer, payee);
    const voided = await refusal(clients.payments.voidPayment({ idempotencyKey: key(), paymentId: payment!.id }));
    expect(voided).toMatchObject({ reason: 'PAYMENT_NOT_AUTHORIZED', field: 'payment_id' });
    const anonymous = clientsFor(protocol, server.url, {});
    expect(await refusal(anonymous.payments.getPayment({ paymentId: payment!.id }))).toMatchObject({
      code: 'Unauthenticated',
      field: 'authorization',
    });
    const badKey = clientsFor(protocol, server.url, { apiKey: 'plk_not_a_key' });
    expect(await refusal(badKey.payments.getPayment({ paymentId: payment!.id }))).toMatchObject({
      code: 'Unauthenticated',
      field: 'x-api-key',
    });
  });

  it('stops counting a hold against the payer once it expires, before the sweeper runs', async () => {
    const payer = await fundedAccount(clients, 1_000n);
    const payee = await openAccount(clients);
    const hold = await expiredHold(clients, payer, 1_000n, payee);
    const { payment } = await clients.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: payer,
      payeeAccountId: payee,
      amount: { amountMinor: 1_000n, currency: 'USD' },
    });
    expect(payment?.status).toBe(PaymentStatus.COMPLETED);
    expect((await clients.payments.getPayment({ paymentId: hold })).payment?.status).toBe(PaymentStatus.EXPIRED);
    expect(await balanceOf(clients, payer)).toMatchObject({ available: 0n, held: 0n, posted: 0n });
  });
});
