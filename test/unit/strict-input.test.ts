/**
 * Property tests of the request decoders (issue 11): whatever bytes arrive, a money amount or an id either
 * decodes to exactly what a strict reading of the input gives, or is refused with INVALID_ARGUMENT. Runs the
 * same JSON and binary decoding the server runs (Connect's serialization with our strict JSON reader, then
 * the checks of the input interceptor), without a network.
 */
import { create, fromBinary, fromJsonString, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { createMethodSerializationLookup } from '@connectrpc/connect/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AccountService,
  type DepositFundsRequest,
  DepositFundsRequestSchema,
} from '../../gen/payment/v1/account_pb.js';
import {
  type AuthorizePaymentRequest,
  AuthorizePaymentRequestSchema,
  CaptureMode,
  PaymentService,
  WatchAccountRequestSchema,
} from '../../gen/payment/v1/payment_pb.js';
import { checkDecodedRequest, strictInputInterceptor, strictJsonOptionsFor } from '../../src/api/strict-input.js';
import { DomainError } from '../../src/domain/errors.js';

const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);
const encoder = new TextEncoder();

const LIMITS = { readMaxBytes: 1_000_000, writeMaxBytes: 1_000_000 };

/** Connect's own JSON decoding of a method's request, with the options the server gives it. */
function jsonDecoderOf(
  method: (typeof AccountService.method)['depositFunds'] | (typeof PaymentService.method)['authorizePayment'],
) {
  return createMethodSerializationLookup(method as never, undefined, strictJsonOptionsFor(method.input), LIMITS).getI(
    false,
  );
}

const depositJson = jsonDecoderOf(AccountService.method.depositFunds);

type Decoded = { ok: true; amountMinor: bigint; accountId: string } | { ok: false; code: Code };

function decodeJson(body: string): Decoded {
  try {
    const message = depositJson.parse(encoder.encode(body)) as DepositFundsRequest;
    checkDecodedRequest(DepositFundsRequestSchema, message);
    return { ok: true, amountMinor: message.amount?.amountMinor ?? 0n, accountId: message.accountId };
  } catch (error) {
    if (error instanceof DomainError) return { ok: false, code: Code.InvalidArgument };
    return { ok: false, code: ConnectError.from(error).code };
  }
}

/** The strict reading of an amount written as JSON text: canonical decimal, exact, in int64 range. */
function strictAmount(amountJson: string): bigint | undefined {
  const string = /^"(-?(?:0|[1-9][0-9]*))"$/.exec(amountJson);
  const number = /^-?(?:0|[1-9][0-9]*)$/.exec(amountJson);
  if (string) {
    const value = BigInt(string[1]!);
    return value >= INT64_MIN && value <= INT64_MAX ? value : undefined;
  }
  if (number) {
    const value = BigInt(amountJson);
    return value >= -(2n ** 53n - 1n) && value <= 2n ** 53n - 1n ? value : undefined;
  }
  return undefined;
}

/** Amounts as a client might write them: canonical and not, numbers and strings, in and out of range. */
const amountJson = fc.oneof(
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map((value) => value.toString()),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map((value) => `"${value}"`),
  fc
    .tuple(
      fc.constantFrom('', ' ', '+', '0', '0x', '0b', '0o', '00', '-', '\t'),
      fc.bigInt({ min: 0n, max: 2n ** 64n }),
      fc.constantFrom('', ' ', '.0', 'e0', 'n', '\n'),
    )
    .chain(([prefix, value, suffix]) =>
      fc.constantFrom(`"${prefix}${value}${suffix}"`, `${prefix}${value}${suffix}`.trim() || '0'),
    ),
  fc.double().map((value) => (Number.isFinite(value) ? String(value) : '1.5')),
  fc.string({ maxLength: 12 }).map((text) => JSON.stringify(text)),
);

/** Ids as a client might send them: ours, near misses, controls, lone surrogates, very long. */
const idText = fc.oneof(
  fc.constant('acct_00000000000000000000000000'),
  fc.string({ maxLength: 80, unit: 'binary' }),
  fc.string({ minLength: 60, maxLength: 70 }),
  fc.constantFrom('acct_\u0000', 'acct_\ud800', 'acct_\u007f', 'acct_é', `acct_${'x'.repeat(5000)}`),
);

/** The strict reading of an id: the same string, when the one string rule allows it. */
function idAllowed(id: string): boolean {
  const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
  return id.length <= 64 && !/[\u0000-\u001f\u007f]/.test(id) && !loneSurrogate.test(id);
}

