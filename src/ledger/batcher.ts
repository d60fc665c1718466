/**
 * Group commit: concurrent callers' commands are gathered into one list and applied by the ledger core in one
 * transaction (Ledger.apply), so a batch pays one transaction's round trips and locks a hot balance row once,
 * however many payments it holds. Each caller still gets its own result, in order.
 *
 * Bounds: a batch holds at most `maxBatchSize` commands and waits at most `maxWaitMs` after its first command
 * arrives; at most `maxBatchesInFlight` batches run at once (each needs a pool connection); at most
 * `maxQueueLength` commands wait. When the queue is full a caller is refused at once with UNAVAILABLE
 * (`LEDGER_OVERLOADED`, retry after a moment with the same idempotency key), and a caller whose signal aborts
 * while queued leaves the queue at once with DEADLINE_EXCEEDED: a refusal never comes after the deadline.
 *
 * Batches in flight never share a row: a command whose accounts (or payment) a running batch holds waits for
 * the next batch, and so does every later command touching any of its rows (per-row arrival order, so none
 * starves). Commands on one hot account thus gather into one batch that locks its row once, instead of several
 * transactions queueing on the row's lock, each holding a pool connection while it waits.
 *
 * A batch that fails as a whole (the database refused the transaction, not a command) is split in halves and
 * each half applied again, so one poisonous command fails alone; failures that say nothing about the commands
 * (the pool or the database is busy) are answered to every command of the batch instead.
 */
import { DomainError, deadlineExceeded, serviceUnavailable } from '../domain/errors.js';
import { type ApplyOptions, type CommandResult, type LedgerCommand, paymentIdOf } from './commands.js';
import { accountsToLock } from './plan.js';

export interface BatcherOptions {
  /** Commands per transaction, at most. */
  maxBatchSize: number;
  /** How long a batch waits for more commands after its first, at most; 0 = only those already queued. */
  maxWaitMs: number;
  /** Commands waiting for a batch, at most; beyond it callers are refused. */
  maxQueueLength: number;
  /** Batches (transactions) running at once, at most. */
  maxBatchesInFlight: number;
  /** The retry hint given to refused callers. */
  retryAfterMs: number;
}

/** What the batcher needs of the ledger core. */
export interface ListApplier {
  apply(commands: LedgerCommand[], options?: ApplyOptions): Promise<CommandResult[]>;
}

interface Entry {
  command: LedgerCommand;
  /** The rows its transaction locks, as far as the command itself tells (rowsOf). */
  rows: string[];
  signal: AbortSignal | undefined;
  settle(result: CommandResult | { thrown: unknown }): void;
}

export class CommandBatcher {
  private readonly queue: Entry[] = [];
  private inFlight = 0;
  /** Rows (rowsOf) of the commands in running batches. */
  private readonly busyRows = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  /** Commands refused because the queue was full, since start. */
  refused = 0;
  /** Batches applied, and commands in them, since start (average batch size = commands / batches). */
  batches = 0;
  batchedCommands = 0;

  constructor(
    private readonly ledger: ListApplier,
    private readonly options: BatcherOptions,
  ) {}

  /**
   * Queues `commands` for the next batch; resolves with one result per command, in order. Rejects with
   * UNAVAILABLE `LEDGER_OVERLOADED` (nothing queued) when the queue has no room for all of them.
   */
  apply(commands: LedgerCommand[], options: ApplyOptions = {}): Promise<CommandResult[]> {
    if (commands.length === 0) return Promise.resolve([]);
    if (this.queue.length + commands.length > this.options.maxQueueLength) {
      this.refused += commands.length;
      return Promise.reject(overloaded(this.options.retryAfterMs));
    }
    const signals = commands.map((_, index) => options.signals?.[index] ?? options.signal);
    if (signals.some((signal) => signal?.aborted)) return Promise.reject(deadlineExceeded());
    const pending = commands.map((command, index) => this.enqueue(command, signals[index]));
    this.schedule();
    return Promise.all(pending).then((results) =>
      results.map((result) => {
        if ('thrown' in result) throw result.thrown;
        return result;
      }),
    );
  }

  private enqueue(command: LedgerCommand, signal: AbortSignal | undefined) {
    return new Promise<CommandResult | { thrown: unknown }>((resolve) => {
      const entry: Entry = { command, rows: rowsOf(command), signal, settle: resolve };
      if (signal) {
        // Leaves the queue as soon as the deadline passes; once in a batch the ledger core checks the signal.
        const onAbort = () => {
          const at = this.queue.indexOf(entry);
          if (at >= 0) {
            this.queue.splice(at, 1);
            resolve({ ok: false, error: deadlineExceeded() });
          }
        };
        signal.addEventListener('abort', onAbort, { once: true });
        entry.settle = (result) => {
          signal.removeEventListener('abort', onAbort);
          resolve(result);
        };
      }
      this.queue.push(entry);
    });
  }

