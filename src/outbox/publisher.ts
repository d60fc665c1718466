/**
 * The transactional outbox relay: publishes outbox_events rows, in id order, to the sink (Kafka or the log),
 * and marks them published only after the sink acknowledged them. Nothing is ever skipped or dropped.
 *
 *   - One active publisher among replicas sharing the database (leadership.ts); the others are standbys and
 *     retry every OUTBOX_LEADER_RETRY_MS, which bounds a takeover.
 *   - Woken by the outbox trigger's NOTIFY at commit; polls every OUTBOX_POLL_INTERVAL_MS as a fallback.
 *     Once woken it lingers OUTBOX_LINGER_MS, so the commits of that moment go out as one batch.
 *   - Batches of at most OUTBOX_BATCH_SIZE rows; the next batch starts only after the previous one was
 *     acknowledged, so one aggregate's events (one key, one partition) leave in order.
 *   - A transport failure (broker down, timeout…) fails the whole batch: every row in it gets attempts + 1
 *     and last_error, and the publisher backs off exponentially with jitter (capped at OUTBOX_RETRY_MAX_MS)
 *     and retries the same rows.
 *   - A failure about the records themselves (e.g. too large) is isolated: the batch is re-sent one row at a
 *     time; the failing row is kept, counted and reported, and it blocks only the later rows of its own
 *     aggregate (publishing them would reorder that aggregate). Those aggregates are retried on their own
 *     with backoff; every other aggregate keeps flowing.
 *   - Rows failing OUTBOX_WARN_AFTER_ATTEMPTS times or more are logged at warn with their event ids.
 *   - Published rows older than OUTBOX_RETENTION_HOURS are deleted in bounded batches, once a minute
 *     (maintenance.ts, which also watches the lag below).
 *   - Lag (unpublished count, age of the oldest) is checked periodically and logged when over
 *     OUTBOX_LAG_WARN_MS, and reported by status() for /readyz.
 *   - stop() (called once the server takes no more requests) publishes what is still pending, at most
 *     MAX_BATCHES_AT_STOP batches, unless the last round failed: a replica that stops does not leave its last
 *     commits waiting for the next leader. All of it, with the in-flight batch, is bounded by the stop
 *     timeout; past it the batch is abandoned: its rows were not marked, so they stay unpublished and the next
 *     leader sends them again (at-least-once, never lost).
 */
import type { OutboxConfig } from '../config.js';
import type { LedgerDb } from '../db/client.js';
import { metrics } from '../observability/metrics.js';
import { backoffMs, sleep, Waker } from './backoff.js';
import type { Leadership, LeaderTerm } from './leadership.js';
import { OutboxMaintenance } from './maintenance.js';
import { messageOf, type OutboxRow, type OutgoingMessage } from './routing.js';
import { type EventSink, type OutboxLogger, SinkError } from './sink.js';
import {
  type FailedRow,
  markPublished,
  type OutboxStats,
  outboxStats,
  recordFailure,
  selectPending,
  selectPendingOf,
} from './store.js';

export type PublisherRole = 'starting' | 'leader' | 'standby' | 'stopped';

export interface OutboxStatus {
  role: PublisherRole;
  /** Null when the database could not be asked. */
  unpublished: number | null;
  oldestAgeMs: number | null;
  sink: EventSink['kind'];
  /** Events this process has published since it started. */
  published: number;
}

export interface PublisherTimings {
  retryBaseMs: number;
  lagCheckIntervalMs: number;
  cleanupIntervalMs: number;
  cleanupBatchSize: number;
  cleanupMaxBatches: number;
  stopTimeoutMs: number;
}

export const DEFAULT_TIMINGS: PublisherTimings = {
  retryBaseMs: 100,
  lagCheckIntervalMs: 15_000,
  cleanupIntervalMs: 60_000,
  cleanupBatchSize: 5_000,
  cleanupMaxBatches: 20,
  stopTimeoutMs: 5_000,
};

const MAX_REPORTED_EVENT_IDS = 10;
/** Batches published at shutdown, at most (the stop timeout bounds them too). */
const MAX_BATCHES_AT_STOP = 10;

class TransportFailure extends Error {}

export class OutboxPublisher {
  private role: PublisherRole = 'starting';
  private published = 0;
  private readonly stopping = new AbortController();
  /** Aborted when stop() gives up waiting: the publishing at stop starts no further batch. */
  private readonly abandoned = new AbortController();
  private running: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  /** Aggregates held back behind a row that failed on its own, and when to retry them. */
  private readonly blocked = new Map<string, number>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly maintenance: OutboxMaintenance;

  constructor(
    /** The shared (pooled) database: status and cleanup. */
    private readonly db: LedgerDb,
    private readonly leadership: Leadership,
    private readonly sink: EventSink,
    private readonly options: OutboxConfig,
    private readonly logger: OutboxLogger,
    private readonly timings: PublisherTimings = DEFAULT_TIMINGS,
  ) {
    this.maintenance = new OutboxMaintenance(db, options, timings, logger);
  }

