/**
 * Builders for the pure ledger rules (src/ledger/plan*.ts): locked account and payment rows, a PlanContext
 * around them, and the commands. Shared by the plan*.test.ts files so each test states only what it changes.
 */
import { DomainError } from '../../src/domain/errors.js';
import type {
  AuthorizePaymentCommand,
  CapturePaymentCommand,
  ExpireHoldCommand,
  OptionalAmount,
  RefundPaymentCommand,
  VoidPaymentCommand,
} from '../../src/ledger/commands.js';
import { type AccountState, emptyEffects, type PaymentState, type PlanContext } from '../../src/ledger/state.js';

/** The clock every plan in these tests reads (context.now). */
export const now = new Date('2026-01-01T00:00:00Z');

/** An ACTIVE personal USD customer account with `postedMinor` all available, unless overridden. */
export function account(id: string, postedMinor: bigint, overrides: Partial<AccountState> = {}): AccountState {
  return {
    id,
    ownerRef: 'user:x',
    currency: 'USD',
    status: 'ACTIVE',
    type: 'PERSONAL',
    ledgerRole: 'USER',
    createdAt: now,
    postedMinor,
    heldMinor: 0n,
    pendingSettlementMinor: 0n,
    version: 0n,
    updatedAt: now,
    ...overrides,
  };
}

/** A context at `now` with these accounts locked, no payments, and a payment limit of 1,000 minor units. */
export function contextWith(...states: AccountState[]): PlanContext {
  return {
    now,
    maxPaymentMinor: () => 1_000n,
    accounts: new Map(states.map((state) => [state.id, state])),
    payments: new Map(),
    effects: emptyEffects(),
  };
}

/** An AUTOMATIC USD payment from acct_a to acct_b, unless overridden. */
export function payment(
  amountMinor: bigint,
  overrides: Partial<AuthorizePaymentCommand> = {},
): AuthorizePaymentCommand {
  return {
    kind: 'authorizePayment',
    principal: 'p',
    idempotencyKey: 'k',
    payerAccountId: 'acct_a',
    payeeAccountId: 'acct_b',
    amountMinor,
    currency: 'USD',
    description: '',
    captureMode: 'AUTOMATIC',
    holdDurationMs: 0,
    ...overrides,
  };
}

/** A locked AUTHORIZED (MANUAL) USD hold of `amountMinor` from acct_a to acct_c, expiring at `expiresAt`. */
export function hold(id: string, amountMinor: bigint, expiresAt: Date): PaymentState {
  return {
    id,
    payerAccountId: 'acct_a',
    payeeAccountId: 'acct_c',
    amountMinor,
    currency: 'USD',
    status: 'AUTHORIZED',
    declineReason: null,
    description: '',
    captureMode: 'MANUAL',
    capturedMinor: 0n,
    refundedMinor: 0n,
    expiresAt,
    awaitsSettlement: false,
    settlementId: null,
    version: 1,
    createdAt: now,
    updatedAt: now,
    lockedVersion: 1,
  };
}

/** A USD amount for capture and refund; null in those commands means "all of it". */
export function usd(amountMinor: bigint): OptionalAmount {
  return { amountMinor, currency: 'USD' };
}

export function capture(paymentId: string, amount: OptionalAmount | null = null): CapturePaymentCommand {
  return { kind: 'capturePayment', principal: 'p', idempotencyKey: 'c', paymentId, amount };
}

export function voidHold(paymentId: string): VoidPaymentCommand {
  return { kind: 'voidPayment', principal: 'p', idempotencyKey: 'v', paymentId };
}

export function expireHold(paymentId: string): ExpireHoldCommand {
  return { kind: 'expireHold', principal: 'sweeper', idempotencyKey: paymentId, paymentId };
}

export function refund(paymentId: string, amount: OptionalAmount | null = null): RefundPaymentCommand {
  return { kind: 'refundPayment', principal: 'p', idempotencyKey: 'r', paymentId, amount, reason: '' };
}

/** A locked COMPLETED AUTOMATIC payment of `capturedMinor` from acct_a to acct_b, unless overridden. */
export function completedPayment(id: string, capturedMinor: bigint, overrides: Partial<PaymentState> = {}) {
  return {
    ...hold(id, capturedMinor, now),
    payeeAccountId: 'acct_b',
    status: 'COMPLETED',
    captureMode: 'AUTOMATIC',
    capturedMinor,
    expiresAt: null,
    ...overrides,
  } satisfies PaymentState;
}

/** The reason of a refusal, or 'no error' for an outcome, so a mismatch shows what happened instead. */
export function errorReason(outcome: unknown): string {
  return outcome instanceof DomainError ? outcome.reason : 'no error';
}
