/**
 * Connect handlers for PaymentService and AccountService. Each one decodes the request, calls the
 * application layer and maps the result; errors are mapped in errors.ts.
 */

import { timestampDate } from '@bufbuild/protobuf/wkt';
import type { ConnectRouter, HandlerContext } from '@connectrpc/connect';
import { AccountService, AccountType } from '../../gen/payment/v1/account_pb.js';
import { CaptureMode, PaymentService, PaymentStatus } from '../../gen/payment/v1/payment_pb.js';
import type { CallOptions, Mutation, PaymentsApp } from '../app/payments-app.js';
import { callerKey } from '../auth/interceptor.js';
import {
  toAccount,
  toBalance,
  toDeposit,
  toLedgerEntry,
  toPayment,
  toPayout,
  toRefund,
  toWatchUpdate,
} from '../wire/messages.js';
import { IDEMPOTENT_REPLAYED_HEADER } from './headers.js';
import { originOf } from './observe.js';
import { serveStrictly } from './strict-input.js';

/** The call's deadline and the origin its ledger command records (request id and span). */
function callOptionsOf(context: HandlerContext): CallOptions {
  return { signal: context.signal, origin: originOf(context.values) };
}

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

const PAYMENT_STATUSES = {
  [PaymentStatus.UNSPECIFIED]: undefined,
  [PaymentStatus.COMPLETED]: 'COMPLETED',
  [PaymentStatus.DECLINED]: 'DECLINED',
  [PaymentStatus.AUTHORIZED]: 'AUTHORIZED',
  [PaymentStatus.VOIDED]: 'VOIDED',
  [PaymentStatus.EXPIRED]: 'EXPIRED',
  [PaymentStatus.PARTIALLY_REFUNDED]: 'PARTIALLY_REFUNDED',
  [PaymentStatus.REFUNDED]: 'REFUNDED',
} as const;

/** Freeze, unfreeze and close differ only in the action asked for. */
async function changeStatus(
  app: PaymentsApp,
  action: 'freeze' | 'unfreeze' | 'close',
  request: { idempotencyKey: string; accountId: string; reason: string },
  context: HandlerContext,
) {
  const account = await app.changeAccountStatus(context.values.get(callerKey), action, {
    idempotencyKey: request.idempotencyKey,
    accountId: request.accountId,
    reason: request.reason,
    ...callOptionsOf(context),
  });
  return { account: toAccount(unwrap(context, account)) };
}

// long: a route table, one short entry per RPC of the ledger's three services; it reads best as one list.
export function registerLedgerServices(router: ConnectRouter, app: PaymentsApp): void {
  const reads = app.walletReads();
  serveStrictly(router, PaymentService, {
    async authorizePayment(request, context) {
      const payment = await app.authorizePayment(context.values.get(callerKey), {
        idempotencyKey: request.idempotencyKey,
        payerAccountId: request.payerAccountId,
        payeeAccountId: request.payeeAccountId,
        amount: request.amount,
        description: request.description,
        captureMode: CAPTURE_MODES[request.captureMode],
        holdDurationMs: durationMs(request.holdDuration),
        ...callOptionsOf(context),
      });
      return { payment: toPayment(unwrap(context, payment)) };
    },
    async capturePayment(request, context) {
      const payment = await app.capturePayment(context.values.get(callerKey), {
        idempotencyKey: request.idempotencyKey,
        paymentId: request.paymentId,
        amount: request.amount,
        ...callOptionsOf(context),
      });
      return { payment: toPayment(unwrap(context, payment)) };
    },
    async voidPayment(request, context) {
      const payment = await app.voidPayment(context.values.get(callerKey), {
        idempotencyKey: request.idempotencyKey,
        paymentId: request.paymentId,
        ...callOptionsOf(context),
      });
      return { payment: toPayment(unwrap(context, payment)) };
    },
    async refundPayment(request, context) {
      const result = unwrap(
        context,
        await app.refundPayment(context.values.get(callerKey), {
          idempotencyKey: request.idempotencyKey,
          paymentId: request.paymentId,
          amount: request.amount,
          reason: request.reason,
          ...callOptionsOf(context),
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
    async *watchAccount(request, context) {
      const updates = app
        .watches()
        .watch(
          context.values.get(callerKey),
          { accountId: request.accountId, afterVersion: request.afterVersion },
          context.signal,
        );
      for await (const update of updates) yield toWatchUpdate(update);
    },
    async listPayments(request, context) {
      const page = await reads.listPayments(
        context.values.get(callerKey),
        {
          accountId: request.accountId,
          pageSize: request.pageSize,
          pageToken: request.pageToken,
          // An unknown number (a newer client) maps to undefined, which validation refuses.
          statuses: request.statuses.map((status) => PAYMENT_STATUSES[status as keyof typeof PAYMENT_STATUSES]),
          createdFrom: request.createTimeFrom ? timestampDate(request.createTimeFrom) : undefined,
          createdBefore: request.createTimeTo ? timestampDate(request.createTimeTo) : undefined,
        },
        context.signal,
      );
      return { payments: page.items.map(toPayment), nextPageToken: page.nextPageToken };
    },
    async getRefund(request, context) {
      return {
        refund: toRefund(await reads.getRefund(context.values.get(callerKey), request.refundId, context.signal)),
      };
    },
    async listRefunds(request, context) {
      const page = await reads.listRefunds(
        context.values.get(callerKey),
        {
          paymentId: request.paymentId,
          pageSize: request.pageSize,
          pageToken: request.pageToken,
        },
        context.signal,
      );
      return { refunds: page.items.map(toRefund), nextPageToken: page.nextPageToken };
    },
  });

  serveStrictly(router, AccountService, {
    async createAccount(request, context) {
      const account = await app.createAccount(context.values.get(callerKey), {
        idempotencyKey: request.idempotencyKey,
        ownerRef: request.ownerRef,
        currency: request.currency,
        type: ACCOUNT_TYPES[request.type],
        ...callOptionsOf(context),
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
        idempotencyKey: request.idempotencyKey,
        accountId: request.accountId,
        amount: request.amount,
        ...callOptionsOf(context),
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
    async listAccounts(request, context) {
      const page = await reads.listAccounts(
        context.values.get(callerKey),
        {
          ownerRef: request.ownerRef,
          pageSize: request.pageSize,
          pageToken: request.pageToken,
        },
        context.signal,
      );
      return { accounts: page.items.map(toAccount), nextPageToken: page.nextPageToken };
    },
    freezeAccount: (request, context) => changeStatus(app, 'freeze', request, context),
    unfreezeAccount: (request, context) => changeStatus(app, 'unfreeze', request, context),
    closeAccount: (request, context) => changeStatus(app, 'close', request, context),
    async payoutFunds(request, context) {
      const payout = await app.payout(context.values.get(callerKey), {
        idempotencyKey: request.idempotencyKey,
        accountId: request.accountId,
        amount: request.amount,
        ...callOptionsOf(context),
      });
      return { payout: toPayout(unwrap(context, payout)) };
    },
  });
}
