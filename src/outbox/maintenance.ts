/**
 * The outbox's upkeep, run by the leader beside the relay (publisher.ts): deleting published rows past their
 * retention in bounded batches, and watching the lag (unpublished rows, age of the oldest), logged once when
 * it passes OUTBOX_LAG_WARN_MS and once when it is back under.
 */
import type { OutboxConfig } from '../config.js';
import type { LedgerDb } from '../db/client.js';
import type { PublisherRole, PublisherTimings } from './publisher.js';
import type { OutboxLogger } from './sink.js';
import { deletePublished, outboxStats } from './store.js';

export class OutboxMaintenance {
  private lagging = false;
  private cleaning = false;

  constructor(
    private readonly db: LedgerDb,
    private readonly options: Pick<OutboxConfig, 'retentionMs' | 'lagWarnMs'>,
    private readonly timings: Pick<PublisherTimings, 'cleanupBatchSize' | 'cleanupMaxBatches'>,
    private readonly logger: OutboxLogger,
  ) {}

  /**
   * One cleanup run: deletes published rows past retention, at most cleanupMaxBatches batches of
   * cleanupBatchSize rows. Returns how many were deleted; 0 while another run is in progress. Never throws.
   */
  async cleanup(): Promise<number> {
    if (this.cleaning) return 0;
    this.cleaning = true;
    let total = 0;
    try {
      for (let batch = 0; batch < this.timings.cleanupMaxBatches; batch++) {
        const deleted = await deletePublished(this.db, this.options.retentionMs, this.timings.cleanupBatchSize);
        total += deleted;
        if (deleted < this.timings.cleanupBatchSize) break;
      }
      if (total > 0) this.logger.info({ deleted: total }, 'deleted published outbox events past retention');
    } catch (error) {
      this.logger.warn({ err: error }, 'outbox cleanup failed; will retry');
    } finally {
      this.cleaning = false;
    }
    return total;
  }

  /** Logs a lag past OUTBOX_LAG_WARN_MS (and its end) once each; never throws. `role` is logged with it. */
  async checkLag(role: PublisherRole): Promise<void> {
    try {
      const stats = await outboxStats(this.db);
      if (stats.oldestAgeMs > this.options.lagWarnMs) {
        this.lagging = true;
        this.logger.warn(Object.assign({}, stats, { role }), 'outbox publisher is lagging');
      } else if (this.lagging) {
        this.lagging = false;
        this.logger.info(Object.assign({}, stats, { role }), 'outbox publisher caught up');
      }
    } catch (error) {
      this.logger.warn({ err: error }, 'outbox lag check failed');
    }
  }
}
