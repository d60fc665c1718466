/**
 * Opens the ledger database: node-postgres against DATABASE_URL, or embedded PGlite (PostgreSQL compiled to
 * WASM) in a data directory when none is configured. Both speak the same SQL and run the same migrations, so
 * the rest of the code sees one `LedgerDb` type.
 */
import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import { drizzle as drizzleNodePg } from 'drizzle-orm/node-postgres';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import pg from 'pg';
import { tracePgliteQueries, traceQueries } from '../observability/db-tracing.js';
import { metrics } from '../observability/metrics.js';
import { lockDataDir } from './data-dir-lock.js';
import { migratePglite, migratePostgres } from './migrate.js';
import * as schema from './schema.js';

export type LedgerDb = PgDatabase<PgQueryResultHKT, typeof schema>;
export type LedgerTx = Parameters<Parameters<LedgerDb['transaction']>[0]>[0];

export interface Database {
  db: LedgerDb;
  kind: 'postgres' | 'pglite';
  /** Applies pending migrations from drizzle/. */
  migrate(): Promise<void>;
  /** Cheap round trip for readiness checks. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface PostgresOptions {
  url: string;
  poolSize: number;
  /** Bounds how long a statement waits for a row lock (e.g. a hot balance or an in-flight idempotency key). */
  lockTimeoutMs?: number;
  statementTimeoutMs?: number;
}

export function openPostgres(options: PostgresOptions): Database {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    // Set per connection rather than per transaction: saves a round trip on every payment.
    options: `-c lock_timeout=${options.lockTimeoutMs ?? 5_000} -c statement_timeout=${options.statementTimeoutMs ?? 15_000}`,
  });
  // A client's error (e.g. the server restarted or terminated it) must not crash the process: an idle one
  // is replaced by the pool, one in use fails its query, and one being closed by pool.end() is done anyway.
  pool.on('error', () => {});
  pool.on('connect', (client) => {
    client.on('error', () => {});
    traceQueries(client);
  });
  const db = drizzleNodePg(pool, { schema }) as unknown as LedgerDb;
  const unwatch = metrics.watchPool(() => ({
    total: pool.totalCount,
    idle: pool.idleCount,
    waiting: pool.waitingCount,
  }));
  return {
    db,
    kind: 'postgres',
    migrate: () => migratePostgres(options.url),
    ping: async () => {
      await pool.query('select 1');
    },
    close: () => {
      unwatch();
      return pool.end();
    },
  };
}

/**
 * Opens the embedded database in `dataDir` (created if missing), holding the directory's exclusive lock
 * until close(). Throws DataDirLockedError while another live process has it open.
 */
export async function openPglite(dataDir: string): Promise<Database> {
  mkdirSync(dataDir, { recursive: true });
  const lock = lockDataDir(dataDir);
  let client: PGlite;
  try {
    client = await PGlite.create(dataDir);
  } catch (error) {
    lock.release();
    throw error;
  }
  tracePgliteQueries(client as unknown as Parameters<typeof tracePgliteQueries>[0]);
  const db = drizzlePglite(client, { schema }) as unknown as LedgerDb;
  return {
    db,
    kind: 'pglite',
    migrate: () => migratePglite(client),
    ping: async () => {
      await db.execute(sql`select 1`);
    },
    close: async () => {
      try {
        await client.close();
      } finally {
        lock.release();
      }
    },
  };
}
