/**
 * Fixed SQL shapes of the hot path, run as named (prepared) statements: PostgreSQL parses and plans each once
 * per connection instead of once per request, and no query is built per request. List inputs are passed as
 * arrays (`= any($1::text[])`, `unnest(...)`), so one shape serves any number of commands.
 *
 * Runs on the transaction's own connection (node-postgres: `{ name, text, values }` query configs; PGlite: its
 * one connection, which caches the parsed statement by text itself).
 */
import pg from 'pg';
import type { LedgerDb, LedgerTx } from './client.js';
import { queryThenCommit } from './pipelined-transactions.js';

export interface PreparedShape {
  /** Unique per text: node-postgres refuses a name reused for another text on one connection. */
  name: string;
  text: string;
}

interface Queryable {
  query(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: unknown[] }>;
}

interface PgliteQueryable {
  query(text: string, values: unknown[]): Promise<{ rows: unknown[] }>;
}

/** The driver client under a drizzle database or transaction (a pg PoolClient/Pool, or PGlite). */
function clientOf(db: LedgerDb | LedgerTx): Queryable | PgliteQueryable {
  const client = (db as unknown as { session?: { client?: unknown } }).session?.client;
  if (!client) throw new Error('no driver client under this drizzle database');
  return client as Queryable | PgliteQueryable;
}

export interface RunOptions {
  /**
   * The transaction's last statement: on node-postgres its COMMIT goes out in the same exchange
   * (pipelined-transactions.ts) and it resolves only once COMMIT succeeded; the transaction's own commit then
   * waits for that one. Nothing may query or refuse the result after it. Ignored outside a transaction drizzle
   * opened, inside a savepoint, and on PGlite.
   */
  commit?: boolean;
}

/** Runs `shape` with `values` ($1, $2, … in order); returns the rows as the driver parsed them. */
export async function runPrepared<Row>(
  db: LedgerDb | LedgerTx,
  shape: PreparedShape,
  values: unknown[],
  options: RunOptions = {},
): Promise<Row[]> {
  const client = clientOf(db);
  const config = { name: shape.name, text: shape.text, values };
  if (client instanceof pg.Client) {
    const result = options.commit
      ? await queryThenCommit<{ rows: unknown[] }>(client, config)
      : await (client as Queryable).query(config);
    return result.rows as Row[];
  }
  if (client instanceof pg.Pool) {
    const result = await (client as Queryable).query(config);
    return result.rows as Row[];
  }
  const result = await (client as PgliteQueryable).query(shape.text, values);
  return result.rows as Row[];
}

/** int8 columns arrive as strings from node-postgres and as bigint or number from PGlite. */
export function toBigInt(value: unknown): bigint {
  return typeof value === 'bigint' ? value : BigInt(value as string | number);
}

/** timestamptz arrives as a Date from both drivers; a string is parsed to be safe. */
export function toDate(value: unknown): Date {
  return value instanceof Date ? value : new Date(value as string);
}
