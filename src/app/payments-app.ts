/**
 * The application layer: validates a request, turns it into a ledger command (or a read), and returns
 * domain records. Handlers in src/api stay thin around it; every rule about what a request may do lives here
 * or in the ledger.
 */
import { type Caller, ownerConstraintOf } from '../auth/caller.js';
import type { WatchConfig } from '../config/watch.js';
import type { LedgerDb } from '../db/client.js';
import { invariant } from '../domain/assert.js';
import { type DomainError, deadlineExceeded, invalidArgument, notFound } from '../domain/errors.js';
import type {
  AccountRecord,
  AccountStatus,
  AccountType,
  BalanceRecord,
  CaptureMode,
  DepositRecord,
  LedgerEntryRecord,
  PaymentRecord,
  PayoutRecord,
  RefundRecord,
} from '../domain/records.js';
import type { CommandRunner, LedgerCommand, LedgerOutcome, OptionalAmount } from '../ledger/commands.js';
import { findAccount, findBalance, findPayment, listEntries, ownerRefsOf } from '../ledger/queries.js';
import type { CommandOrigin } from '../observability/request-context.js';
import { AccountWatches } from './account-watch.js';
import { decodePageToken, encodePageToken, isPositiveInt64 } from './page-token.js';
import {
  isWellFormedId,
  MAX_DESCRIPTION_LENGTH,
  MAX_OWNER_REF_LENGTH,
  MAX_REFUND_REASON_LENGTH,
  type MoneyInput,
  pageSizeOf,
  requireCurrency,
  requireIdempotencyKey,
  requireOptionalPositiveMoney,
  requirePositiveMoney,
  requireText,
} from './validation.js';
import { WalletReads } from './wallet-reads.js';

/** What a call brings besides its input: its deadline and where its commands come from. */
export interface CallOptions {
  /** The caller's deadline: aborted when it passes (Connect's handler context signal). */
  signal?: AbortSignal;
  /**
   * The request issuing the call, recorded with the events its command causes. Required, so that a handler
   * cannot forget it and lose its events' correlation id silently; a job or the seeder passes commandOrigin().
   */
  origin: CommandOrigin;
}

/** A mutation's result: the record, and whether it was replayed from an earlier request with the same key. */
export interface Mutation<T> {
  value: T;
  replayed: boolean;
}

export interface EntriesPage {
  entries: LedgerEntryRecord[];
  nextPageToken: string;
}

/** How long a MANUAL payment's hold may last: the default, and the bounds a request may choose within. */
export interface HoldPolicy {
  defaultMs: number;
  minMs: number;
  maxMs: number;
}

const DEFAULT_WATCH_CONFIG: WatchConfig = { maxPerPrincipal: 5, maxTotal: 1_000, pollIntervalMs: 250 };

/**
 * The application layer of the ledger's RPCs: validates input, applies ownership (a wallet user acts only on
 * accounts it owns; someone else's answers NOT_FOUND, as a missing one would) and runs one ledger command.
 * Amounts are minor units of the currency (MoneyInput). Every mutation throws a DomainError, never a raw
 * database error, and changes nothing when it does:
 * - INVALID_ARGUMENT naming the field, for malformed input, before any query;
 * - IDEMPOTENCY_KEY_REUSED (the key was used for a different request) or REQUEST_IN_PROGRESS (it is being
 *   used right now); a repeat of a finished request returns its first result with `replayed: true`;
 * - DEADLINE_EXCEEDED (the caller's signal aborted before the write), UNAVAILABLE (DATABASE_UNAVAILABLE,
 *   DB_POOL_EXHAUSTED, LOCK_WAIT_TIMEOUT): retry with the same key;
 * - the reasons of the command's plan function (ledger/plan*.ts), listed on each method.
 */
export class PaymentsApp {
  private accountWatches: AccountWatches | undefined;

  constructor(
    private readonly db: LedgerDb,
    private readonly ledger: CommandRunner,
    private readonly holds: HoldPolicy,
    private readonly watchConfig: WatchConfig = DEFAULT_WATCH_CONFIG,
    private readonly onWatchPollError?: (error: unknown) => void,
  ) {}

  /** WatchAccount's streams (account-watch.ts); created on first use. */
  watches(): AccountWatches {
    this.accountWatches ??= new AccountWatches(this.db, this, this.watchConfig, this.onWatchPollError);
    return this.accountWatches;
  }

  /** Ends every open watch stream; called when the server starts shutting down. */
  closeWatches(): void {
    this.accountWatches?.close();
  }

