/** Idempotency keys: replays, reuse with other parameters, concurrent duplicates, expiry and reaping. */
import { Code, ConnectError } from '@connectrpc/connect';
import { beforeAll, describe, expect, it } from 'vitest';
import { ErrorDetailSchema } from '../gen/payment/v1/errors_pb.js';
import { PaymentStatus } from '../gen/payment/v1/payment_pb.js';
import { openPostgres } from '../src/db/client.js';
import { reapOnce } from '../src/ledger/key-reaper.js';
import { type Clients, clientsFor, PROTOCOLS } from './support/clients.js';
import { availableOf, key, paymentSetUp } from './support/fixtures.js';
import { serverForFile } from './support/server.js';

const server = serverForFile({}, { checkLedgerAfterEach: true });

describe.each(PROTOCOLS)('over %s', (protocol) => {
  let clients: Clients;
  beforeAll(() => {
    clients = clientsFor(protocol, server.url);
  });

  it('replays the original response for a retry, marked as a replay, with no second effect', async () => {
    const { payer, payee, request: base } = await paymentSetUp(clients, 1_000n, 300n);
    const request = { ...base, description: 'rent share' };
    const headers: (string | null)[] = [];
    const onHeader = (header: Headers) => headers.push(header.get('idempotent-replayed'));
    const first = await clients.payments.authorizePayment(request, { onHeader });
    const second = await clients.payments.authorizePayment(request, { onHeader });
    expect(second.payment).toEqual(first.payment);
    expect(headers).toEqual([null, 'true']);
    expect(await availableOf(clients, payer)).toBe(700n);
    expect(await availableOf(clients, payee)).toBe(300n);
  });

  it('replays a DECLINED result too', async () => {
    const { payer, request } = await paymentSetUp(clients, 10n, 11n);
    const first = await clients.payments.authorizePayment(request);
    expect(first.payment?.status).toBe(PaymentStatus.DECLINED);
    // Funds arrive; the retry still answers the original decision rather than paying now.
    await clients.accounts.depositFunds({
      idempotencyKey: key(),
      accountId: payer,
      amount: { amountMinor: 100n, currency: 'USD' },
    });
    const second = await clients.payments.authorizePayment(request);
    expect(second.payment).toEqual(first.payment);
    expect(await availableOf(clients, payer)).toBe(110n);
  });

  it('refuses the same key with different parameters with ALREADY_EXISTS naming the field, changing nothing', async () => {
    const { payer, request } = await paymentSetUp(clients, 1_000n, 100n);
    await clients.payments.authorizePayment(request);
    const error = await clients.payments
      .authorizePayment({ ...request, amount: { amountMinor: 101n, currency: 'USD' } })
      .then(
        () => undefined,
        (caught: unknown) => ConnectError.from(caught),
      );
    expect(error?.code).toBe(Code.AlreadyExists);
    const detail = error?.findDetails(ErrorDetailSchema)[0];
    expect(detail?.reason).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(detail?.field).toBe('amount.amount_minor');
    // A key used for one operation cannot be reused for another either.
    const reusedForAccount = await clients.accounts
      .createAccount({ idempotencyKey: request.idempotencyKey, ownerRef: 'x', currency: 'USD' })
      .then(
        () => undefined,
        (caught: unknown) => ConnectError.from(caught),
      );
    expect(reusedForAccount?.code).toBe(Code.AlreadyExists);
    expect(await availableOf(clients, payer)).toBe(900n);
  });

  it('makes one payment from 50 concurrent requests with one key', async () => {
    const { payer, request } = await paymentSetUp(clients, 10_000n, 7n);
    const results = await Promise.all(Array.from({ length: 50 }, () => clients.payments.authorizePayment(request)));
    const ids = new Set(results.map((result) => result.payment?.id));
    expect(ids.size).toBe(1);
    expect(await availableOf(clients, payer)).toBe(10_000n - 7n);
    const rows = await server.database.query('select id from payments where payer_account_id = $1', [payer]);
    expect(rows).toHaveLength(1);
  });
});

describe('retention', () => {
  /** A completed payment whose idempotency key has just passed its retention. */
  async function paymentWithExpiredKey() {
    const clients = clientsFor('connect-json', server.url);
    const { payer, request } = await paymentSetUp(clients, 1_000n, 1n);
    const first = await clients.payments.authorizePayment(request);
    await server.database.query(
      `update idempotency_keys set expires_at = now() - interval '1 second' where idempotency_key = $1`,
      [request.idempotencyKey],
    );
    return { clients, payer, request, first };
  }

  it('reaps expired keys, after which the key is a new request', async () => {
    const { clients, payer, request, first } = await paymentWithExpiredKey();
    const database = openPostgres({ url: server.database.url, poolSize: 1 });
    try {
      expect(await reapOnce(database.db)).toBeGreaterThanOrEqual(1);
    } finally {
      await database.close();
    }
    const second = await clients.payments.authorizePayment(request);
    expect(second.payment?.id).not.toBe(first.payment?.id);
    expect(await availableOf(clients, payer)).toBe(998n);
  });

  it('takes over an expired key that was not reaped yet', async () => {
    const { clients, request, first } = await paymentWithExpiredKey();
    const second = await clients.payments.authorizePayment(request);
    expect(second.payment?.id).not.toBe(first.payment?.id);
  });
});
