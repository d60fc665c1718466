/**
 * The ledger core: applies a list of commands in one database transaction and returns one result per
 * command, in order. Steps, each a single set-based statement for the whole list:
 *   1. claim the idempotency keys (sorted), replaying outcomes of keys already used;
 *   2. lock the payments the commands act on, then every balance and account row involved, each in id order
 *      (locks.ts: one global order, so A→B and B→A never deadlock);
 *   3. plan each command in memory against the locked state (plan.ts, pure);
 *   4. write accounts, payments, refunds, entries, balances, outbox events and stored outcomes, all in one
 *      statement (writes.ts).
 * A command that fails (e.g. NOT_FOUND) writes nothing and gives its key back; the others still commit.
 */
import { inArray } from 'drizzle-orm';
import type { LedgerDb, LedgerTx } from '../db/client.js';
import { accountBalances, accounts } from '../db/schema.js';
import { invariant } from '../domain/assert.js';
import { concurrentRequest, DomainError, deadlineExceeded, idempotencyKeyReused } from '../domain/errors.js';
import type { DomainEvent } from '../events/domain-events.js';
import { metrics } from '../observability/metrics.js';
import { type CommandOrigin, commandOrigin } from '../observability/request-context.js';
import { inSpan } from '../observability/tracing.js';
import {
  type ApplyOptions,
  type CommandResult,
  firstDifference,
  idempotencyParams,
  type LedgerCommand,
  type LedgerOutcome,
  paymentIdOf,
} from './commands.js';
import { claimKeys, idempotencyKeyOf, releaseKeysSql, type StoredKey, storeOutcomesSql } from './idempotency-store.js';
import { claimKeysAndLockAccounts, lockAccounts, lockExpiredHolds, lockPayments } from './locks.js';
import { accountsToLock, planCommand } from './plan.js';
import { type AccountState, emptyEffects, fundingAccountId, type PaymentState, type PlanContext } from './state.js';
import { inTransaction } from './transaction.js';
import { writeEffects } from './writes.js';
import { preparedCanWrite, writeEffectsPrepared } from './writes-prepared.js';

export interface LedgerOptions {
  idempotencyRetentionMs: number;
  maxPaymentMinor(currency: string): bigint;
  /** The largest deposit in a currency, in minor units; maxPaymentMinor when absent. */
  maxDepositMinor?(currency: string): bigint;
  /** Transactions retried after a deadlock or serialization failure, at most. */
  maxAttempts?: number;
  now?: () => Date;
}

export const MAX_COMMANDS_PER_TRANSACTION = 500;
/** Expired holds released ahead of the sweeper in one transaction, at most; the sweeper does the rest. */
const MAX_EXPIRED_HOLDS_RELEASED = 100;

type IdempotencyParams = ReturnType<typeof idempotencyParams>;
type KeyRef = { principal: string; idempotencyKey: string };
type OutcomeToStore = KeyRef & { outcome: LedgerOutcome };

function depositCurrencies(commands: LedgerCommand[], except: Set<string>): string[] {
  const currencies = commands.flatMap((command) => (command.kind === 'deposit' ? [command.currency] : []));
  return [...new Set(currencies)].filter((currency) => !except.has(currency));
}

export class Ledger {
  /** Currencies whose funding account is known to exist; saves an insert per deposit. */
  private readonly fundedCurrencies = new Set<string>();

  constructor(
    private readonly db: LedgerDb,
    private readonly options: LedgerOptions,
  ) {}

  /**
   * Applies `commands` in one transaction; one result per command, in order. A command whose signal has aborted
   * (its deadline passed) before its batch starts is not started, and one that aborts after planning but before
   * the write is dropped from the writes (the rest are planned again without it); both answer DEADLINE_EXCEEDED.
   * A refused command's result carries its DomainError (plan*.ts list the reasons; REQUEST_IN_PROGRESS and
   * IDEMPOTENCY_KEY_REUSED come from the key) and writes nothing; a repeated key replays its first result.
   * At most MAX_COMMANDS_PER_TRANSACTION (500) commands, else an InvariantViolation (callers batch within it).
   * Throws only for the whole list: a database failure (translated by transaction.ts) or a bug.
   */
  async apply(commands: LedgerCommand[], options: ApplyOptions = {}): Promise<CommandResult[]> {
    if (commands.length === 0) return [];
    invariant(
      commands.length <= MAX_COMMANDS_PER_TRANSACTION,
      `at most ${MAX_COMMANDS_PER_TRANSACTION} commands per transaction, got ${commands.length}`,
    );
    const aborted = (index: number) => (options.signals?.[index] ?? options.signal)?.aborted === true;
    if (commands.every((_, index) => aborted(index))) return commands.map(() => deadlineResult());
    const started = performance.now();
    let committed = false;
    let results: CommandResult[];
    try {
      results = await inSpan('ledger.transaction', { 'ledger.commands': commands.length }, () =>
        inTransaction(this.db, (tx) => this.applyInTransaction(tx, commands, aborted), this.options.maxAttempts),
      );
      committed = true;
    } finally {
      metrics.ledgerTransaction(committed, commands.length, (performance.now() - started) / 1000);
    }
    // Only now, after the commit, is it certain that these funding accounts exist: those of deposits that
    // succeeded (a funding account made for refused deposits only is removed again, see below).
    commands.forEach((command, index) => {
      if (command.kind === 'deposit' && results[index]?.ok) this.fundedCurrencies.add(command.currency);
    });
    return results;
  }

