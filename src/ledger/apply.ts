/**
 * The ledger core: applies a list of commands in one database transaction and returns one result per
 * command, in order. Steps, each a single set-based statement for the whole list:
 *   1. claim the idempotency keys (sorted), replaying outcomes of keys already used;
 *   2. lock every balance row involved, in account-id order (so A→B and B→A never deadlock);
 *   3. plan each command in memory against the locked state (plan.ts, pure);
 *   4. write accounts, payments, deposits, entries, balances, outbox events and stored outcomes.
 * A command that fails (e.g. NOT_FOUND) writes nothing and gives its key back; the others still commit.
 */
import { inArray, sql } from 'drizzle-orm';
import type { LedgerDb, LedgerTx } from '../db/client.js';
import { isRetryable, SqlState, sqlStateOf } from '../db/errors.js';
import { accountBalances, accounts, deposits, ledgerEntries, outboxEvents, payments } from '../db/schema.js';
import { concurrentRequest, DomainError, idempotencyKeyReused, serviceUnavailable } from '../domain/errors.js';
import { encodeEvent } from '../events/domain-events.js';
import { type CommandResult, firstDifference, idempotencyParams, type LedgerCommand } from './commands.js';
import { claimKeys, idempotencyKeyOf, releaseKeys, storeOutcomes } from './idempotency-store.js';
import {
  type AccountState,
  accountsToLock,
  type Effects,
  emptyEffects,
  fundingAccountId,
  planCommand,
} from './plan.js';

export interface LedgerOptions {
  idempotencyRetentionMs: number;
  maxPaymentMinor(currency: string): bigint;
  /** Transactions retried after a deadlock or serialization failure, at most. */
  maxAttempts?: number;
  now?: () => Date;
}

function depositCurrencies(commands: LedgerCommand[], except: Set<string>): string[] {
  const currencies = commands.flatMap((command) => (command.kind === 'deposit' ? [command.currency] : []));
  return [...new Set(currencies)].filter((currency) => !except.has(currency));
}

export const MAX_COMMANDS_PER_TRANSACTION = 500;
const DEFAULT_MAX_ATTEMPTS = 3;

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
    const maxAttempts = this.options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    for (let attempt = 1; ; attempt++) {
      try {
        const results = await this.db.transaction((tx) => this.applyInTransaction(tx, commands));
        // Only now, after the commit, is it certain that these funding accounts exist.
        for (const currency of depositCurrencies(commands, new Set())) this.fundedCurrencies.add(currency);
        return results;
      } catch (error) {
        if (isRetryable(error) && attempt < maxAttempts) continue;
        throw translateDatabaseError(error);
      }
    }
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

    const plannedCommands = toPlan.map((index) => commands[index]!);
    await this.ensureFundingAccounts(tx, depositCurrencies(plannedCommands, this.fundedCurrencies));
    const lockedAccounts = await lockAccounts(tx, plannedCommands.flatMap(accountsToLock));
    const effects = emptyEffects();
    const context = {
      now,
      maxPaymentMinor: this.options.maxPaymentMinor,
      accounts: lockedAccounts,
      effects,
    };
    const outcomesToStore = [];
    const keysToRelease = [];
    for (const index of toPlan) {
      const command = commands[index]!;
      const planned = planCommand(command, context);
      if (planned instanceof DomainError) {
        results[index] = { ok: false, error: planned };
        keysToRelease.push(command);
      } else {
        results[index] = { ok: true, outcome: planned, replayed: false };
        outcomesToStore.push({
          principal: command.principal,
          idempotencyKey: command.idempotencyKey,
          outcome: planned,
        });
      }
    }

    await writeEffects(tx, effects, lockedAccounts);
    await storeOutcomes(tx, outcomesToStore);
    await releaseKeys(tx, keysToRelease);

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
  outcome: CommandResult & { ok: true } extends { outcome: infer O } ? O : never,
): CommandResult {
  const differing = firstDifference(storedParams, incomingParams);
  if (differing !== undefined) return { ok: false, error: idempotencyKeyReused(differing) };
  return { ok: true, outcome, replayed: true };
}

