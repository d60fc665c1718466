/**
 * The ledger core: applies a list of commands in one database transaction and returns one result per
 * command, in order. Steps, each a single set-based statement for the whole list:
 *   1. claim the idempotency keys (sorted), replaying outcomes of keys already used;
 *   2. lock the payments the commands act on, then every balance row involved, each in id order
 *      (locks.ts: one global order, so A→B and B→A never deadlock);
 *   3. plan each command in memory against the locked state (plan.ts, pure);
 *   4. write accounts, payments, refunds, entries, balances, outbox events and stored outcomes, all in one
 *      statement (writes.ts).
 * A command that fails (e.g. NOT_FOUND) writes nothing and gives its key back; the others still commit.
 */
import type { LedgerDb, LedgerTx } from '../db/client.js';
import { isConnectionFailure, isRetryable, SqlState, sqlStateOf } from '../db/errors.js';
import { accountBalances, accounts } from '../db/schema.js';
import {
  concurrentRequest,
  DomainError,
  databaseUnavailable,
  idempotencyKeyReused,
  lockWaitTimedOut,
  serviceUnavailable,
} from '../domain/errors.js';
import {
  type CommandResult,
  firstDifference,
  idempotencyParams,
  type LedgerCommand,
  type LedgerOutcome,
  paymentIdOf,
} from './commands.js';
import { claimKeys, idempotencyKeyOf, releaseKeysSql, storeOutcomesSql } from './idempotency-store.js';
import { lockAccounts, lockPayments } from './locks.js';
import { accountsToLock, planCommand } from './plan.js';
import { emptyEffects, fundingAccountId, type PlanContext } from './state.js';
import { writeEffects } from './writes.js';

export interface LedgerOptions {
  idempotencyRetentionMs: number;
  maxPaymentMinor(currency: string): bigint;
  /** Transactions retried after a deadlock or serialization failure, at most. */
  maxAttempts?: number;
  now?: () => Date;
}

export const MAX_COMMANDS_PER_TRANSACTION = 500;
const DEFAULT_MAX_ATTEMPTS = 3;

function depositCurrencies(commands: LedgerCommand[], except: Set<string>): string[] {
  const currencies = commands.flatMap((command) => (command.kind === 'deposit' ? [command.currency] : []));
  return [...new Set(currencies)].filter((currency) => !except.has(currency));
}

/** Runs `work` in a transaction, again after a deadlock or serialization failure, a bounded number of times. */
export async function inTransaction<T>(
  db: LedgerDb,
  work: (tx: LedgerTx) => Promise<T>,
  maxAttempts = DEFAULT_MAX_ATTEMPTS,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction(work);
    } catch (error) {
      if (isRetryable(error) && attempt < maxAttempts) continue;
      throw translateDatabaseError(error);
    }
  }
}

export class Ledger {
  /** Currencies whose funding account is known to exist; saves an insert per deposit. */
  private readonly fundedCurrencies = new Set<string>();

  constructor(
    private readonly db: LedgerDb,
    private readonly options: LedgerOptions,
  ) {}

  async apply(commands: LedgerCommand[]): Promise<CommandResult[]> {
    if (commands.length === 0) return [];
    if (commands.length > MAX_COMMANDS_PER_TRANSACTION) {
      throw new Error(`at most ${MAX_COMMANDS_PER_TRANSACTION} commands per transaction, got ${commands.length}`);
    }
    const results = await inTransaction(
      this.db,
      (tx) => this.applyInTransaction(tx, commands),
      this.options.maxAttempts,
    );
    // Only now, after the commit, is it certain that these funding accounts exist.
    for (const currency of depositCurrencies(commands, new Set())) this.fundedCurrencies.add(currency);
    return results;
  }

