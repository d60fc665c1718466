/**
 * The application layer: validates a request, turns it into a ledger command (or a read), and returns
 * domain records. Handlers in src/api stay thin around it; every rule about what a request may do lives here
 * or in the ledger.
 */
import type { LedgerDb } from '../db/client.js';
import { type DomainError, invalidArgument, notFound } from '../domain/errors.js';
import type {
  AccountRecord,
  BalanceRecord,
  DepositRecord,
  LedgerEntryRecord,
  PaymentRecord,
} from '../domain/records.js';
import type { CommandResult, LedgerCommand, LedgerOutcome } from '../ledger/commands.js';
import { findAccount, findBalance, findPayment, listEntries } from '../ledger/queries.js';
import { decodePageToken, encodePageToken } from './page-token.js';
import {
  MAX_DESCRIPTION_LENGTH,
  MAX_OWNER_REF_LENGTH,
  type MoneyInput,
  pageSizeOf,
  requireCurrency,
  requireId,
  requireIdempotencyKey,
  requirePositiveMoney,
  requireText,
} from './validation.js';

/** A mutation's result: the record, and whether it was replayed from an earlier request with the same key. */
export interface Mutation<T> {
  value: T;
  replayed: boolean;
}

export interface EntriesPage {
  entries: LedgerEntryRecord[];
  nextPageToken: string;
}

/** Applies commands to the ledger; a batcher can stand in for the ledger itself. */
export interface CommandRunner {
  apply(commands: LedgerCommand[]): Promise<CommandResult[]>;
}

export class PaymentsApp {
  constructor(
    private readonly db: LedgerDb,
    private readonly ledger: CommandRunner,
  ) {}

  async createAccount(
    principal: string,
    input: { idempotencyKey: string; ownerRef: string; currency: string },
  ): Promise<Mutation<AccountRecord>> {
    const outcome = await this.run({
      kind: 'createAccount',
      principal,
      idempotencyKey: requireIdempotencyKey(input.idempotencyKey),
      ownerRef: requireText('owner_ref', input.ownerRef, MAX_OWNER_REF_LENGTH, true),
      currency: requireCurrency('currency', input.currency),
    });
    return { value: expect(outcome.value, 'account').account, replayed: outcome.replayed };
  }

  async deposit(
    principal: string,
    input: { idempotencyKey: string; accountId: string; amount: MoneyInput | undefined },
  ): Promise<Mutation<DepositRecord>> {
    const idempotencyKey = requireIdempotencyKey(input.idempotencyKey);
    const accountExists = requireId('account_id', 'acct', input.accountId);
    const amount = requirePositiveMoney('amount', input.amount);
    if (!accountExists) throw notFound('account', input.accountId);
    const outcome = await this.run({
      kind: 'deposit',
      principal,
      idempotencyKey,
      accountId: input.accountId,
      amountMinor: amount.amountMinor,
      currency: amount.currency,
    });
    return { value: expect(outcome.value, 'deposit').deposit, replayed: outcome.replayed };
  }

  async authorizePayment(
    principal: string,
    input: {
      idempotencyKey: string;
      payerAccountId: string;
      payeeAccountId: string;
      amount: MoneyInput | undefined;
      description: string;
    },
  ): Promise<Mutation<PaymentRecord>> {
    const idempotencyKey = requireIdempotencyKey(input.idempotencyKey);
    const payerExists = requireId('payer_account_id', 'acct', input.payerAccountId);
    const payeeExists = requireId('payee_account_id', 'acct', input.payeeAccountId);
    if (input.payerAccountId === input.payeeAccountId) {
      throw invalidArgument('payee_account_id', 'SAME_ACCOUNT', 'payer_account_id and payee_account_id must differ');
    }
    const amount = requirePositiveMoney('amount', input.amount);
    const description = requireText('description', input.description, MAX_DESCRIPTION_LENGTH, false);
    if (!payerExists) throw notFound('account', input.payerAccountId);
    if (!payeeExists) throw notFound('account', input.payeeAccountId);
    const outcome = await this.run({
      kind: 'authorizePayment',
      principal,
      idempotencyKey,
      payerAccountId: input.payerAccountId,
      payeeAccountId: input.payeeAccountId,
      amountMinor: amount.amountMinor,
      currency: amount.currency,
      description,
    });
    return { value: expect(outcome.value, 'payment').payment, replayed: outcome.replayed };
  }

  async getAccount(accountId: string): Promise<AccountRecord> {
    const account = requireId('account_id', 'acct', accountId) ? await findAccount(this.db, accountId) : undefined;
    if (!account) throw notFound('account', accountId);
    return account;
  }

  async getBalance(accountId: string): Promise<BalanceRecord> {
    const balance = requireId('account_id', 'acct', accountId) ? await findBalance(this.db, accountId) : undefined;
    if (!balance) throw notFound('account', accountId);
    return balance;
  }

  async getPayment(paymentId: string): Promise<PaymentRecord> {
    const payment = requireId('payment_id', 'pay', paymentId) ? await findPayment(this.db, paymentId) : undefined;
    if (!payment) throw notFound('payment', paymentId);
    return payment;
  }

  async listEntries(input: { accountId: string; pageSize: number; pageToken: string }): Promise<EntriesPage> {
    const pageSize = pageSizeOf(input.pageSize);
    const beforeVersion = decodePageToken(input.pageToken, input.accountId);
    await this.getAccount(input.accountId);
    // One extra row tells whether another page exists without a count query.
    const rows = await listEntries(this.db, input.accountId, pageSize + 1, beforeVersion);
    const entries = rows.slice(0, pageSize);
    const last = entries[entries.length - 1];
    const nextPageToken = rows.length > pageSize && last ? encodePageToken(input.accountId, last.accountVersion) : '';
    return { entries, nextPageToken };
  }

  private async run(command: LedgerCommand): Promise<{ value: LedgerOutcome; replayed: boolean }> {
    const [result] = await this.ledger.apply([command]);
    if (!result) throw new Error('ledger returned no result');
    if (!result.ok) throw result.error satisfies DomainError;
    return { value: result.outcome, replayed: result.replayed };
  }
}

function expect<K extends LedgerOutcome['kind']>(outcome: LedgerOutcome, kind: K): Extract<LedgerOutcome, { kind: K }> {
  if (outcome.kind !== kind) throw new Error(`ledger answered ${outcome.kind} where ${kind} was expected`);
  return outcome as Extract<LedgerOutcome, { kind: K }>;
}
