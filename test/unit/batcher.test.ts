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

function command(idempotencyKey: string): LedgerCommand {
  return { kind: 'voidPayment', principal: 'p', idempotencyKey, paymentId: `pay_${idempotencyKey}` };
}

/** Answers each command with an outcome naming its key; `fail` decides when a whole list throws. */
class ScriptedLedger implements ListApplier {
  readonly lists: string[][] = [];
  inFlight = 0;
  maxInFlight = 0;
  constructor(private readonly fail: (keys: string[]) => unknown = () => undefined) {}

  async apply(commands: LedgerCommand[]): Promise<CommandResult[]> {
    const keys = commands.map((c) => c.idempotencyKey);
    this.lists.push(keys);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await new Promise((resolve) => setImmediate(resolve));
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
});
