/**
 * The caller's deadline reaches the ledger (a payment past its deadline is not committed), and a request that
 * cannot get a database connection in time answers a retryable UNAVAILABLE, never INTERNAL.
 */
import { connect } from 'node:http2';
import { create, toBinary } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorDetailSchema } from '../gen/payment/v1/errors_pb.js';
import { AuthorizePaymentRequestSchema } from '../gen/payment/v1/payment_pb.js';
import { connectErrorOf } from './support/calls.js';
import { clientsFor } from './support/clients.js';
import { credentialHeaders, defaultCredentialsFor, signToken } from './support/credentials.js';
import { fundedAccount, key, openAccount } from './support/fixtures.js';
import { startTestServer, type TestServer } from './support/server.js';
import { deferred } from './support/waits.js';

describe('deadlines', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('AuthorizePayment with Connect-Timeout-Ms: 1 answers DEADLINE_EXCEEDED and commits nothing', async () => {
    const clients = clientsFor('grpc', server.url);
    const payer = await fundedAccount(clients, 10_000n);
    const payee = await openAccount(clients);
    const idempotencyKey = key('deadline');
    const response = await fetch(`${server.url}/payment.v1.PaymentService/AuthorizePayment`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'connect-protocol-version': '1',
        'connect-timeout-ms': '1',
        ...credentialHeaders(defaultCredentialsFor(server.url)),
      },
      body: JSON.stringify({
        idempotencyKey,
        payerAccountId: payer,
        payeeAccountId: payee,
        amount: { amountMinor: '100', currency: 'USD' },
      }),
    });
    const body = (await response.json()) as { code?: string; message?: string };
    expect(body.code).toBe('deadline_exceeded');
    const payments = await server.database.query('select 1 from payments where payer_account_id = $1', [payer]);
    expect(payments).toHaveLength(0);
    const keys = await server.database.query('select 1 from idempotency_keys where idempotency_key = $1', [
      idempotencyKey,
    ]);
    expect(keys).toHaveLength(0);
  });

  it('AuthorizePayment over gRPC with grpc-timeout: 1m answers DEADLINE_EXCEEDED and commits nothing', async () => {
    const clients = clientsFor('grpc', server.url);
    const payer = await fundedAccount(clients, 10_000n);
    const payee = await openAccount(clients);
    const message = toBinary(
      AuthorizePaymentRequestSchema,
      create(AuthorizePaymentRequestSchema, {
        idempotencyKey: key('grpc-deadline'),
        payerAccountId: payer,
        payeeAccountId: payee,
        amount: { amountMinor: 100n, currency: 'USD' },
      }),
    );
    // Raw frames, so that no client gives up first: the answer is the server's own.
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    frame.set(message, 5);
    const session = connect(server.url);
    try {
      const status = await new Promise<string | undefined>((resolve, reject) => {
        const stream = session.request({
          ':method': 'POST',
          ':path': '/payment.v1.PaymentService/AuthorizePayment',
          'content-type': 'application/grpc',
          te: 'trailers',
          'grpc-timeout': '1m',
          ...credentialHeaders(defaultCredentialsFor(server.url)),
        });
        let grpcStatus: string | undefined;
        stream.on('response', (headers) => {
          grpcStatus ??= headers['grpc-status'] as string | undefined;
        });
        stream.on('trailers', (trailers) => {
          grpcStatus = (trailers['grpc-status'] as string | undefined) ?? grpcStatus;
        });
        stream.on('error', reject);
        stream.on('data', () => {});
        stream.on('end', () => resolve(grpcStatus));
        stream.end(frame);
      });
      expect(status).toBe(String(Code.DeadlineExceeded));
    } finally {
      session.close();
    }
    const payments = await server.database.query('select 1 from payments where payer_account_id = $1', [payer]);
    expect(payments).toHaveLength(0);
  });
});

describe('an exhausted connection pool', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ DB_POOL_SIZE: '1', LEDGER_BATCHES_IN_FLIGHT: '1', DB_POOL_WAIT_TIMEOUT_MS: '50' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** Takes the pool's only connection (background jobs may hold it a moment: bounded attempts). */
  async function holdTheOnlyConnection() {
    const release = deferred();
    for (let attempt = 1; attempt <= 100; attempt++) {
      const held = deferred();
      const transaction = server.service.database.db
        .transaction(async () => {
          held.resolve();
          await release.promise;
        })
        .catch((error: unknown) => error);
      const outcome = await Promise.race([held.promise.then(() => 'held' as const), transaction]);
      if (outcome === 'held') return { release: release.resolve, done: transaction };
    }
    throw new Error('could not take the pool connection');
  }

  it('answers UNAVAILABLE with the advice to retry with the same key, for writes and reads', async () => {
    // A token, not an API key: authentication must not need the database here.
    const user = clientsFor('connect-json', server.url, { token: await signToken('user:pool') });
    const account = 'acct_00000000000000000000000000';
    const hold = await holdTheOnlyConnection();
    try {
      const write = await connectErrorOf(
        user.payments.authorizePayment({
          idempotencyKey: key('pool'),
          payerAccountId: account,
          payeeAccountId: 'acct_00000000000000000000000001',
          amount: { amountMinor: 100n, currency: 'USD' },
        }),
      );
      expect(write.code).toBe(Code.Unavailable);
      expect(write.message).toMatch(/retry with the same idempotency key/);
      expect(write.findDetails(ErrorDetailSchema)[0]?.reason).toBe('DB_POOL_EXHAUSTED');
      const read = await connectErrorOf(user.accounts.getAccount({ accountId: account }));
      expect(read.code).toBe(Code.Unavailable);
      // An API key not verified yet needs the database too: the same retryable answer, from authentication.
      const backend = clientsFor('grpc', server.url, { apiKey: server.backendKey });
      const unverified = await connectErrorOf(backend.accounts.getAccount({ accountId: account }));
      expect(unverified.code).toBe(Code.Unavailable);
      expect(unverified.findDetails(ErrorDetailSchema)[0]?.reason).toBe('DB_POOL_EXHAUSTED');
      expect(server.service.database.poolWaitTimeouts()).toBeGreaterThanOrEqual(3);
    } finally {
      hold.release();
      await hold.done;
    }
  });
});