async function lockAccounts(tx: LedgerTx, ids: string[]): Promise<Map<string, AccountState>> {
  const locked = new Map<string, AccountState>();
  const unique = [...new Set(ids)];
  if (unique.length === 0) return locked;
  const rows = await tx
    .select({
      id: accounts.id,
      ownerRef: accounts.ownerRef,
      currency: accounts.currency,
      status: accounts.status,
      kind: accounts.kind,
      createdAt: accounts.createdAt,
      postedMinor: accountBalances.postedMinor,
      heldMinor: accountBalances.heldMinor,
      version: accountBalances.version,
      updatedAt: accountBalances.updatedAt,
    })
    .from(accountBalances)
    .innerJoin(accounts, sql`${accounts.id} = ${accountBalances.accountId}`)
    .where(inArray(accountBalances.accountId, unique))
    // ORDER BY is applied before the rows are locked, so every transaction locks in the same order.
    .orderBy(accountBalances.accountId)
    .for('update', { of: accountBalances });
  for (const row of rows) locked.set(row.id, { ...row });
  return locked;
}

async function writeEffects(tx: LedgerTx, effects: Effects, lockedAccounts: Map<string, AccountState>) {
  if (effects.newAccounts.length > 0) {
    await tx.insert(accounts).values(
      effects.newAccounts.map((state) => ({
        id: state.id,
        ownerRef: state.ownerRef,
        currency: state.currency,
        status: state.status,
        kind: state.kind,
        createdAt: state.createdAt,
      })),
    );
    await tx.insert(accountBalances).values(
      effects.newAccounts.map((state) => ({
        accountId: state.id,
        currency: state.currency,
        allowNegative: state.kind === 'SYSTEM',
        updatedAt: state.updatedAt,
      })),
    );
  }
  if (effects.payments.length > 0) await tx.insert(payments).values(effects.payments);
  if (effects.deposits.length > 0) await tx.insert(deposits).values(effects.deposits);
  if (effects.entries.length > 0) await tx.insert(ledgerEntries).values(effects.entries);
  const touched = [...effects.touchedAccountIds].map((id) => lockedAccounts.get(id)!);
  if (touched.length > 0) {
    const rows = touched.map(
      (state) =>
        sql`(${state.id}, ${state.postedMinor.toString()}::bigint, ${state.heldMinor.toString()}::bigint, ${state.version.toString()}::bigint, ${state.updatedAt.toISOString()}::timestamptz)`,
    );
    await tx.execute(sql`
      update ${accountBalances} as b
      set posted_minor = v.posted_minor, held_minor = v.held_minor, version = v.version, updated_at = v.updated_at
      from (values ${sql.join(rows, sql`, `)}) as v(account_id, posted_minor, held_minor, version, updated_at)
      where b.account_id = v.account_id`);
  }
  if (effects.events.length > 0) {
    await tx.insert(outboxEvents).values(
      effects.events.map((event) => ({
        eventId: event.eventId,
        eventType: event.type,
        aggregateType: event.aggregateType,
        aggregateId: event.aggregateId,
        aggregateSeq: event.aggregateSeq,
        payload: encodeEvent(event),
        createdAt: event.occurredAt,
      })),
    );
  }
}

/** Database failures a client can act on become domain errors; anything else stays internal. */
function translateDatabaseError(error: unknown): unknown {
  switch (sqlStateOf(error)) {
    case SqlState.lockNotAvailable:
      return concurrentRequest();
    case SqlState.queryCanceled:
      return serviceUnavailable('LEDGER_BUSY', 'the ledger is busy; retry with the same idempotency key');
    case SqlState.serializationFailure:
    case SqlState.deadlockDetected:
      return serviceUnavailable('LEDGER_CONTENDED', 'the ledger is contended; retry with the same idempotency key');
    default:
      return error;
  }
}
