/**
 * A backend written against @grpc/grpc-js (not Connect) must be able to call the service: this checks the
 * h2c side of the one-port listener and Connect's gRPC implementation against an independent gRPC stack,
 * with nothing but the protobuf-es schemas for (de)serialization.
 */
import { create, type DescMessage, fromBinary, type MessageShape, toBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuthorizePaymentRequestSchema,
  AuthorizePaymentResponseSchema,
  GetAccountBalanceRequestSchema,
  GetAccountBalanceResponseSchema,
  GetPaymentRequestSchema,
  GetPaymentResponseSchema,
  PaymentStatus,
} from '../gen/payment/v1/payment_pb.js';
import { newId } from '../src/domain/ids.js';
import { clientsFor } from './support/clients.js';
import { fundedAccount, key, openAccount } from './support/fixtures.js';
import { startTestServer, type TestServer } from './support/server.js';

const SERVICE = '/payment.v1.PaymentService';
const DEADLINE_MS = 10_000;

function unary<I extends DescMessage, O extends DescMessage>(name: string, input: I, output: O) {
  return {
    path: `${SERVICE}/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (value: MessageShape<I>) => Buffer.from(toBinary(input, value)),
    requestDeserialize: (bytes: Buffer) => fromBinary(input, bytes),
    responseSerialize: (value: MessageShape<O>) => Buffer.from(toBinary(output, value)),
    responseDeserialize: (bytes: Buffer) => fromBinary(output, bytes),
  } satisfies grpc.MethodDefinition<MessageShape<I>, MessageShape<O>>;
}

const definition = {
  AuthorizePayment: unary('AuthorizePayment', AuthorizePaymentRequestSchema, AuthorizePaymentResponseSchema),
  GetPayment: unary('GetPayment', GetPaymentRequestSchema, GetPaymentResponseSchema),
  GetAccountBalance: unary('GetAccountBalance', GetAccountBalanceRequestSchema, GetAccountBalanceResponseSchema),
};
const PaymentServiceClient = grpc.makeGenericClientConstructor(definition, 'payment.v1.PaymentService');

type Definition = typeof definition;
type RequestOf<M extends keyof Definition> = Parameters<Definition[M]['requestSerialize']>[0];
type ResponseOf<M extends keyof Definition> = ReturnType<Definition[M]['responseDeserialize']>;

/** Promisified unary call through the generic client, with protobuf-es messages in and out. */
function call<M extends keyof Definition>(
  client: grpc.Client,
  method: M,
  request: RequestOf<M>,
): Promise<ResponseOf<M>> {
  return new Promise((resolve, reject) => {
    // Every call gets a deadline so a wedged connection fails the test instead of hanging it.
    const deadline = new Date(Date.now() + DEADLINE_MS);
    // The generic constructor adds one method per definition key; its static type only knows Client.
    const method_ = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[method]!;
    // Backends authenticate with an API key in the call metadata.
    const metadata = new grpc.Metadata();
    metadata.set('x-api-key', server.backendKey);
    method_.call(
      client,
      request,
      metadata,
      { deadline },
      (error: grpc.ServiceError | null, response?: ResponseOf<M>) => (error ? reject(error) : resolve(response!)),
    );
  });
}

let server: TestServer;
let client: grpc.Client;
beforeAll(async () => {
  server = await startTestServer();
  client = new PaymentServiceClient(new URL(server.url).host, grpc.credentials.createInsecure());
});
afterAll(async () => {
  client?.close();
  await server?.stop();
});

describe('native gRPC with @grpc/grpc-js', () => {
  it('authorizes a payment and reads the balances back', async () => {
    // Accounts are set up through the public API with a Connect client, the way any other client would.
    const clients = clientsFor('grpc', server.url);
    const payer = await fundedAccount(clients, 10_000n);
    const payee = await openAccount(clients);

    const authorized = await call(
      client,
      'AuthorizePayment',
      create(AuthorizePaymentRequestSchema, {
        idempotencyKey: key('grpc-js'),
        payerAccountId: payer,
        payeeAccountId: payee,
        amount: { amountMinor: 1_234n, currency: 'USD' },
        description: 'paid by grpc-js',
      }),
    );
    expect(authorized.payment?.id).toMatch(/^pay_[0-9a-z]{26}$/);
    expect(PaymentStatus[authorized.payment!.status]).toBe(PaymentStatus[PaymentStatus.COMPLETED]);
    expect(authorized.payment?.amount?.amountMinor).toBe(1_234n);
    expect(authorized.payment?.description).toBe('paid by grpc-js');

    const balance = (accountId: string) =>
      call(client, 'GetAccountBalance', create(GetAccountBalanceRequestSchema, { accountId }));
    const payerBalance = await balance(payer);
    expect(payerBalance.balance?.accountId).toBe(payer);
    expect(payerBalance.balance?.available?.amountMinor).toBe(10_000n - 1_234n);
    expect(payerBalance.balance?.currency).toBe('USD');
    expect((await balance(payee)).balance?.available?.amountMinor).toBe(1_234n);

    const read = await call(
      client,
      'GetPayment',
      create(GetPaymentRequestSchema, { paymentId: authorized.payment!.id }),
    );
    expect(read.payment).toEqual(authorized.payment);
  });

  it('answers NOT_FOUND (status 5) for an unknown payment, without SQL in the message', async () => {
    // A well-formed id, so the server really looks it up rather than refusing the shape.
    const error = await call(client, 'GetPayment', create(GetPaymentRequestSchema, { paymentId: newId('pay') })).then(
      () => {
        throw new Error('expected NOT_FOUND, but the call succeeded');
      },
      (caught: grpc.ServiceError) => caught,
    );
    expect(error.code).toBe(grpc.status.NOT_FOUND);
    expect(error.code).toBe(5);
    expect(error.details).not.toBe('');
    expect(error.details).not.toMatch(/select|from "|payments|Failed query|\.ts\b/i);
  });
});
