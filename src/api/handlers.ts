/**
 * Connect handlers for PaymentService and AccountService. Each one decodes the request, calls the
 * application layer and maps the result; errors are mapped in errors.ts.
 */
import type { ConnectRouter, HandlerContext } from '@connectrpc/connect';
import { AccountService, AccountType } from '../../gen/payment/v1/account_pb.js';
import { CaptureMode, PaymentService } from '../../gen/payment/v1/payment_pb.js';
import type { Mutation, PaymentsApp } from '../app/payments-app.js';
import { callerKey } from '../auth/interceptor.js';
import { toAccount, toBalance, toDeposit, toLedgerEntry, toPayment, toRefund } from '../wire/messages.js';
import { IDEMPOTENT_REPLAYED_HEADER } from './principal.js';
import { serveStrictly } from './strict-input.js';

function unwrap<T>(context: HandlerContext, mutation: Mutation<T>): T {
  if (mutation.replayed) context.responseHeader.set(IDEMPOTENT_REPLAYED_HEADER, 'true');
  return mutation.value;
}

const CAPTURE_MODES = {
  [CaptureMode.UNSPECIFIED]: undefined,
  [CaptureMode.AUTOMATIC]: 'AUTOMATIC',
  [CaptureMode.MANUAL]: 'MANUAL',
} as const;

const ACCOUNT_TYPES = {
  [AccountType.UNSPECIFIED]: undefined,
  [AccountType.PERSONAL]: 'PERSONAL',
  [AccountType.MERCHANT]: 'MERCHANT',
} as const;

/** google.protobuf.Duration to milliseconds; huge values stay huge so validation refuses them. */
function durationMs(duration: { seconds: bigint; nanos: number } | undefined): number | undefined {
  return duration ? Number(duration.seconds) * 1000 + Math.trunc(duration.nanos / 1_000_000) : undefined;
}

export function registerLedgerServices(router: ConnectRouter, app: PaymentsApp): void {
  serveStrictly(router, PaymentService, {
    async authorizePayment(request, context) {
      const payment = await app.authorizePayment(context.values.get(callerKey), {
        signal: context.signal,
        idempotencyKey: request.idempotencyKey,
        payerAccountId: request.payerAccountId,
        payeeAccountId: request.payeeAccountId,
        amount: request.amount,
        description: request.description,
        captureMode: CAPTURE_MODES[request.captureMode],
        holdDurationMs: durationMs(request.holdDuration),
      });
      return { payment: toPayment(unwrap(context, payment)) };
    },
    async capturePayment(request, context) {
      const payment = await app.capturePayment(context.values.get(callerKey), {
        signal: context.signal,
        idempotencyKey: request.idempotencyKey,
        paymentId: request.paymentId,
        amount: request.amount,
      });
      return { payment: toPayment(unwrap(context, payment)) };
    },
    async voidPayment(request, context) {
      const payment = await app.voidPayment(context.values.get(callerKey), {
        signal: context.signal,
        idempotencyKey: request.idempotencyKey,
        paymentId: request.paymentId,
      });
      return { payment: toPayment(unwrap(context, payment)) };
    },
    async refundPayment(request, context) {
      const result = unwrap(
        context,
        await app.refundPayment(context.values.get(callerKey), {
          signal: context.signal,
          idempotencyKey: request.idempotencyKey,
          paymentId: request.paymentId,
          amount: request.amount,
          reason: request.reason,
        }),
      );
      return { refund: toRefund(result.refund), payment: toPayment(result.payment) };
    },
    async getPayment(request, context) {
      return {
        payment: toPayment(await app.getPayment(context.values.get(callerKey), request.paymentId, context.signal)),
      };
    },
    async getAccountBalance(request, context) {
      return {
        balance: toBalance(await app.getBalance(context.values.get(callerKey), request.accountId, context.signal)),
      };
    },
  });

  serveStrictly(router, AccountService, {
    async createAccount(request, context) {
      const account = await app.createAccount(context.values.get(callerKey), {
        signal: context.signal,
        idempotencyKey: request.idempotencyKey,
        ownerRef: request.ownerRef,
        currency: request.currency,
        type: ACCOUNT_TYPES[request.type],
      });
      return { account: toAccount(unwrap(context, account)) };
    },
    async getAccount(request, context) {
      return {
        account: toAccount(await app.getAccount(context.values.get(callerKey), request.accountId, context.signal)),
      };
    },
    async depositFunds(request, context) {
      const deposit = await app.deposit(context.values.get(callerKey), {
        signal: context.signal,
        idempotencyKey: request.idempotencyKey,
        accountId: request.accountId,
        amount: request.amount,
      });
      return { deposit: toDeposit(unwrap(context, deposit)) };
    },
    async listLedgerEntries(request, context) {
      const page = await app.listEntries(
        context.values.get(callerKey),
        {
          accountId: request.accountId,
          pageSize: request.pageSize,
          pageToken: request.pageToken,
        },
        context.signal,
      );
      return { entries: page.entries.map(toLedgerEntry), nextPageToken: page.nextPageToken };
    },
  });
}
