/**
 * The batcher's own logic, with a scripted list applier in place of the ledger core (the core itself is tested
 * against PostgreSQL in test/batcher.test.ts): batch bounds, slots, splitting a poisoned batch, batch-wide
 * failures, and results in order.
 */
import { describe, expect, it } from 'vitest';
import { DomainError, type ErrorReason, serviceUnavailable } from '../../src/domain/errors.js';
import { type BatcherOptions, CommandBatcher, type ListApplier } from '../../src/ledger/batcher.js';
import type { CommandResult, LedgerCommand } from '../../src/ledger/commands.js';

const OPTIONS: BatcherOptions = {
  maxBatchSize: 4,
  maxWaitMs: 0,
  maxQueueLength: 100,
  maxBatchesInFlight: 2,
  retryAfterMs: 50,
};

function payment(idempotencyKey: string, payerAccountId: string, payeeAccountId: string): LedgerCommand {
  return {
    kind: 'authorizePayment',
    principal: 'p',
    idempotencyKey,
    payerAccountId,
    payeeAccountId,
    amountMinor: 1n,
    currency: 'USD',
    description: '',
    captureMode: 'AUTOMATIC',
    holdDurationMs: 0,
  };
}

function command(idempotencyKey: string): LedgerCommand {
  return { kind: 'voidPayment', principal: 'p', idempotencyKey, paymentId: `pay_${idempotencyKey}` };
}

/** Answers each command with an outcome naming its key; `fail` decides when a whole list throws. */
class ScriptedLedger implements ListApplier {
  readonly lists: string[][] = [];
  inFlight = 0;
  maxInFlight = 0;
  /** Accounts of the lists running now, and whether two running lists ever shared one. */
  private readonly running = new Set<string>();
  sharedAccountWhileRunning = false;
  constructor(private readonly fail: (keys: string[]) => unknown = () => undefined) {}

  async apply(commands: LedgerCommand[]): Promise<CommandResult[]> {
    const keys = commands.map((c) => c.idempotencyKey);
    this.lists.push(keys);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const accounts = [
      ...new Set(commands.flatMap((c) => (c.kind === 'authorizePayment' ? [c.payerAccountId, c.payeeAccountId] : []))),
    ];
    if (accounts.some((account) => this.running.has(account))) this.sharedAccountWhileRunning = true;
    for (const account of accounts) this.running.add(account);
    await new Promise((resolve) => setImmediate(resolve));
    for (const account of accounts) this.running.delete(account);
    this.inFlight--;
    const failure = this.fail(keys);
    if (failure) throw failure;
    // The fake echoes each key as its reason, so a test can tell the results apart.
    return keys.map((key) => ({ ok: false, error: new DomainError('not_found', key as ErrorReason, key) }));
  }
}

async function applyEach(batcher: CommandBatcher, keys: string[]) {
  return Promise.all(
    keys.map((key) =>
      batcher.apply([command(key)]).then(
        ([result]) => (result && !result.ok ? result.error.reason : 'ok'),
        (error: unknown) => `thrown:${(error as Error).message}`,
      ),
    ),
  );
}

const keys = (count: number) => Array.from({ length: count }, (_, index) => `k${index}`);

