/** The benchmark's hand-made gRPC frames, checked against the real protobuf runtime both ways. */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import {
  AuthorizeRequestTemplate,
  findVarint,
  frameMessage,
  grpcCodeName,
  grpcTimeoutHeader,
  unframeMessages,
} from '../../bench/lib/grpc-wire.js';
import { codeOfHttpStatus } from '../../bench/lib/h2-client.js';
import { MoneySchema } from '../../gen/payment/v1/money_pb.js';
import {
  AuthorizePaymentRequestSchema,
  AuthorizePaymentResponseSchema,
  DeclineReason,
  PaymentSchema,
  PaymentStatus,
} from '../../gen/payment/v1/payment_pb.js';

describe('bench gRPC frames', () => {
  it('encodes an AuthorizePaymentRequest that the protobuf runtime decodes to the same fields', () => {
    const template = new AuthorizeRequestTemplate(1_234, 'USD');
    // A long key (varint length over one byte) and non-ASCII text: lengths are bytes, not characters.
    const key = `bench-${'k'.repeat(200)}-é`;
    const frame = template.frame(
      key,
      AuthorizeRequestTemplate.payerPiece('acc_payer'),
      AuthorizeRequestTemplate.payeePiece('acc_payée'),
    );
    const [message] = unframeMessages(frame);
    const decoded = fromBinary(AuthorizePaymentRequestSchema, message!);
    expect(decoded.idempotencyKey).toBe(key);
    expect(decoded.payerAccountId).toBe('acc_payer');
    expect(decoded.payeeAccountId).toBe('acc_payée');
    expect(decoded.amount?.amountMinor).toBe(1_234n);
    expect(decoded.amount?.currency).toBe('USD');
  });

  it('produces the same bytes as toBinary for the same request', () => {
    const request = create(AuthorizePaymentRequestSchema, {
      idempotencyKey: 'key-1',
      payerAccountId: 'a',
      payeeAccountId: 'b',
      amount: create(MoneySchema, { amountMinor: 300n, currency: 'EUR' }),
    });
    const expected = frameMessage(toBinary(AuthorizePaymentRequestSchema, request));
    const template = new AuthorizeRequestTemplate(300, 'EUR');
    const frame = template.frame(
      'key-1',
      AuthorizeRequestTemplate.payerPiece('a'),
      AuthorizeRequestTemplate.payeePiece('b'),
    );
    expect(frame.equals(expected)).toBe(true);
  });

  it('refuses an amount that is not a positive safe integer', () => {
    expect(() => new AuthorizeRequestTemplate(0, 'USD')).toThrow(/bad amount/);
    expect(() => new AuthorizeRequestTemplate(1.5, 'USD')).toThrow(/bad amount/);
  });

  it('splits a body into its messages and refuses truncated or compressed frames', () => {
    const body = Buffer.concat([
      frameMessage(Buffer.from('one')),
      frameMessage(Buffer.alloc(0)),
      frameMessage(Buffer.from('x')),
    ]);
    expect(unframeMessages(body).map((message) => message.toString())).toEqual(['one', '', 'x']);
    expect(() => unframeMessages(body.subarray(0, body.length - 1))).toThrow(/truncated gRPC message/);
    expect(() => unframeMessages(body.subarray(0, 3))).toThrow(/truncated gRPC frame header/);
    const compressed = Buffer.from(body);
    compressed[0] = 1;
    expect(() => unframeMessages(compressed)).toThrow(/compressed/);
  });

  it('finds a payment status inside a response, skipping the fields around it', () => {
    for (const status of [PaymentStatus.COMPLETED, PaymentStatus.DECLINED, PaymentStatus.VOIDED]) {
      const response = create(AuthorizePaymentResponseSchema, {
        payment: create(PaymentSchema, {
          id: 'pay_1',
          payerAccountId: 'a',
          amount: create(MoneySchema, { amountMinor: 9_007_199_254_740_991n, currency: 'USD' }),
          status,
          declineReason: DeclineReason.INSUFFICIENT_FUNDS,
          description: 'x'.repeat(300),
        }),
      });
      expect(findVarint(toBinary(AuthorizePaymentResponseSchema, response), [1, 5])).toBe(status);
    }
  });

  it('reads an absent field as 0, proto3 style, and refuses a truncated message', () => {
    const empty = toBinary(AuthorizePaymentResponseSchema, create(AuthorizePaymentResponseSchema, {}));
    expect(findVarint(empty, [1, 5])).toBe(0);
    const noStatus = toBinary(
      AuthorizePaymentResponseSchema,
      create(AuthorizePaymentResponseSchema, { payment: create(PaymentSchema, { id: 'pay_1' }) }),
    );
    expect(findVarint(noStatus, [1, 5])).toBe(0);
    expect(() => findVarint(noStatus.subarray(0, noStatus.length - 1), [1, 5])).toThrow(/truncated/);
  });

  it('names gRPC codes as gRPC spells them and flags nonsense', () => {
    expect(grpcCodeName('0')).toBe('OK');
    expect(grpcCodeName('13')).toBe('INTERNAL');
    expect(grpcCodeName('16')).toBe('UNAUTHENTICATED');
    expect(grpcCodeName('17')).toBe('BAD_GRPC_STATUS(17)');
    expect(grpcCodeName('-1')).toBe('BAD_GRPC_STATUS(-1)');
    expect(grpcCodeName(undefined)).toBe('NO_GRPC_STATUS');
  });

  it('writes grpc-timeout with at most 8 digits', () => {
    expect(grpcTimeoutHeader(10_000)).toBe('10000m');
    expect(grpcTimeoutHeader(0.2)).toBe('1m');
    expect(grpcTimeoutHeader(600_000_000)).toBe('600000S');
  });

  it('reads an HTTP error without grpc-status the way gRPC clients do, keeping the HTTP status', () => {
    expect(codeOfHttpStatus(503)).toBe('UNAVAILABLE/HTTP_503');
    expect(codeOfHttpStatus(429)).toBe('UNAVAILABLE/HTTP_429');
    expect(codeOfHttpStatus(401)).toBe('UNAUTHENTICATED/HTTP_401');
    expect(codeOfHttpStatus(500)).toBe('UNKNOWN/HTTP_500');
  });
});
