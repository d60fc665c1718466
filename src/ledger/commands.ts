/**
 * The ledger's input and output. The core applies a list of commands in one database transaction and returns
 * one result per command, in order; a single request is a list of one.
 */
import type { DomainError } from '../domain/errors.js';
import type { AccountRecord, BalanceRecord, DepositRecord, PaymentRecord } from '../domain/records.js';

/** Who asked, and under which idempotency key. Keys are unique per principal. */
interface Keyed {
  principal: string;
  idempotencyKey: string;
}

export interface CreateAccountCommand extends Keyed {
  kind: 'createAccount';
  ownerRef: string;
  currency: string;
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
}

export type LedgerCommand = CreateAccountCommand | DepositCommand | AuthorizePaymentCommand;

export type LedgerOutcome =
  | { kind: 'account'; account: AccountRecord }
  | { kind: 'deposit'; deposit: DepositRecord; balance: BalanceRecord }
  | { kind: 'payment'; payment: PaymentRecord };

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
      return { operation: command.kind, owner_ref: command.ownerRef, currency: command.currency };
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
      };
  }
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
