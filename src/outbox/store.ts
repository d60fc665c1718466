/**
 * The outbox publisher's SQL. Every function takes the Drizzle database to run on: the leader's own
 * lock-holding connection for the publishing path, the pool for status and cleanup. The statements each
 * publishing round runs (select pending, mark published) are prepared shapes; the rarer ones are built by
 * Drizzle.
 */
import { and, inArray, isNull, sql } from 'drizzle-orm';
import type { LedgerDb } from '../db/client.js';
import { type PreparedShape, runPrepared, toBigInt, toDate } from '../db/prepared.js';
import { outboxEvents } from '../db/schema.js';
import type { OutboxRow } from './routing.js';

const MAX_ERROR_LENGTH = 1_000;

/** The columns of an OutboxRow, in the order rowOf reads them. */
const ROW_COLUMNS = `id, event_id, event_type, aggregate_type, aggregate_id, aggregate_seq, payload, created_at, attempts,
  trace_context`;

/**
 * The next unpublished rows in id order, leaving out the aggregates in $2 (held back behind a failing row of
 * theirs; an empty array leaves out none). One shape for both, so it stays one prepared statement.
 */
const SELECT_PENDING: PreparedShape = {
  name: 'outbox_select_pending',
  text: `select ${ROW_COLUMNS} from outbox_events
    where published_at is null and not (aggregate_id = any($2::text[]))
    order by id limit $1`,
};

const SELECT_PENDING_OF: PreparedShape = {
  name: 'outbox_select_pending_of',
  text: `select ${ROW_COLUMNS} from outbox_events
    where published_at is null and aggregate_id = any($1::text[])
    order by id limit $2`,
};

const MARK_PUBLISHED: PreparedShape = {
  name: 'outbox_mark_published',
  text: 'update outbox_events set published_at = now() where id = any($1::bigint[]) and published_at is null',
};

interface PendingRowSql {
  id: unknown;
  event_id: string;
  event_type: string;
  aggregate_type: string;
  aggregate_id: string;
  aggregate_seq: unknown;
  payload: Uint8Array;
  created_at: unknown;
  attempts: number;
  trace_context: string | null;
}

function rowOf(row: PendingRowSql): OutboxRow {
  return {
    id: toBigInt(row.id),
    eventId: row.event_id,
    eventType: row.event_type,
    aggregateType: row.aggregate_type,
    aggregateId: row.aggregate_id,
    aggregateSeq: toBigInt(row.aggregate_seq),
    payload: row.payload,
    createdAt: toDate(row.created_at),
    attempts: Number(row.attempts),
    traceContext: row.trace_context,
  };
}

/**
 * The next unpublished rows in id order, at most `limit`, leaving out the aggregates in `exceptAggregates`
 * (held back behind a failing row of theirs). Runs once per publishing round under load, so it is a prepared
 * statement (src/db/prepared.ts) read straight into OutboxRow.
 *
 * Deliberately not "id > the last id seen": ids are allocated when a row is inserted, not when its
 * transaction commits, so a transaction that took id 10 may commit after 11…20 were published. Row 10 is
 * then simply still unpublished and is picked up by the next call. That is safe for per-aggregate order
 * because there is one publisher (the advisory-lock leader) and the ledger writes an aggregate's events while
 * holding that aggregate's row lock, so one aggregate's rows commit in sequence (and id) order: a late
 * lower id always belongs to a different aggregate than the rows that overtook it.
 */
export async function selectPending(db: LedgerDb, limit: number, exceptAggregates: string[]): Promise<OutboxRow[]> {
  const rows = await runPrepared<PendingRowSql>(db, SELECT_PENDING, [limit, exceptAggregates]);
  return rows.map(rowOf);
}

/** The unpublished rows of the given aggregates, in id order, at most `limit`. */
export async function selectPendingOf(db: LedgerDb, aggregateIds: string[], limit: number): Promise<OutboxRow[]> {
  if (aggregateIds.length === 0) return [];
  const rows = await runPrepared<PendingRowSql>(db, SELECT_PENDING_OF, [aggregateIds, limit]);
  return rows.map(rowOf);
}

/** After the broker acknowledged them: one prepared statement whatever the number of ids. */
export async function markPublished(db: LedgerDb, ids: bigint[]): Promise<void> {
  if (ids.length === 0) return;
  await runPrepared(db, MARK_PUBLISHED, [ids.map((id) => id.toString())]);
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