  /** A new ACTIVE account with zero balances (type PERSONAL unless given). No plan reason: it never fails. */
  async createAccount(
    caller: Caller,
    input: { idempotencyKey: string; ownerRef: string; currency: string; type: AccountType | undefined } & CallOptions,
  ): Promise<Mutation<AccountRecord>> {
    const outcome = await this.run(input, {
      kind: 'createAccount',
      principal: caller.principal,
      idempotencyKey: requireIdempotencyKey(input.idempotencyKey),
      ownerRef: requireText('owner_ref', input.ownerRef, MAX_OWNER_REF_LENGTH, true),
      currency: requireCurrency('currency', input.currency),
      type: input.type ?? 'PERSONAL',
    });
    return { value: outcomeOfKind(outcome.value, 'account').account, replayed: outcome.replayed };
  }

  /**
   * Money into an account from its currency's funding account. NOT_FOUND (unknown, SYSTEM or malformed
   * account id), ACCOUNT_INACTIVE, CURRENCY_MISMATCH, AMOUNT_ABOVE_LIMIT, BALANCE_LIMIT_EXCEEDED.
   */
  async deposit(
    caller: Caller,
    input: { idempotencyKey: string; accountId: string; amount: MoneyInput | undefined } & CallOptions,
  ): Promise<Mutation<DepositRecord>> {
    const idempotencyKey = requireIdempotencyKey(input.idempotencyKey);
    const accountIdWellFormed = isWellFormedId('account_id', 'acct', input.accountId);
    const amount = requirePositiveMoney('amount', input.amount);
    if (!accountIdWellFormed) throw notFound('account', input.accountId, 'account_id');
    const outcome = await this.run(input, {
      kind: 'deposit',
      principal: caller.principal,
      idempotencyKey,
      accountId: input.accountId,
      amountMinor: amount.amountMinor,
      currency: amount.currency,
    });
    return { value: outcomeOfKind(outcome.value, 'deposit').deposit, replayed: outcome.replayed };
  }

  /**
   * A payment from payer to payee, AUTOMATIC (moved at once) or MANUAL (held for `holdDurationMs`, within the
   * hold policy, else INVALID_ARGUMENT). NOT_FOUND for an unknown or foreign payer or an unknown payee;
   * INVALID_ARGUMENT SAME_ACCOUNT. A refusal by the money rules is a DECLINED payment, not an error.
   */
  async authorizePayment(
    caller: Caller,
    input: {
      idempotencyKey: string;
      payerAccountId: string;
      payeeAccountId: string;
      amount: MoneyInput | undefined;
      description: string;
      captureMode: CaptureMode | undefined;
      /** Undefined: the policy's default. */
      holdDurationMs: number | undefined;
    } & CallOptions,
  ): Promise<Mutation<PaymentRecord>> {
    const idempotencyKey = requireIdempotencyKey(input.idempotencyKey);
    const payerIdWellFormed = isWellFormedId('payer_account_id', 'acct', input.payerAccountId);
    const payeeIdWellFormed = isWellFormedId('payee_account_id', 'acct', input.payeeAccountId);
    if (input.payerAccountId === input.payeeAccountId) {
      throw invalidArgument('payee_account_id', 'SAME_ACCOUNT', 'payer_account_id and payee_account_id must differ');
    }
    const amount = requirePositiveMoney('amount', input.amount);
    const description = requireText('description', input.description, MAX_DESCRIPTION_LENGTH, false);
    const captureMode = input.captureMode ?? 'AUTOMATIC';
    const holdDurationMs = this.holdDurationOf(captureMode, input.holdDurationMs);
    if (!payerIdWellFormed) throw notFound('account', input.payerAccountId, 'payer_account_id');
    if (!payeeIdWellFormed) throw notFound('account', input.payeeAccountId, 'payee_account_id');
    const outcome = await this.run(input, {
      kind: 'authorizePayment',
      principal: caller.principal,
      actingOwnerRef: ownerConstraintOf(caller),
      idempotencyKey,
      payerAccountId: input.payerAccountId,
      payeeAccountId: input.payeeAccountId,
      amountMinor: amount.amountMinor,
      currency: amount.currency,
      description,
      captureMode,
      holdDurationMs,
    });
    return { value: outcomeOfKind(outcome.value, 'payment').payment, replayed: outcome.replayed };
  }

  /**
   * Captures a MANUAL payment's hold, all of it or `amount` (the rest is released). NOT_FOUND,
   * PAYMENT_NOT_AUTHORIZED, HOLD_EXPIRED, CURRENCY_MISMATCH, AMOUNT_EXCEEDS_AUTHORIZED, PAYEE_ACCOUNT_INACTIVE.
   */
  async capturePayment(
    caller: Caller,
    input: { idempotencyKey: string; paymentId: string; amount: MoneyInput | undefined } & CallOptions,
  ): Promise<Mutation<PaymentRecord>> {
    const command = this.paymentCommand(input);
    const amount = requireOptionalPositiveMoney('amount', input.amount);
    const outcome = await this.run(input, {
      kind: 'capturePayment',
      ...this.actingAs(caller),
      ...command,
      amount,
    });
    return { value: outcomeOfKind(outcome.value, 'payment').payment, replayed: outcome.replayed };
  }