  /** The phases of one transaction: claim the keys, lock the rows, plan in memory, write once, fill repeats. */
  private async applyInTransaction(
    tx: LedgerTx,
    commands: LedgerCommand[],
    aborted: (index: number) => boolean,
  ): Promise<CommandResult[]> {
    const now = this.options.now?.() ?? new Date();
    const results: (CommandResult | undefined)[] = new Array(commands.length);
    const params = commands.map(idempotencyParams);

    // A key repeated inside one list is settled after its first use (fillRepeatedKeys).
    const firstIndexOfKey = firstIndexPerKey(commands, aborted, results);
    const { toPlan, locked, createdFunding } = await this.claimAndLock(
      tx,
      commands,
      params,
      [...firstIndexOfKey.values()],
      results,
      now,
    );
    const { context, outcomesToStore, keysToRelease } = this.planUntilNoneExpired(
      commands,
      toPlan,
      results,
      now,
      locked,
      aborted,
    );

    // A refused request writes nothing: a funding account this transaction made goes again unless one of its
    // deposits succeeded (its currency's first deposit to an unknown account must not leave it behind).
    await this.removeUnusedFundingAccounts(
      tx,
      createdFunding.filter((currency) => !context.effects.deposits.some((d) => d.currency === currency)),
    );
    await writePlan(tx, context, outcomesToStore, keysToRelease);
    fillRepeatedKeys(commands, params, firstIndexOfKey, results);
    return results as CommandResult[];
  }

  /**
   * Claims the idempotency key of each first use and locks the rows the claimed commands touch; returns the
   * indices to plan and the locked rows. A key held by a transaction still running gets CONCURRENT_REQUEST, a
   * key already stored its replay (or mismatch), in `results`. When every account is known from the commands
   * alone (none acts on an existing payment or needs a new funding account: the hot path), the claim and the
   * locks are one statement; otherwise the claim comes first and the locks follow what it let through.
   */
  private async claimAndLock(
    tx: LedgerTx,
    commands: LedgerCommand[],
    params: IdempotencyParams[],
    firstUses: number[],
    results: (CommandResult | undefined)[],
    now: Date,
  ) {
    const claims = firstUses.map((index) => Object.assign({}, commands[index]!, { params: params[index]! }));
    const retentionMs = this.options.idempotencyRetentionMs;
    const firstCommands = firstUses.map((index) => commands[index]!);
    const knownUpFront =
      claims.length > 0 &&
      firstCommands.every((command) => paymentIdOf(command) === undefined) &&
      depositCurrencies(firstCommands, this.fundedCurrencies).length === 0;
    if (knownUpFront) {
      const accountIds = firstCommands.flatMap((command) => accountsToLock(command, undefined));
      const claim = await claimKeysAndLockAccounts(tx, claims, accountIds, now, retentionMs);
      const toPlan = this.toPlanAfterClaim(commands, params, firstUses, claim, results);
      const locked = { accounts: claim.accounts, payments: new Map<string, PaymentState>() };
      const planned = toPlan.map((index) => commands[index]!);
      await this.lockExpiredHoldsOfPayers(tx, planned, locked.accounts, locked.payments, now);
      return { toPlan, locked, createdFunding: [] as string[] };
    }
    const claim = await claimKeys(tx, claims, now, retentionMs);
    const toPlan = this.toPlanAfterClaim(commands, params, firstUses, claim, results);
    const planned = toPlan.map((index) => commands[index]!);
    const createdFunding = await this.ensureFundingAccounts(tx, depositCurrencies(planned, this.fundedCurrencies));
    const locked = await this.lockRowsOf(tx, planned, now);
    return { toPlan, locked, createdFunding };
  }

