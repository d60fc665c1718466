/**
 * Deadlines on the mutations outside the ledger core's batcher: RunSettlement, CreateApiKey and RevokeApiKey,
 * and on the long reads (ListAccounts, ListPayments, GetRefund, ListRefunds, CheckLedger), which ran on past the
 * caller's deadline and answered a page no one waited for (issue 12.1: long reads stop too).
 * They ignored the caller's deadline: with Connect-Timeout-Ms: 1 a key was created (its secret, shown only in
 * the answer, lost to a client that had given up) and a settlement run committed. Now a request past its
 * deadline is not started, and one whose deadline passes while it waits on a lock rolls back: the answer is
 * DEADLINE_EXCEEDED and nothing changed. The waits are made certain by holding the lock the request needs.
 */
import { createClient } from '@connectrpc/connect';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyService } from '../gen/payment/v1/api_keys_pb.js';
import { CaptureMode } from '../gen/payment/v1/payment_pb.js';
import { type Clients, clientsFor, transportFor } from './support/clients.js';
import { credentialHeaders, defaultCredentialsFor } from './support/credentials.js';
import { fundedAccount, key, merchantAccount } from './support/fixtures.js';
import { startTestServer, type TestServer } from './support/server.js';
import { within } from './support/waits.js';

const SETTLEMENT_RUN_LOCK = 727_003; // src/db/advisory-locks.ts
const DEADLINE_MS = 1_500;

let server: TestServer;
let clients: Clients;
beforeAll(async () => {
  server = await startTestServer();
  clients = clientsFor('grpc', server.url);
});
afterAll(async () => {
  await server?.stop();
});

/** A Connect JSON call with the given deadline and no client-side give-up: the answer is the server's own. */
async function callWithDeadline(path: string, body: unknown, timeoutMs: number) {
  const response = await fetch(`${server.url}/${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'connect-protocol-version': '1',
      'connect-timeout-ms': String(timeoutMs),
      ...credentialHeaders(defaultCredentialsFor(server.url)),
    },
    body: JSON.stringify(body),
  });
  return (await response.json()) as { code?: string; message?: string } & Record<string, unknown>;
}

/**
 * Runs `call` while another connection holds a lock (taken by `lockSql` in an open transaction), until a server
 * session waits on a lock of kind `waitingOn` (pg_stat_activity.wait_event: relation, transactionid, advisory)
 * and the call's deadline has passed; then releases it. Fails if the request never waits.
 */
async function whileLocked<T>(lockSql: string, values: unknown[], waitingOn: string, call: () => Promise<T>) {
  const holder = new pg.Client({ connectionString: server.database.url });
  await holder.connect();
  try {
    await holder.query('begin');
    await holder.query(lockSql, values);
    let answered = false;
    const answer = call().finally(() => {
      answered = true;
    });
    for (let polls = 0; ; polls++) {
      if (answered || polls > 400) throw new Error(`the request never waited on a ${waitingOn} lock`);
      const waiting = await holder.query(
        `select 1 from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock' and wait_event = $1 and pid <> pg_backend_pid()`,
        [waitingOn],
      );
      if (waiting.rows.length > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    // The server had the request before it waited, so its deadline has passed DEADLINE_MS after this point
    // (plus a margin for its timer): what the request does once released is the behaviour under test.
    const waitingSeenAt = Date.now();
    while (Date.now() - waitingSeenAt <= DEADLINE_MS + 200) await new Promise((resolve) => setTimeout(resolve, 25));
    await holder.query('commit');
    return await within(answer, 30_000, 'the answer after the lock was released');
  } finally {
    await holder.end();
  }
}

describe('CreateApiKey', () => {
  it('past its deadline creates no key', async () => {
    const name = key('late-key');
    const body = await callWithDeadline(
      'payment.v1.ApiKeyService/CreateApiKey',
      { name, scopes: ['payments:read'] },
      1,
    );
    expect(body.code).toBe('deadline_exceeded');
    expect(await server.database.query('select 1 from api_keys where name = $1', [name])).toHaveLength(0);
  });

  it('whose deadline passes while it waits to insert rolls back', async () => {
    const name = key('blocked-key');
    const body = await whileLocked('lock table api_keys in share row exclusive mode', [], 'relation', () =>
      callWithDeadline('payment.v1.ApiKeyService/CreateApiKey', { name, scopes: ['payments:read'] }, DEADLINE_MS),
    );
    expect(body.code).toBe('deadline_exceeded');
    expect(await server.database.query('select 1 from api_keys where name = $1', [name])).toHaveLength(0);
  });
});