  /** Releases a MANUAL payment's hold to the payer. NOT_FOUND, PAYMENT_NOT_AUTHORIZED, HOLD_EXPIRED. */
  async voidPayment(
    caller: Caller,
    input: { idempotencyKey: string; paymentId: string } & CallOptions,
  ): Promise<Mutation<PaymentRecord>> {
    const outcome = await this.run(input, {
      kind: 'voidPayment',
      ...this.actingAs(caller),
      ...this.paymentCommand(input),
    });
    return { value: outcomeOfKind(outcome.value, 'payment').payment, replayed: outcome.replayed };
  }

  /**
   * Refunds a captured payment, what is left of it or `amount`, from the payee back to the payer. NOT_FOUND,
   * PAYMENT_NOT_REFUNDABLE, CURRENCY_MISMATCH, REFUND_EXCEEDS_CAPTURED; a refund the payee cannot pay is
   * recorded as DECLINED.
   */
  async refundPayment(
    caller: Caller,
    input: { idempotencyKey: string; paymentId: string; amount: MoneyInput | undefined; reason: string } & CallOptions,
  ): Promise<Mutation<{ refund: RefundRecord; payment: PaymentRecord }>> {
    const command = this.paymentCommand(input);
    const amount: OptionalAmount | null = requireOptionalPositiveMoney('amount', input.amount);
    const reason = requireText('reason', input.reason, MAX_REFUND_REASON_LENGTH, false);
    const outcome = await this.run(input, {
      kind: 'refundPayment',
      ...this.actingAs(caller),
      ...command,
      amount,
      reason,
    });
    const { refund, payment } = outcomeOfKind(outcome.value, 'refund');
    return { value: { refund, payment }, replayed: outcome.replayed };
  }

  /** Freeze, unfreeze or close (backends only: the method table keeps users out); see planChangeAccountStatus. */
  async changeAccountStatus(
    caller: Caller,
    action: 'freeze' | 'unfreeze' | 'close',
    input: { idempotencyKey: string; accountId: string; reason: string } & CallOptions,
  ): Promise<Mutation<AccountRecord>> {
    const idempotencyKey = requireIdempotencyKey(input.idempotencyKey);
    const accountIdWellFormed = isWellFormedId('account_id', 'acct', input.accountId);
    const reason = requireText('reason', input.reason, MAX_REFUND_REASON_LENGTH, false);
    if (!accountIdWellFormed) throw notFound('account', input.accountId, 'account_id');
    const outcome = await this.run(input, {
      kind: 'changeAccountStatus',
      principal: caller.principal,
      idempotencyKey,
      accountId: input.accountId,
      action,
      reason,
    });
    return { value: outcomeOfKind(outcome.value, 'account').account, replayed: outcome.replayed };
  }

  /** Available money out of the ledger: the mirror of deposit(). See planPayout for its reasons. */
  async payout(
    caller: Caller,
    input: { idempotencyKey: string; accountId: string; amount: MoneyInput | undefined } & CallOptions,
  ): Promise<Mutation<PayoutRecord>> {
    const idempotencyKey = requireIdempotencyKey(input.idempotencyKey);
    const accountIdWellFormed = isWellFormedId('account_id', 'acct', input.accountId);
    const amount = requirePositiveMoney('amount', input.amount);
    if (!accountIdWellFormed) throw notFound('account', input.accountId, 'account_id');
    const outcome = await this.run(input, {
      kind: 'payout',
      principal: caller.principal,
      idempotencyKey,
      accountId: input.accountId,
      amountMinor: amount.amountMinor,
      currency: amount.currency,
    });
    return { value: outcomeOfKind(outcome.value, 'payout').payout, replayed: outcome.replayed };
  }

  private actingAs(caller: Caller) {
    return { principal: caller.principal, actingOwnerRef: ownerConstraintOf(caller) };
  }

  /** The key and payment id every command on an existing payment carries, validated. */
  private paymentCommand(input: { idempotencyKey: string; paymentId: string }) {
    const idempotencyKey = requireIdempotencyKey(input.idempotencyKey);
    if (!isWellFormedId('payment_id', 'pay', input.paymentId)) throw notFound('payment', input.paymentId, 'payment_id');
    return { idempotencyKey, paymentId: input.paymentId };
  }