  /** The first uses whose key was claimed (to plan); the others' results (in progress, replay, mismatch). */
  private toPlanAfterClaim(
    commands: LedgerCommand[],
    params: IdempotencyParams[],
    firstUses: number[],
    { claimed, existing }: { claimed: Set<string>; existing: Map<string, StoredKey> },
    results: (CommandResult | undefined)[],
  ): number[] {
    const toPlan: number[] = [];
    for (const index of firstUses) {
      const command = commands[index]!;
      const key = idempotencyKeyOf(command.principal, command.idempotencyKey);
      const stored = existing.get(key);
      if (claimed.has(key)) toPlan.push(index);
      else if (!stored) results[index] = { ok: false, error: concurrentRequest() };
      else results[index] = replayOrMismatch(stored.params, params[index]!, stored.outcome);
    }
    return toPlan;
  }

  /** Locks the payments, then the accounts, the planned commands touch, plus the expired holds of payers. */
  private async lockRowsOf(
    tx: LedgerTx,
    planned: LedgerCommand[],
    now: Date,
  ): Promise<{ accounts: Map<string, AccountState>; payments: Map<string, PaymentState> }> {
    const payments = await lockPayments(
      tx,
      planned.flatMap((command) => paymentIdOf(command) ?? []),
    );
    const accounts = await lockAccounts(
      tx,
      planned.flatMap((command) => {
        const paymentId = paymentIdOf(command);
        return accountsToLock(command, paymentId ? payments.get(paymentId) : undefined);
      }),
    );
    await this.lockExpiredHoldsOfPayers(tx, planned, accounts, payments, now);
    return { accounts, payments };
  }

  /**
   * Plans `toPlan` (indices into `commands`) against the locked rows, filling `results`. A command whose deadline
   * passed meanwhile is dropped and the others planned again from a fresh copy of the locked rows, since its
   * effects may have changed what they saw; each round drops at least one, so at most `toPlan.length` rounds.
   */
  private planUntilNoneExpired(
    commands: LedgerCommand[],
    toPlan: number[],
    results: (CommandResult | undefined)[],
    now: Date,
    locked: { accounts: Map<string, AccountState>; payments: Map<string, PaymentState> },
    aborted: (index: number) => boolean,
  ) {
    const expired: number[] = [];
    let remaining = toPlan;
    for (;;) {
      const context: PlanContext = {
        now,
        maxPaymentMinor: this.options.maxPaymentMinor,
        maxDepositMinor: this.options.maxDepositMinor,
        accounts: copyRows(locked.accounts),
        payments: copyRows(locked.payments),
        effects: emptyEffects(),
      };
      const outcomesToStore = [];
      const keysToRelease = expired.map((index) => commands[index]!);
      for (const index of remaining) {
        const command = commands[index]!;
        const eventsBefore = context.effects.events.length;
        const outcome = planCommand(command, context);
        tagOrigin(context.effects.events, eventsBefore, command.origin);
        if (outcome instanceof DomainError) {
          results[index] = { ok: false, error: outcome };
          keysToRelease.push(command);
        } else {
          results[index] = { ok: true, outcome, replayed: false };
          outcomesToStore.push({ principal: command.principal, idempotencyKey: command.idempotencyKey, outcome });
        }
      }
      // Checked after planning, with no await before the write: the last moment a command can still be dropped.
      const newlyExpired = new Set(remaining.filter((index) => results[index]?.ok === true && aborted(index)));
      if (newlyExpired.size === 0) return { context, outcomesToStore, keysToRelease };
      for (const index of newlyExpired) {
        results[index] = deadlineResult();
        expired.push(index);
      }
      remaining = remaining.filter((index) => !newlyExpired.has(index));
    }
  }

  /**
   * Adds to `lockedPayments` the expired holds of accounts about to pay, so that the plan releases them first
   * (plan-payment.ts: releaseExpiredHolds). Asked only for accounts with something held: no extra statement
   * on the common path.
   */
  private async lockExpiredHoldsOfPayers(
    tx: LedgerTx,
    planned: LedgerCommand[],
    lockedAccounts: Map<string, AccountState>,
    lockedPayments: Map<string, PaymentState>,
    now: Date,
  ): Promise<void> {
    // Whoever pays: the payer of a new payment, the payee of a refund, the account a payout empties.
    const payers = planned.flatMap((command) => {
      const paying =
        command.kind === 'authorizePayment'
          ? command.payerAccountId
          : command.kind === 'refundPayment'
            ? lockedPayments.get(command.paymentId)?.payeeAccountId
            : command.kind === 'payout'
              ? command.accountId
              : undefined;
      return paying && (lockedAccounts.get(paying)?.heldMinor ?? 0n) > 0n ? [paying] : [];
    });
    if (payers.length === 0) return;
    const expired = await lockExpiredHolds(tx, payers, now, MAX_EXPIRED_HOLDS_RELEASED);
    for (const [id, payment] of expired) if (!lockedPayments.has(id)) lockedPayments.set(id, payment);
  }

