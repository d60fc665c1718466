/**
 * The outbox publisher's SQL. Every function takes the Drizzle database to run on: the leader's own
 * lock-holding connection for the publishing path, the pool for status and cleanup.
 */
import { and, asc, inArray, isNull, notInArray, sql } from 'drizzle-orm';
import type { LedgerDb } from '../db/client.js';
import { outboxEvents } from '../db/schema.js';
import type { OutboxRow } from './routing.js';

const MAX_ERROR_LENGTH = 1_000;

const rowColumns = {
  id: outboxEvents.id,
  eventId: outboxEvents.eventId,
  eventType: outboxEvents.eventType,
  aggregateType: outboxEvents.aggregateType,
  aggregateId: outboxEvents.aggregateId,
  aggregateSeq: outboxEvents.aggregateSeq,
  payload: outboxEvents.payload,
  createdAt: outboxEvents.createdAt,
  attempts: outboxEvents.attempts,
  traceContext: outboxEvents.traceContext,
};

/**
 * The next unpublished rows in id order, leaving out the aggregates in `exceptAggregates` (held back behind
 * a failing row of theirs).
 *
 * Deliberately not "id > the last id seen": ids are allocated when a row is inserted, not when its
 * transaction commits, so a transaction that took id 10 may commit after 11…20 were published. Row 10 is
 * then simply still unpublished and is picked up by the next call. That is safe for per-aggregate order
 * because there is one publisher (the advisory-lock leader) and the ledger writes an aggregate's events while
 * holding that aggregate's row lock, so one aggregate's rows commit in sequence (and id) order: a late
 * lower id always belongs to a different aggregate than the rows that overtook it.
 */
export async function selectPending(db: LedgerDb, limit: number, exceptAggregates: string[]): Promise<OutboxRow[]> {
  const unpublished = isNull(outboxEvents.publishedAt);
  return db
    .select(rowColumns)
    .from(outboxEvents)
    .where(
      exceptAggregates.length > 0
        ? and(unpublished, notInArray(outboxEvents.aggregateId, exceptAggregates))
        : unpublished,
    )
    .orderBy(asc(outboxEvents.id))
    .limit(limit);
}

/** The unpublished rows of the given aggregates, in id order. */
export async function selectPendingOf(db: LedgerDb, aggregateIds: string[], limit: number): Promise<OutboxRow[]> {
  if (aggregateIds.length === 0) return [];
  return db
    .select(rowColumns)
    .from(outboxEvents)
    .where(and(isNull(outboxEvents.publishedAt), inArray(outboxEvents.aggregateId, aggregateIds)))
    .orderBy(asc(outboxEvents.id))
    .limit(limit);
}

/** After the broker acknowledged them. */
export async function markPublished(db: LedgerDb, ids: bigint[]): Promise<void> {
  if (ids.length === 0) return;
  await db
    .update(outboxEvents)
    .set({ publishedAt: sql`now()` })
    .where(and(inArray(outboxEvents.id, ids), isNull(outboxEvents.publishedAt)));
}

export interface FailedRow {
  eventId: string;
  aggregateId: string;
  attempts: number;
}

/** Counts a failed attempt on each row and keeps the error; returns the new counts. */
export async function recordFailure(db: LedgerDb, ids: bigint[], error: string): Promise<FailedRow[]> {
  if (ids.length === 0) return [];
  return db
    .update(outboxEvents)
    .set({ attempts: sql`${outboxEvents.attempts} + 1`, lastError: error.slice(0, MAX_ERROR_LENGTH) })
    .where(and(inArray(outboxEvents.id, ids), isNull(outboxEvents.publishedAt)))
    .returning({
      eventId: outboxEvents.eventId,
      aggregateId: outboxEvents.aggregateId,
      attempts: outboxEvents.attempts,
    });
}

export interface OutboxStats {
  unpublished: number;
  /** Age of the oldest unpublished event (0 when there is none). */
  oldestAgeMs: number;
}

export async function outboxStats(db: LedgerDb): Promise<OutboxStats> {
  const result = await db.execute<{ unpublished: number; oldest_age_ms: string | number }>(sql`
    select count(*)::int as unpublished,
           coalesce(floor(extract(epoch from (now() - min(created_at))) * 1000), 0)::bigint::text as oldest_age_ms
    from ${outboxEvents} where published_at is null`);
  const row = rowsOf<{ unpublished: number; oldest_age_ms: string | number }>(result)[0];
  return { unpublished: Number(row?.unpublished ?? 0), oldestAgeMs: Math.max(0, Number(row?.oldest_age_ms ?? 0)) };
}

/** Deletes up to `limit` rows published more than `retentionMs` ago; returns how many. */
export async function deletePublished(db: LedgerDb, retentionMs: number, limit: number): Promise<number> {
  const result = await db.execute<{ deleted: number }>(sql`
    with doomed as (
      select id from ${outboxEvents}
      where published_at is not null and published_at < now() - ${retentionMs}::double precision * interval '1 millisecond'
      order by published_at
      limit ${limit}
    ), gone as (
      delete from ${outboxEvents} where id in (select id from doomed) returning 1
    )
    select count(*)::int as deleted from gone`);
  return Number(rowsOf<{ deleted: number }>(result)[0]?.deleted ?? 0);
}

/** node-postgres and PGlite both answer `execute` with an object carrying `rows`. */
function rowsOf<Row>(result: unknown): Row[] {
  return (result as { rows: Row[] }).rows;
}