describe('Connect JSON decoding of money and ids', () => {
  it('gives exactly the strict reading of an amount, or INVALID_ARGUMENT', () => {
    fc.assert(
      fc.property(amountJson, (amount) => {
        const body = `{"idempotencyKey":"k","accountId":"acct_1","amount":{"amountMinor":${amount},"currency":"USD"}}`;
        const decoded = decodeJson(body);
        const strict = strictAmount(amount);
        if (strict === undefined) {
          expect(decoded).toEqual({ ok: false, code: Code.InvalidArgument });
        } else {
          expect(decoded).toMatchObject({ ok: true, amountMinor: strict });
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('gives exactly the id sent, or INVALID_ARGUMENT', () => {
    fc.assert(
      fc.property(idText, (id) => {
        const body = `{"idempotencyKey":"k","accountId":${JSON.stringify(id)},"amount":{"amountMinor":"1","currency":"USD"}}`;
        const decoded = decodeJson(body);
        if (idAllowed(id)) expect(decoded).toEqual({ ok: true, amountMinor: 1n, accountId: id });
        else expect(decoded).toEqual({ ok: false, code: Code.InvalidArgument });
      }),
      { numRuns: 1_000 },
    );
  });

  it('refuses a body that is not UTF-8 rather than reading replacement characters', () => {
    const bytes = encoder.encode('{"idempotencyKey":"k","accountId":"acct_X"}');
    bytes[bytes.indexOf('X'.charCodeAt(0))] = 0xff;
    expect(() => depositJson.parse(bytes)).toThrow(ConnectError);
    expect(
      ConnectError.from(
        (() => {
          try {
            depositJson.parse(bytes);
          } catch (error) {
            return error;
          }
        })(),
      ).code,
    ).toBe(Code.InvalidArgument);
  });
});

describe('binary decoding of money, ids and enums', () => {
  it('gives exactly the int64 sent, and the id sent or INVALID_ARGUMENT', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: INT64_MIN, max: INT64_MAX }), idText, (amountMinor, accountId) => {
        const sent = create(DepositFundsRequestSchema, {
          idempotencyKey: 'k',
          accountId,
          amount: { amountMinor, currency: 'USD' },
        });
        // What a client puts on the wire: protobuf-es writes strings as UTF-8 (a lone surrogate as U+FFFD).
        const received = fromBinary(DepositFundsRequestSchema, toBinary(DepositFundsRequestSchema, sent));
        expect(received.amount?.amountMinor).toBe(amountMinor);
        let refused = false;
        try {
          checkDecodedRequest(DepositFundsRequestSchema, received);
        } catch (error) {
          expect(error).toBeInstanceOf(DomainError);
          expect((error as DomainError).kind).toBe('invalid_argument');
          refused = true;
        }
        expect(refused).toBe(!idAllowed(received.accountId));
      }),
      { numRuns: 1_000 },
    );
  });

  it('accepts an enum number only when the enum defines it', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), (captureMode) => {
        const sent = create(AuthorizePaymentRequestSchema, { idempotencyKey: 'k', captureMode });
        const received = fromBinary(AuthorizePaymentRequestSchema, toBinary(AuthorizePaymentRequestSchema, sent));
        const defined = captureMode in CaptureMode && typeof CaptureMode[captureMode] === 'string';
        let refused = false;
        try {
          checkDecodedRequest(AuthorizePaymentRequestSchema, received);
        } catch {
          refused = true;
        }
        expect(refused).toBe(!defined);
      }),
      { numRuns: 500 },
    );
  });
});

it('reads JSON enum names and numbers the enum defines, and only those', () => {
  const parse = (value: string) =>
    fromJsonString(AuthorizePaymentRequestSchema, `{"captureMode":${value}}`, { ignoreUnknownFields: false });
  expect(parse('"CAPTURE_MODE_MANUAL"').captureMode).toBe(CaptureMode.MANUAL);
  const serialization = jsonDecoderOf(PaymentService.method.authorizePayment);
  for (const value of ['7', '-1', '"CAPTURE_MODE_LATER"', '1.5']) {
    expect(() => serialization.parse(encoder.encode(`{"captureMode":${value}}`))).toThrow(ConnectError);
  }
  const manual = serialization.parse(encoder.encode('{"captureMode":2}')) as AuthorizePaymentRequest;
  expect(manual.captureMode).toBe(CaptureMode.MANUAL);
});

it('checks the messages of a streaming request as they are read, like a unary one', async () => {
  const interceptor = strictInputInterceptor();
  const read: unknown[] = [];
  // What Connect's handler does with a streaming request: read its messages.
  const handler = interceptor((async (request: { message: AsyncIterable<unknown> }) => {
    for await (const message of request.message) read.push(message);
    return { stream: true };
  }) as never);
  const request = (accountId: string) => ({
    stream: true,
    method: PaymentService.method.watchAccount,
    message: (async function* () {
      yield create(WatchAccountRequestSchema, { accountId });
    })(),
  });
  await handler(request('acct_01m8mw555a6h0byrphj4tntrft') as never);
  expect(read).toHaveLength(1);
  const refused = await handler(request('acct_\u0000') as never).then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(refused).toBeInstanceOf(DomainError);
  expect((refused as DomainError).reason).toBe('FIELD_INVALID');
  expect(read).toHaveLength(1);
});