describe('CommandBatcher', () => {
  it('gives each caller its own result, in order, in batches no larger than the bound', async () => {
    const ledger = new ScriptedLedger();
    const batcher = new CommandBatcher(ledger, OPTIONS);
    expect(await applyEach(batcher, keys(10))).toEqual(keys(10));
    expect(ledger.lists.every((list) => list.length <= OPTIONS.maxBatchSize)).toBe(true);
    expect(ledger.lists.flat()).toEqual(keys(10));
    expect(ledger.maxInFlight).toBeLessThanOrEqual(OPTIONS.maxBatchesInFlight);
  });

  it('keeps a multi-command call together and in order', async () => {
    const batcher = new CommandBatcher(new ScriptedLedger(), OPTIONS);
    const results = await batcher.apply(keys(3).map(command));
    expect(results.map((result) => (result.ok ? 'ok' : result.error.reason))).toEqual(keys(3));
  });

  it('splits a batch that fails as a whole until the command at fault fails alone', async () => {
    const ledger = new ScriptedLedger((list) => (list.includes('k2') ? new Error('poison') : undefined));
    const batcher = new CommandBatcher(ledger, OPTIONS);
    expect(await applyEach(batcher, keys(4))).toEqual(['k0', 'k1', 'thrown:poison', 'k3']);
    expect(ledger.lists).toContainEqual(['k2']);
  });

  it('answers a retryable batch-wide failure to every command without splitting', async () => {
    const busy = serviceUnavailable('DB_POOL_EXHAUSTED', 'busy');
    const ledger = new ScriptedLedger(() => busy);
    const batcher = new CommandBatcher(ledger, OPTIONS);
    expect(await applyEach(batcher, keys(4))).toEqual(Array(4).fill('thrown:busy'));
    expect(ledger.lists).toEqual([keys(4)]);
  });

  it('refuses a call that does not fit the queue, whole, with LEDGER_OVERLOADED', async () => {
    const batcher = new CommandBatcher(new ScriptedLedger(), { ...OPTIONS, maxQueueLength: 2 });
    const refused = await batcher.apply(keys(3).map(command)).catch((error: unknown) => error);
    expect(refused).toMatchObject({ kind: 'unavailable', reason: 'LEDGER_OVERLOADED' });
    expect(batcher.refused).toBe(3);
  });

  it('refuses a command whose signal has already aborted without queueing it', async () => {
    const ledger = new ScriptedLedger();
    const batcher = new CommandBatcher(ledger, OPTIONS);
    const refused = await batcher
      .apply([command('late')], { signal: AbortSignal.abort() })
      .catch((error: unknown) => error);
    expect(refused).toMatchObject({ kind: 'deadline_exceeded' });
    expect(ledger.lists).toEqual([]);
  });

  it('never runs two batches on one account: commands to a hot payee gather into the next batch', async () => {
    const ledger = new ScriptedLedger();
    const batcher = new CommandBatcher(ledger, { ...OPTIONS, maxBatchSize: 8, maxBatchesInFlight: 4 });
    const commands = keys(20).map((key) => payment(key, `acct_payer_${key}`, 'acct_hot'));
    const results = await Promise.all(commands.map((c) => batcher.apply([c])));
    expect(results.map(([result]) => (result && !result.ok ? result.error.reason : 'ok'))).toEqual(keys(20));
    expect(ledger.sharedAccountWhileRunning).toBe(false);
    expect(ledger.maxInFlight).toBe(1);
    expect(ledger.lists.flat().sort()).toEqual(keys(20).sort());
  });

  it('keeps arrival order per account: a command waiting for a busy account holds back later ones on its accounts', async () => {
    const ledger = new ScriptedLedger();
    const batcher = new CommandBatcher(ledger, { ...OPTIONS, maxBatchSize: 1, maxBatchesInFlight: 2 });
    // c2 waits for c1 (account B); c3 shares only C with c2, so it waits behind c2 rather than overtaking it.
    const chain = [payment('c1', 'A', 'B'), payment('c2', 'B', 'C'), payment('c3', 'C', 'D')];
    await Promise.all(chain.map((c) => batcher.apply([c])));
    expect(ledger.lists).toEqual([['c1'], ['c2'], ['c3']]);
    expect(ledger.sharedAccountWhileRunning).toBe(false);
  });

  it('runs commands on different accounts side by side', async () => {
    const ledger = new ScriptedLedger();
    const batcher = new CommandBatcher(ledger, { ...OPTIONS, maxBatchSize: 1, maxBatchesInFlight: 2 });
    await Promise.all([payment('x', 'A', 'B'), payment('y', 'C', 'D')].map((c) => batcher.apply([c])));
    expect(ledger.maxInFlight).toBe(2);
  });
});