  /** Creates missing funding accounts for `currencies`; returns the currencies whose account it created. */
  private async ensureFundingAccounts(tx: LedgerTx, currencies: string[]): Promise<string[]> {
    if (currencies.length === 0) return [];
    const created = await tx
      .insert(accounts)
      .values(
        currencies.map((currency) => ({
          id: fundingAccountId(currency),
          ownerRef: 'system:funding',
          currency,
          status: 'ACTIVE' as const,
          ledgerRole: 'SYSTEM' as const,
        })),
      )
      .onConflictDoNothing()
      .returning({ currency: accounts.currency });
    await tx
      .insert(accountBalances)
      .values(currencies.map((currency) => ({ accountId: fundingAccountId(currency), currency, allowNegative: true })))
      .onConflictDoNothing();
    return created.map((row) => row.currency);
  }

  private async removeUnusedFundingAccounts(tx: LedgerTx, currencies: string[]): Promise<void> {
    if (currencies.length === 0) return;
    const ids = currencies.map(fundingAccountId);
    await tx.delete(accountBalances).where(inArray(accountBalances.accountId, ids));
    await tx.delete(accounts).where(inArray(accounts.id, ids));
  }
}

/**
 * Records where the events a command just planned came from: its own origin (so that requests batched into
 * one transaction keep theirs), else the current request and span (e.g. a background job's ledger span).
 */
/**
 * The index of each key's first use, in input order. A command past its deadline before the batch starts is
 * not started at all (its key is not even claimed): its result is set here.
 */
function firstIndexPerKey(
  commands: LedgerCommand[],
  aborted: (index: number) => boolean,
  results: (CommandResult | undefined)[],
): Map<string, number> {
  const firstIndexOfKey = new Map<string, number>();
  commands.forEach((command, index) => {
    if (aborted(index)) {
      results[index] = deadlineResult();
      return;
    }
    const key = idempotencyKeyOf(command.principal, command.idempotencyKey);
    if (!firstIndexOfKey.has(key)) firstIndexOfKey.set(key, index);
  });
  return firstIndexOfKey;
}

/** Writes the plan's effects, the outcomes to store and the keys to release, in one statement. */
async function writePlan(
  tx: LedgerTx,
  context: PlanContext,
  outcomesToStore: OutcomeToStore[],
  keysToRelease: KeyRef[],
): Promise<void> {
  if (preparedCanWrite(context.effects)) {
    // The hot path (payments and their follow-ups): one prepared statement whatever the list's length. It is
    // the transaction's last statement, so its COMMIT may travel with it.
    await writeEffectsPrepared(
      tx,
      context.effects,
      context.accounts,
      { outcomes: outcomesToStore, releases: keysToRelease },
      { commit: true },
    );
    return;
  }
  const keyParts = [storeOutcomesSql(outcomesToStore), releaseKeysSql(keysToRelease)];
  await writeEffects(
    tx,
    context.effects,
    context.accounts,
    keyParts.filter((part) => part !== undefined),
  );
}

/** A repeated key gets its first use's result: a replay of that outcome (or a mismatch), or the same refusal. */
function fillRepeatedKeys(
  commands: LedgerCommand[],
  params: IdempotencyParams[],
  firstIndexOfKey: Map<string, number>,
  results: (CommandResult | undefined)[],
): void {
  commands.forEach((command, index) => {
    if (results[index]) return;
    const firstIndex = firstIndexOfKey.get(idempotencyKeyOf(command.principal, command.idempotencyKey))!;
    const first = results[firstIndex]!;
    results[index] = first.ok ? replayOrMismatch(params[firstIndex]!, params[index]!, first.outcome) : first;
  });
}

function tagOrigin(events: DomainEvent[], from: number, origin: CommandOrigin | undefined): void {
  if (events.length === from) return;
  const tag = origin ?? commandOrigin();
  for (let index = from; index < events.length; index++) events[index]!.origin = tag;
}

function deadlineResult(): CommandResult {
  return { ok: false, error: deadlineExceeded() };
}

/** Shallow copies: planning replaces the rows' fields (never mutates nested values), so a copy can be re-planned. */
function copyRows<T extends object>(rows: Map<string, T>): Map<string, T> {
  return new Map([...rows].map(([id, row]) => [id, { ...row }]));
}

function replayOrMismatch(
  storedParams: Record<string, string>,
  incomingParams: Record<string, string>,
  outcome: LedgerOutcome,
): CommandResult {
  const differing = firstDifference(storedParams, incomingParams);
  if (differing !== undefined) return { ok: false, error: idempotencyKeyReused(differing) };
  return { ok: true, outcome, replayed: true };
}