  start(): void {
    if (this.running) return;
    this.running = this.run();
    const every = (ms: number, task: () => Promise<void>) => {
      const timer = setInterval(() => {
        if (this.role === 'leader') task().catch(() => {});
      }, ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(this.timings.lagCheckIntervalMs, () => this.maintenance.checkLag(this.role));
    every(this.timings.cleanupIntervalMs, () => this.cleanup().then(() => {}));
  }

  get currentRole(): PublisherRole {
    return this.role;
  }

  /**
   * Never rejects: without the database the counts are null. With `statsTimeoutMs`, counts that take longer
   * (a busy pool, a slow database) are null too, and the role, which is this process's own and needs no
   * database, is still reported on time: a probe asking "who leads?" always gets the answer.
   */
  async status(statsTimeoutMs?: number): Promise<OutboxStatus> {
    const unknown = { unpublished: null, oldestAgeMs: null };
    let timer: NodeJS.Timeout | undefined;
    const late =
      statsTimeoutMs === undefined
        ? []
        : [new Promise<typeof unknown>((resolve) => (timer = setTimeout(() => resolve(unknown), statsTimeoutMs)))];
    const stats: OutboxStats | typeof unknown = await Promise.race([
      outboxStats(this.db).catch(() => unknown),
      ...late,
    ]);
    clearTimeout(timer);
    return { role: this.role, sink: this.sink.kind, published: this.published, ...stats };
  }

  /**
   * Finishes the in-flight batch and publishes what is pending (see the module comment), or past the stop
   * timeout abandons them; then releases the lock and the producer.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping.abort();
      for (const timer of this.timers) clearInterval(timer);
      if (this.running) {
        let timer: NodeJS.Timeout | undefined;
        const finished = await Promise.race([
          this.running.then(() => true),
          new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), this.timings.stopTimeoutMs))),
        ]);
        clearTimeout(timer);
        if (!finished) {
          this.abandoned.abort();
          this.logger.warn(
            { timeoutMs: this.timings.stopTimeoutMs },
            'outbox publishing still in flight at shutdown: abandoned; rows not yet published will be sent again',
          );
        }
      }
      await this.leadership.close();
      await this.sink.stop();
      this.role = 'stopped';
    })();
    return this.stopped;
  }

  /** One cleanup run: deletes published rows past retention, in bounded batches. Returns how many. */
  cleanup(): Promise<number> {
    return this.maintenance.cleanup();
  }

  private async run(): Promise<void> {
    const stop = this.stopping.signal;
    while (!stop.aborted) {
      let term: LeaderTerm | undefined;
      try {
        term = await this.leadership.tryAcquire();
      } catch (error) {
        this.logger.warn({ err: error }, 'outbox leadership check failed; will retry');
      }
      if (!term) {
        if (this.role !== 'standby') this.logger.info({}, 'outbox publisher on standby: another replica leads');
        this.role = 'standby';
        await sleep(this.options.leaderRetryMs, stop);
        continue;
      }
      this.role = 'leader';
      this.logger.info({ sink: this.sink.kind }, 'outbox publisher is the leader');
      let failed = false;
      try {
        await this.lead(term);
      } catch (error) {
        failed = true;
        this.logger.error({ err: error }, 'outbox publisher hit a database error; giving up leadership');
      } finally {
        this.role = 'standby';
        this.blocked.clear();
        await term.release().catch(() => {});
        await this.sink.stop().catch(() => {});
      }
      // Then compete again like any standby, on a fresh connection.
      if (failed) await sleep(this.options.leaderRetryMs, stop);
    }
  }

  private async lead(term: LeaderTerm): Promise<void> {
    const active = AbortSignal.any([this.stopping.signal, term.signal]);
    const waker = new Waker();
    term.onNotify(() => waker.wake());
    let failures = 0;
    this.cleanup().catch(() => {});
    while (!active.aborted) {
      let full = false;
      try {
        await this.retryBlocked(term.db);
        full = await this.publishBatch(term.db);
        failures = 0;
      } catch (error) {
        failures++;
        if (active.aborted) break;
        // A database error may mean the lock's session is in trouble: end this term (run() starts over on a
        // fresh connection). Rows not yet marked stay unpublished and are sent again.
        if (!(error instanceof TransportFailure)) throw error;
        const delayMs = backoffMs(failures, this.timings.retryBaseMs, this.options.retryMaxMs);
        this.logger.warn({ err: error.cause, failures, delayMs }, 'publishing outbox events failed; retrying');
        await sleep(delayMs, active);
        continue;
      }
      if (!full) {
        await waker.wait(this.nextWakeMs(), active);
        if (this.options.lingerMs > 0) await sleep(this.options.lingerMs, active);
      }
    }
    // Not after a failed round, even one cut short by the stop: the sink or the database is in trouble.
    if (!term.signal.aborted && failures === 0) await this.publishPendingAtStop(term.db);
  }

  /**
   * At stop, while this process still leads: publishes what is pending, batch by batch, until a batch is not
   * full, MAX_BATCHES_AT_STOP were sent or stop() gave up waiting. A failure ends it with a warning: those rows
   * stay for the next leader.
   */
  private async publishPendingAtStop(db: LedgerDb): Promise<void> {
    try {
      for (let batch = 0; batch < MAX_BATCHES_AT_STOP && !this.abandoned.signal.aborted; batch++) {
        if (!(await this.publishBatch(db))) return;
      }
    } catch (error) {
      const cause = error instanceof TransportFailure ? error.cause : error;
      this.logger.warn({ err: cause }, 'publishing outbox events at shutdown failed; the next leader sends them');
    }
  }

  /** Poll interval, or sooner if a blocked aggregate is due. */
  private nextWakeMs(): number {
    let wake = this.options.pollIntervalMs;
    const now = Date.now();
    for (const retryAt of this.blocked.values()) wake = Math.min(wake, Math.max(0, retryAt - now));
    return wake;
  }

  /** Sends one batch; true if it was full (so there may be more right away). */
  private async publishBatch(db: LedgerDb): Promise<boolean> {
    const rows = await selectPending(db, this.options.batchSize, [...this.blocked.keys()]);
    if (rows.length === 0) return false;
    const messages = rows.map((row) => messageOf(row, this.options.topics));
    try {
      await this.sink.send(messages);
    } catch (error) {
      if (error instanceof SinkError && error.scope === 'message') {
        await this.publishOneByOne(db, messages);
        return rows.length === this.options.batchSize;
      }
      await this.failed(db, rows, error);
      throw new TransportFailure('sink failed', { cause: error });
    }
    await this.markPublished(db, rows);
    return rows.length === this.options.batchSize;
  }

  /** Retries the held-back aggregates whose time has come, on their own. */
  private async retryBlocked(db: LedgerDb): Promise<void> {
    const now = Date.now();
    const due = [...this.blocked].filter(([, retryAt]) => retryAt <= now).map(([aggregateId]) => aggregateId);
    if (due.length === 0) return;
    const rows = await selectPendingOf(db, due, this.options.batchSize);
    // Aggregates with nothing left unpublished (e.g. fixed by hand) are free again.
    const stillPending = new Set(rows.map((row) => row.aggregateId));
    for (const aggregateId of due) if (!stillPending.has(aggregateId)) this.blocked.delete(aggregateId);
    const messages = rows.map((row) => messageOf(row, this.options.topics));
    for (const aggregateId of stillPending) this.blocked.delete(aggregateId);
    await this.publishOneByOne(db, messages);
  }

  /**
   * Sends row by row in id order, so a failing row is found and only its aggregate waits. A transport failure
   * stops the round (the rest is retried with the publisher's backoff).
   */
  private async publishOneByOne(db: LedgerDb, messages: OutgoingMessage[]): Promise<void> {
    const sent: OutboxRow[] = [];
    try {
      for (const message of messages) {
        const { row } = message;
        if (this.blocked.has(row.aggregateId)) continue;
        try {
          await this.sink.send([message]);
          sent.push(row);
        } catch (error) {
          const [failed] = await this.failed(db, [row], error);
          if (error instanceof SinkError && error.scope === 'message') {
            const attempts = failed?.attempts ?? row.attempts + 1;
            const delayMs = backoffMs(attempts, this.timings.retryBaseMs, this.options.retryMaxMs);
            this.blocked.set(row.aggregateId, Date.now() + delayMs);
            this.logger.warn(
              { err: error, eventId: row.eventId, aggregateId: row.aggregateId, attempts, retryInMs: delayMs },
              'outbox event rejected; holding back the later events of its aggregate',
            );
            continue;
          }
          throw new TransportFailure('sink failed', { cause: error });
        }
      }
    } finally {
      await this.markPublished(db, sent);
    }
  }

  private async markPublished(db: LedgerDb, rows: OutboxRow[]): Promise<void> {
    if (rows.length === 0) return;
    await markPublished(
      db,
      rows.map((row) => row.id),
    );
    this.published += rows.length;
    metrics.outboxPublished(rows.length);
  }

  /** Counts the failed attempt on the rows and reports those that keep failing. */
  private async failed(db: LedgerDb, rows: OutboxRow[], error: unknown): Promise<FailedRow[]> {
    metrics.outboxPublishFailed(rows.length);
    const reason = error instanceof Error ? error.message : String(error);
    const counted = await recordFailure(
      db,
      rows.map((row) => row.id),
      reason,
    );
    const stuck = counted.filter((row) => row.attempts >= this.options.warnAfterAttempts);
    if (stuck.length > 0) {
      this.logger.warn(
        {
          count: stuck.length,
          eventIds: stuck.slice(0, MAX_REPORTED_EVENT_IDS).map((row) => row.eventId),
          attempts: Math.max(...stuck.map((row) => row.attempts)),
          error: reason,
        },
        `outbox events failed ${this.options.warnAfterAttempts} or more times; kept and still retried`,
      );
    }
    return counted;
  }
}
