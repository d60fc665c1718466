/**
 * The ledger's input and output. The core applies a list of commands in one database transaction and returns
 * one result per command, in order; a single request is a list of one.
 */
import type { DomainError } from '../domain/errors.js';
import type {
  AccountRecord,
  AccountType,
  BalanceRecord,
  CaptureMode,
  DepositRecord,
  PaymentRecord,
  PayoutRecord,
  RefundRecord,
} from '../domain/records.js';
import type { CommandOrigin } from '../observability/request-context.js';

/** Who asked, and under which idempotency key. Keys are unique per principal. */
interface Keyed {
  principal: string;
  idempotencyKey: string;
  /**
   * Set when a wallet user acts: the owner_ref the command's own account must have (the payer for a payment,
   * the payee for capture, void and refund). Any other account answers NOT_FOUND, exactly like a missing one.
   */
  actingOwnerRef?: string;
  /** The request (and span) that issued the command: recorded with its outbox events. */
  origin?: CommandOrigin;
}

export interface CreateAccountCommand extends Keyed {
  kind: 'createAccount';
  ownerRef: string;
  currency: string;
  type: AccountType;
}

export interface DepositCommand extends Keyed {
  kind: 'deposit';
  accountId: string;
  amountMinor: bigint;
  currency: string;
}

export interface AuthorizePaymentCommand extends Keyed {
  kind: 'authorizePayment';
  payerAccountId: string;
  payeeAccountId: string;
  amountMinor: bigint;
  currency: string;
  description: string;
  captureMode: CaptureMode;
  /** MANUAL only: how long the hold lasts. */
  holdDurationMs: number;
}

/** An amount a client may leave out: null means "all of it" (the whole hold, all that is refundable). */
export interface OptionalAmount {
  amountMinor: bigint;
  currency: string;
}

export interface CapturePaymentCommand extends Keyed {
  kind: 'capturePayment';
  paymentId: string;
  amount: OptionalAmount | null;
}

export interface VoidPaymentCommand extends Keyed {
  kind: 'voidPayment';
  paymentId: string;
}

/** Issued by the hold sweeper, keyed by the payment so that several sweepers expire a hold once. */
export interface ExpireHoldCommand extends Keyed {
  kind: 'expireHold';
  paymentId: string;
}

export interface RefundPaymentCommand extends Keyed {
  kind: 'refundPayment';
  paymentId: string;
  amount: OptionalAmount | null;
  reason: string;
}

/** Freeze, unfreeze or close an account (backends only). */
export interface ChangeAccountStatusCommand extends Keyed {
  kind: 'changeAccountStatus';
  accountId: string;
  action: 'freeze' | 'unfreeze' | 'close';
  reason: string;
}

/** Available money out of the ledger, to the currency's funding account: the mirror of a deposit. */
export interface PayoutCommand extends Keyed {
  kind: 'payout';
  accountId: string;
  amountMinor: bigint;
  currency: string;
}

export type LedgerCommand =
  | ChangeAccountStatusCommand
  | PayoutCommand
  | CreateAccountCommand
  | DepositCommand
  | AuthorizePaymentCommand
  | CapturePaymentCommand
  | VoidPaymentCommand
  | ExpireHoldCommand
  | RefundPaymentCommand;

/** Commands that act on an existing payment, which is locked before its accounts. */
export type PaymentCommand = CapturePaymentCommand | VoidPaymentCommand | ExpireHoldCommand | RefundPaymentCommand;

export function paymentIdOf(command: LedgerCommand): string | undefined {
  return 'paymentId' in command ? command.paymentId : undefined;
}

export type LedgerOutcome =
  | { kind: 'account'; account: AccountRecord }
  | { kind: 'deposit'; deposit: DepositRecord; balance: BalanceRecord }
  | { kind: 'payout'; payout: PayoutRecord; balance: BalanceRecord }
  | { kind: 'payment'; payment: PaymentRecord }
  | { kind: 'refund'; refund: RefundRecord; payment: PaymentRecord };

/** How a caller bounds its commands in time. */
export interface ApplyOptions {
  /** Aborted when the caller's deadline passes (or it gives up): applies to every command of the list. */
  signal?: AbortSignal;
  /** One per command, by index (a batch gathers several callers); overrides `signal` where set. */
  signals?: readonly (AbortSignal | undefined)[];
}

export type CommandResult =
  /** replayed: the outcome was stored by an earlier request with the same key; nothing happened now. */
  { ok: true; outcome: LedgerOutcome; replayed: boolean } | { ok: false; error: DomainError };

/**
 * The parameters that make two requests "the same request" for idempotency. Everything but who asked and
 * the key itself; values as strings so they compare exactly after a round trip through jsonb.
 */
export function idempotencyParams(command: LedgerCommand): Record<string, string> {
  switch (command.kind) {
    case 'createAccount':
      return { operation: command.kind, owner_ref: command.ownerRef, currency: command.currency, type: command.type };
    case 'changeAccountStatus':
      return { operation: command.action, account_id: command.accountId, reason: command.reason };
    case 'payout':
    case 'deposit':
      return {
        operation: command.kind,
        account_id: command.accountId,
        'amount.amount_minor': command.amountMinor.toString(),
        'amount.currency': command.currency,
      };
    case 'authorizePayment':
      return {
        operation: command.kind,
        payer_account_id: command.payerAccountId,
        payee_account_id: command.payeeAccountId,
        'amount.amount_minor': command.amountMinor.toString(),
        'amount.currency': command.currency,
        description: command.description,
        capture_mode: command.captureMode,
        hold_duration_ms: command.captureMode === 'MANUAL' ? String(command.holdDurationMs) : '',
      };
    case 'capturePayment':
      return { operation: command.kind, payment_id: command.paymentId, ...optionalAmountParams(command.amount) };
    case 'voidPayment':
    case 'expireHold':
      return { operation: command.kind, payment_id: command.paymentId };
    case 'refundPayment':
      return {
        operation: command.kind,
        payment_id: command.paymentId,
        ...optionalAmountParams(command.amount),
        reason: command.reason,
      };
  }
}

function optionalAmountParams(amount: OptionalAmount | null): Record<string, string> {
  return {
    'amount.amount_minor': amount ? amount.amountMinor.toString() : '',
    'amount.currency': amount ? amount.currency : '',
  };
}

/** The first parameter that differs between a stored request and a new one, or undefined when equal. */
export function firstDifference(stored: Record<string, string>, incoming: Record<string, string>): string | undefined {
  // Incoming first: its keys are in request order, while jsonb has reordered the stored ones.
  const names = new Set([...Object.keys(incoming), ...Object.keys(stored)]);
  for (const name of names) {
    if (stored[name] !== incoming[name]) return name;
  }
  return undefined;
}

/**
 * Applies commands to the ledger; a batcher (src/ledger/batcher.ts) can stand in for the ledger itself.
 * `options.signal` carries the caller's deadline: a command whose signal aborted before it was written answers
 * DEADLINE_EXCEEDED.
 */
export interface CommandRunner {
  apply(commands: LedgerCommand[], options?: ApplyOptions): Promise<CommandResult[]>;
}