describe('RevokeApiKey', () => {
  it('whose deadline passes while it waits on the key rolls back, and the key keeps working', async () => {
    const apiKeys = createClient(ApiKeyService, transportFor('grpc', server.url));
    const created = await apiKeys.createApiKey({ name: key('victim'), scopes: ['payments:read'] });
    const id = created.apiKey!.id;
    const body = await whileLocked('select 1 from api_keys where id = $1 for update', [id], 'transactionid', () =>
      callWithDeadline('payment.v1.ApiKeyService/RevokeApiKey', { id }, DEADLINE_MS),
    );
    expect(body.code).toBe('deadline_exceeded');
    const [row] = await server.database.query<{ revoked_at: Date | null }>(
      'select revoked_at from api_keys where id = $1',
      [id],
    );
    expect(row?.revoked_at).toBeNull();
    const withKey = clientsFor('grpc', server.url, { apiKey: created.key });
    await expect(withKey.payments.listPayments({ accountId: await fundedAccount(clients, 1n) })).resolves.toBeDefined();
  });
});

describe('RunSettlement', () => {
  it('past its deadline, or whose deadline passes while it waits for the run lock, settles nothing', async () => {
    const merchant = await merchantAccount(clients);
    const payer = await fundedAccount(clients, 1_000n);
    await clients.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: payer,
      payeeAccountId: merchant,
      amount: { amountMinor: 250n, currency: 'USD' },
      captureMode: CaptureMode.AUTOMATIC,
    });
    const pending = async () =>
      (await clients.payments.getAccountBalance({ accountId: merchant })).balance?.pendingSettlement?.amountMinor;
    expect(await pending()).toBe(250n);

    const early = await callWithDeadline('payment.v1.SettlementService/RunSettlement', { accountId: merchant }, 1);
    expect(early.code).toBe('deadline_exceeded');
    const blocked = await whileLocked('select pg_advisory_xact_lock($1)', [SETTLEMENT_RUN_LOCK], 'advisory', () =>
      callWithDeadline('payment.v1.SettlementService/RunSettlement', { accountId: merchant }, DEADLINE_MS),
    );
    expect(blocked.code).toBe('deadline_exceeded');
    expect(await pending()).toBe(250n);
    expect(await server.database.query('select 1 from settlements where account_id = $1', [merchant])).toHaveLength(0);

    const { settlements } = await clients.settlements.runSettlement({ accountId: merchant });
    expect(settlements).toHaveLength(1);
    expect(await pending()).toBe(0n);
  });
});

describe('wallet reads and the ledger check', () => {
  it('stop once the deadline passes while they wait, and answer DEADLINE_EXCEEDED', async () => {
    const shop = await merchantAccount(clients);
    const payer = await fundedAccount(clients, 1_000n);
    const { payment } = await clients.payments.authorizePayment({
      idempotencyKey: key(),
      payerAccountId: payer,
      payeeAccountId: shop,
      amount: { amountMinor: 250n, currency: 'USD' },
    });
    const { refund } = await clients.payments.refundPayment({
      idempotencyKey: key(),
      paymentId: payment!.id,
      amount: { amountMinor: 50n, currency: 'USD' },
    });
    const { account } = await clients.accounts.getAccount({ accountId: payer });
    const reads: [string, string, unknown][] = [
      ['accounts', 'payment.v1.AccountService/ListAccounts', { ownerRef: account!.ownerRef }],
      ['accounts', 'payment.v1.PaymentService/ListPayments', { accountId: payer }],
      ['payments', 'payment.v1.PaymentService/GetRefund', { refundId: refund!.id }],
      ['payments', 'payment.v1.PaymentService/ListRefunds', { paymentId: payment!.id }],
      ['ledger_entries', 'payment.v1.AdminService/CheckLedger', {}],
    ];
    for (const [table, path, body] of reads) {
      const answer = await whileLocked(`lock table ${table} in access exclusive mode`, [], 'relation', () =>
        callWithDeadline(path, body, DEADLINE_MS),
      );
      expect({ path, code: answer.code }).toEqual({ path, code: 'deadline_exceeded' });
    }
  });
});