  private async applyInTransaction(tx: LedgerTx, commands: LedgerCommand[]): Promise<CommandResult[]> {
    const now = this.options.now?.() ?? new Date();
    const results: (CommandResult | undefined)[] = new Array(commands.length);
    const params = commands.map(idempotencyParams);

    // A key repeated inside one list is settled after its first use (see the end of this function).
    const firstIndexOfKey = new Map<string, number>();
    commands.forEach((command, index) => {
      const key = idempotencyKeyOf(command.principal, command.idempotencyKey);
      if (!firstIndexOfKey.has(key)) firstIndexOfKey.set(key, index);
    });
    const firstUses = [...firstIndexOfKey.values()];

    const { claimed, existing } = await claimKeys(
      tx,
      firstUses.map((index) => ({ ...commands[index]!, params: params[index]! })),
      now,
      this.options.idempotencyRetentionMs,
    );

    const toPlan: number[] = [];
    for (const index of firstUses) {
      const command = commands[index]!;
      const key = idempotencyKeyOf(command.principal, command.idempotencyKey);
      const stored = existing.get(key);
      if (claimed.has(key)) toPlan.push(index);
      else if (!stored) results[index] = { ok: false, error: concurrentRequest() };
      else results[index] = replayOrMismatch(stored.params, params[index]!, stored.outcome);
    }

    const planned = toPlan.map((index) => commands[index]!);
    await this.ensureFundingAccounts(tx, depositCurrencies(planned, this.fundedCurrencies));
    const lockedPayments = await lockPayments(
      tx,
      planned.flatMap((command) => paymentIdOf(command) ?? []),
    );
    const lockedAccounts = await lockAccounts(
      tx,
      planned.flatMap((command) => {
        const paymentId = paymentIdOf(command);
        return accountsToLock(command, paymentId ? lockedPayments.get(paymentId) : undefined);
      }),
    );
    const context: PlanContext = {
      now,
      maxPaymentMinor: this.options.maxPaymentMinor,
      accounts: lockedAccounts,
      payments: lockedPayments,
      effects: emptyEffects(),
    };
    const outcomesToStore = [];
    const keysToRelease = [];
    for (const index of toPlan) {
      const command = commands[index]!;
      const outcome = planCommand(command, context);
      if (outcome instanceof DomainError) {
        results[index] = { ok: false, error: outcome };
        keysToRelease.push(command);
      } else {
        results[index] = { ok: true, outcome, replayed: false };
        outcomesToStore.push({ principal: command.principal, idempotencyKey: command.idempotencyKey, outcome });
      }
    }

    const keyParts = [storeOutcomesSql(outcomesToStore), releaseKeysSql(keysToRelease)];
    await writeEffects(
      tx,
      context.effects,
      lockedAccounts,
      keyParts.filter((part) => part !== undefined),
    );

    commands.forEach((command, index) => {
      if (results[index]) return;
      const firstIndex = firstIndexOfKey.get(idempotencyKeyOf(command.principal, command.idempotencyKey))!;
      const first = results[firstIndex]!;
      results[index] = first.ok ? replayOrMismatch(params[firstIndex]!, params[index]!, first.outcome) : first;
    });
    return results as CommandResult[];
  }

  private async ensureFundingAccounts(tx: LedgerTx, currencies: string[]): Promise<void> {
    if (currencies.length === 0) return;
    await tx
      .insert(accounts)
      .values(
        currencies.map((currency) => ({
          id: fundingAccountId(currency),
          ownerRef: 'system:funding',
          currency,
          status: 'ACTIVE' as const,
          kind: 'SYSTEM' as const,
        })),
      )
      .onConflictDoNothing();
    await tx
      .insert(accountBalances)
      .values(currencies.map((currency) => ({ accountId: fundingAccountId(currency), currency, allowNegative: true })))
      .onConflictDoNothing();
  }
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

/** Database failures a client can act on become domain errors; anything else stays internal. */
export function translateDatabaseError(error: unknown): unknown {
  switch (sqlStateOf(error)) {
    case SqlState.lockNotAvailable:
      return lockWaitTimedOut();
    case SqlState.queryCanceled:
      return serviceUnavailable('LEDGER_BUSY', 'the ledger is busy; retry with the same idempotency key');
    case SqlState.serializationFailure:
    case SqlState.deadlockDetected:
      return serviceUnavailable('LEDGER_CONTENDED', 'the ledger is contended; retry with the same idempotency key');
    default:
      // The connection died or the database is going down: the transaction may even have committed (its
      // COMMIT sent, the answer lost), so the client must not be told it failed, only to retry with its key.
      return isConnectionFailure(error) ? databaseUnavailable() : error;
  }
}