  private holdDurationOf(captureMode: CaptureMode, requestedMs: number | undefined): number {
    if (captureMode === 'AUTOMATIC') {
      if (requestedMs !== undefined) {
        throw invalidArgument(
          'hold_duration',
          'HOLD_DURATION_WITHOUT_HOLD',
          'hold_duration applies to MANUAL capture only',
        );
      }
      return 0;
    }
    if (requestedMs === undefined) return this.holds.defaultMs;
    if (requestedMs < this.holds.minMs || requestedMs > this.holds.maxMs) {
      throw invalidArgument(
        'hold_duration',
        'HOLD_DURATION_OUT_OF_RANGE',
        `hold_duration must be between ${this.holds.minMs / 1000} and ${this.holds.maxMs / 1000} seconds`,
      );
    }
    return requestedMs;
  }

  /** The wallet's listings (accounts, payments, refunds), under the same ownership rules as the reads here. */
  walletReads(): WalletReads {
    return new WalletReads(this.db, this);
  }

  /** Someone else's account answers NOT_FOUND exactly as a missing one would: no existence oracle. */
  async getAccount(caller: Caller, accountId: string, signal?: AbortSignal): Promise<AccountRecord> {
    stopIfAborted(signal);
    const account = isWellFormedId('account_id', 'acct', accountId) ? await findAccount(this.db, accountId) : undefined;
    if (!account || !visibleTo(caller, [account.ownerRef])) throw notFound('account', accountId, 'account_id');
    return account;
  }

  /** Posted, held, pending settlement and available, in minor units. NOT_FOUND as getAccount. */
  async getBalance(
    caller: Caller,
    accountId: string,
    signal?: AbortSignal,
  ): Promise<BalanceRecord & { status: AccountStatus }> {
    stopIfAborted(signal);
    const balance = isWellFormedId('account_id', 'acct', accountId) ? await findBalance(this.db, accountId) : undefined;
    if (!balance || !visibleTo(caller, [balance.ownerRef])) throw notFound('account', accountId, 'account_id');
    return balance;
  }

  /** A user sees payments they made or received. */
  async getPayment(caller: Caller, paymentId: string, signal?: AbortSignal): Promise<PaymentRecord> {
    stopIfAborted(signal);
    const payment = isWellFormedId('payment_id', 'pay', paymentId) ? await findPayment(this.db, paymentId) : undefined;
    stopIfAborted(signal);
    const owners =
      payment && caller.kind === 'user'
        ? await ownerRefsOf(this.db, [payment.payerAccountId, payment.payeeAccountId])
        : [];
    if (!payment || !visibleTo(caller, owners)) throw notFound('payment', paymentId, 'payment_id');
    return payment;
  }

  /**
   * An account's ledger entries, newest first, at most `pageSize` (0: the default; capped), continued with
   * `pageToken`. NOT_FOUND as getAccount; INVALID_ARGUMENT for a negative page size or a page token that is
   * not this account's.
   */
  async listEntries(
    caller: Caller,
    input: { accountId: string; pageSize: number; pageToken: string },
    signal?: AbortSignal,
  ): Promise<EntriesPage> {
    const pageSize = pageSizeOf(input.pageSize);
    const position = decodePageToken(input.pageToken, input.accountId, /^\d{1,19}$/, isPositiveInt64);
    const beforeVersion = position === undefined ? undefined : BigInt(position);
    await this.getAccount(caller, input.accountId, signal);
    // Reads stop between queries once the caller's deadline has passed (no one waits for the answer).
    stopIfAborted(signal);
    // One extra row tells whether another page exists without a count query.
    const rows = await listEntries(this.db, input.accountId, pageSize + 1, beforeVersion);
    const entries = rows.slice(0, pageSize);
    const last = entries[entries.length - 1];
    const nextPageToken =
      rows.length > pageSize && last ? encodePageToken(input.accountId, last.accountVersion.toString()) : '';
    return { entries, nextPageToken };
  }

  private async run(call: CallOptions, command: LedgerCommand): Promise<{ value: LedgerOutcome; replayed: boolean }> {
    const { signal } = call;
    // Past its deadline already (e.g. spent in authentication): not started at all.
    stopIfAborted(signal);
    const [result] = await this.ledger.apply([Object.assign({}, command, { origin: call.origin })], { signal });
    invariant(result, 'ledger returned no result');
    if (!result.ok) throw result.error satisfies DomainError;
    return { value: result.outcome, replayed: result.replayed };
  }
}

function stopIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw deadlineExceeded();
}

/** Backends see everything their scopes allow; a user only what one of `ownerRefs` says they own. */
function visibleTo(caller: Caller, ownerRefs: string[]): boolean {
  return caller.kind === 'backend' || ownerRefs.includes(caller.userId);
}

/** The ledger's outcome for a command of a known kind; any other kind is a programmer error. */
function outcomeOfKind<K extends LedgerOutcome['kind']>(
  outcome: LedgerOutcome,
  kind: K,
): Extract<LedgerOutcome, { kind: K }> {
  invariant(outcome.kind === kind, `ledger answered ${outcome.kind} where ${kind} was expected`);
  return outcome as Extract<LedgerOutcome, { kind: K }>;
}