  /** Starts batches while there is a free slot and either a full batch or one whose wait is over. */
  private schedule(): void {
    while (this.inFlight < this.options.maxBatchesInFlight && this.queue.length >= this.options.maxBatchSize) {
      if (!this.startBatch()) return;
    }
    if (this.queue.length === 0 || this.timer || this.inFlight >= this.options.maxBatchesInFlight) return;
    // setImmediate with no wait still gathers every command that arrived in the same turn of the event loop.
    const fire = () => {
      this.timer = undefined;
      // Nothing startable: every queued command waits for a running batch, whose end schedules again.
      if (this.inFlight < this.options.maxBatchesInFlight && this.queue.length > 0 && !this.startBatch()) return;
      this.schedule();
    };
    this.timer =
      this.options.maxWaitMs > 0
        ? setTimeout(fire, this.options.maxWaitMs)
        : (setImmediate(fire) as unknown as NodeJS.Timeout);
  }

  /** Starts a batch of the queued commands free to run; false when none is (all wait for running batches). */
  private startBatch(): boolean {
    const batch = this.takeFreeEntries();
    if (batch.length === 0) return false;
    const rows = batch.flatMap((entry) => entry.rows);
    for (const row of rows) this.busyRows.add(row);
    this.inFlight++;
    this.batches++;
    this.batchedCommands += batch.length;
    void this.run(batch, MAX_SPLIT_DEPTH).finally(() => {
      for (const row of rows) this.busyRows.delete(row);
      this.inFlight--;
      // The queue filled while every slot was busy: those commands have waited long enough already.
      if (this.queue.length > 0 && !this.timer && !this.startBatch()) return;
      this.schedule();
    });
    return true;
  }

  /**
   * Takes, in queue order, up to maxBatchSize entries whose rows no running batch holds. A skipped entry
   * reserves its rows, so later entries on those rows wait behind it. Looks at a bounded number of entries.
   */
  private takeFreeEntries(): Entry[] {
    const taken: Entry[] = [];
    const reserved = new Set<string>();
    const scanLimit = Math.min(this.queue.length, Math.max(MIN_SCAN, 4 * this.options.maxBatchSize));
    const kept: Entry[] = [];
    let index = 0;
    for (; index < scanLimit && taken.length < this.options.maxBatchSize; index++) {
      const entry = this.queue[index]!;
      if (entry.rows.some((row) => this.busyRows.has(row) || reserved.has(row))) {
        for (const row of entry.rows) reserved.add(row);
        kept.push(entry);
      } else {
        taken.push(entry);
      }
    }
    if (taken.length > 0) this.queue.splice(0, index, ...kept);
    return taken;
  }

  /** Applies one batch; never rejects (every entry is settled). */
  private async run(batch: Entry[], splitsLeft: number): Promise<void> {
    let results: CommandResult[];
    try {
      results = await this.ledger.apply(
        batch.map((entry) => entry.command),
        { signals: batch.map((entry) => entry.signal) },
      );
    } catch (error) {
      if (batch.length === 1 || splitsLeft === 0 || isBatchWide(error)) {
        for (const entry of batch) entry.settle({ thrown: error });
        return;
      }
      // Someone in this batch may have made the transaction fail: halves, until it fails alone.
      const half = Math.ceil(batch.length / 2);
      await this.run(batch.slice(0, half), splitsLeft - 1);
      await this.run(batch.slice(half), splitsLeft - 1);
      return;
    }
    batch.forEach((entry, index) => {
      const result = results[index];
      entry.settle(result ?? { thrown: new Error('ledger returned fewer results than commands') });
    });
  }
}

/** Entries looked at per batch start, at least (4 × maxBatchSize when larger). */
const MIN_SCAN = 256;

/**
 * The rows a command's transaction will lock, as far as the command says: its accounts (with the funding
 * account of a deposit or payout), or the payment it acts on (whose accounts only the database knows).
 */
function rowsOf(command: LedgerCommand): string[] {
  const paymentId = paymentIdOf(command);
  return paymentId === undefined ? accountsToLock(command, undefined) : [paymentId];
}

/** log2 of the largest batch the config allows: enough halvings to isolate any one command. */
const MAX_SPLIT_DEPTH = 10;

/**
 * Retryable failures of a whole batch (the pool, a lock or the database was busy): no command caused them, so
 * splitting would only repeat them; every command gets the same retryable answer.
 */
function isBatchWide(error: unknown): boolean {
  return error instanceof DomainError && (error.kind === 'unavailable' || error.kind === 'concurrent_request');
}

function overloaded(retryAfterMs: number): DomainError {
  return serviceUnavailable(
    'LEDGER_OVERLOADED',
    `the ledger has too many requests waiting; retry in about ${retryAfterMs} ms with the same idempotency key`,
  );
}
