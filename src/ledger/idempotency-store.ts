/**
 * Idempotency keys live in the same transaction as the effect they guard, so "stored response" and "money
 * moved" commit together or not at all. A key is claimed first (INSERT … ON CONFLICT): a concurrent request
 * with the same key blocks on the unique index until the first commits, then sees its stored outcome and
 * replays it. No request ever observes a half-done key.
 */
import { and, inArray, type SQL, sql } from 'drizzle-orm';
import type { LedgerTx } from '../db/client.js';
import { type PreparedShape, runPrepared } from '../db/prepared.js';
import { idempotencyKeys } from '../db/schema.js';
import type { LedgerOutcome } from './commands.js';
import { decodeOutcome, encodeOutcome } from './stored-outcome.js';

export interface KeyClaim {
  principal: string;
  idempotencyKey: string;
  params: Record<string, string>;
}

export interface StoredKey {
  params: Record<string, string>;
  outcome: LedgerOutcome;
}

const keyOf = (principal: string, idempotencyKey: string) => `${principal}\u0000${idempotencyKey}`;

/**
 * The claim, as a statement of its own or as the first CTE of a longer one (locks.ts): inserted in the given
 * (sorted) order; an expired key not reaped yet is taken over; a live one is left alone and not returned.
 * Parameters $1–$6: principals, keys, operations, request params (JSON text), now, expiry.
 */
export const CLAIM_KEYS_SQL = `insert into idempotency_keys
      (principal, idempotency_key, operation, request_params, response, created_at, expires_at)
    select v.principal, v.idempotency_key, v.operation, v.request_params::jsonb, null, $5::timestamptz, $6::timestamptz
    from unnest($1::text[], $2::text[], $3::text[], $4::text[]) with ordinality
      as v(principal, idempotency_key, operation, request_params, position)
    order by v.position
    on conflict (principal, idempotency_key) do update set
      operation = excluded.operation, request_params = excluded.request_params, response = null,
      created_at = excluded.created_at, expires_at = excluded.expires_at
    where idempotency_keys.expires_at <= $5::timestamptz
    returning principal, idempotency_key`;

const CLAIM_KEYS: PreparedShape = { name: 'ledger_claim_keys', text: CLAIM_KEYS_SQL };

/** Claims in a fixed (sorted) order, so that two transactions claiming overlapping keys cannot deadlock. */
export function sortedClaims(claims: KeyClaim[]): KeyClaim[] {
  return [...claims].sort((a, b) =>
    keyOf(a.principal, a.idempotencyKey) < keyOf(b.principal, b.idempotencyKey) ? -1 : 1,
  );
}

/** The values of CLAIM_KEYS_SQL's $1–$6 for `sorted` claims. */
export function claimValues(sorted: KeyClaim[], now: Date, retentionMs: number): unknown[] {
  return [
    sorted.map((claim) => claim.principal),
    sorted.map((claim) => claim.idempotencyKey),
    sorted.map((claim) => claim.params.operation ?? ''),
    sorted.map((claim) => JSON.stringify(claim.params)),
    now.toISOString(),
    new Date(now.getTime() + retentionMs).toISOString(),
  ];
}

/**
 * Claims keys in one statement (sorted, see sortedClaims). An expired key that the reaper has not deleted yet
 * is taken over. Returns the claimed keys, and the stored outcome of every key another request already
 * completed.
 */
export async function claimKeys(
  tx: LedgerTx,
  claims: KeyClaim[],
  now: Date,
  retentionMs: number,
): Promise<{ claimed: Set<string>; existing: Map<string, StoredKey> }> {
  if (claims.length === 0) return { claimed: new Set(), existing: new Map() };
  const sorted = sortedClaims(claims);
  const inserted = await runPrepared<{ principal: string; idempotency_key: string }>(
    tx,
    CLAIM_KEYS,
    claimValues(sorted, now, retentionMs),
  );
  const claimed = new Set(inserted.map((row) => keyOf(row.principal, row.idempotency_key)));
  return { claimed, existing: await storedOutcomesOfTaken(tx, sorted, claimed) };
}

/** The stored outcomes of the keys in `claims` that were not claimed (another request used them first). */
export async function storedOutcomesOfTaken(
  tx: LedgerTx,
  claims: KeyClaim[],
  claimed: Set<string>,
): Promise<Map<string, StoredKey>> {
  const existing = new Map<string, StoredKey>();
  const taken = claims.filter((claim) => !claimed.has(keyOf(claim.principal, claim.idempotencyKey)));
  if (taken.length === 0) return existing;
  const rows = await tx
    .select({
      principal: idempotencyKeys.principal,
      idempotencyKey: idempotencyKeys.idempotencyKey,
      requestParams: idempotencyKeys.requestParams,
      response: idempotencyKeys.response,
    })
    .from(idempotencyKeys)
    .where(
      and(
        inArray(idempotencyKeys.principal, [...new Set(taken.map((claim) => claim.principal))]),
        inArray(
          idempotencyKeys.idempotencyKey,
          taken.map((claim) => claim.idempotencyKey),
        ),
      ),
    );
  for (const row of rows) {
    if (row.response === null) continue;
    existing.set(keyOf(row.principal, row.idempotencyKey), {
      params: row.requestParams,
      outcome: decodeOutcome(row.response),
    });
  }
  return existing;
}

export { keyOf as idempotencyKeyOf };

/** Stores the outcomes of claimed keys: a part of the ledger's one write statement (writes.ts). */
export function storeOutcomesSql(
  outcomes: { principal: string; idempotencyKey: string; outcome: LedgerOutcome }[],
): SQL | undefined {
  if (outcomes.length === 0) return undefined;
  const rows = outcomes.map(
    (item) => sql`(${item.principal}, ${item.idempotencyKey}, ${JSON.stringify(encodeOutcome(item.outcome))}::jsonb)`,
  );
  return sql`
    update ${idempotencyKeys} as k set response = v.response
    from (values ${sql.join(rows, sql`, `)}) as v(principal, idempotency_key, response)
    where k.principal = v.principal and k.idempotency_key = v.idempotency_key`;
}

/** Gives back keys whose request failed (e.g. NOT_FOUND), since a failed request stores nothing. */
export function releaseKeysSql(keys: { principal: string; idempotencyKey: string }[]): SQL | undefined {
  if (keys.length === 0) return undefined;
  const rows = keys.map((key) => sql`(${key.principal}, ${key.idempotencyKey})`);
  return sql`
    delete from ${idempotencyKeys} as k
    using (values ${sql.join(rows, sql`, `)}) as v(principal, idempotency_key)
    where k.principal = v.principal and k.idempotency_key = v.idempotency_key`;
}

/** Deletes keys past their retention, a bounded number per call; returns how many it deleted. */
export async function reapExpiredKeys(tx: LedgerTx, now: Date, limit: number): Promise<number> {
  const result = (await tx.execute(sql`
    delete from ${idempotencyKeys} where ctid in (
      select ctid from ${idempotencyKeys} where expires_at <= ${now.toISOString()}::timestamptz limit ${limit}
    )`)) as unknown as { rowCount?: number; affectedRows?: number };
  return result.rowCount ?? result.affectedRows ?? 0;
}
