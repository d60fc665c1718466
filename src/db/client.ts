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
import { type DatabaseSettings, explainDatabaseError } from '../config/database.js';
import { tracePgliteQueries, traceQueries } from '../observability/db-tracing.js';
import { metrics } from '../observability/metrics.js';
import { lockDataDir } from './data-dir-lock.js';
import { isPoolWaitTimeout } from './errors.js';
import { migratePglite, migratePostgres } from './migrate.js';
import { forgetTransaction, pipelineTransactions } from './pipelined-transactions.js';
import * as schema from './schema.js';

export type LedgerDb = PgDatabase<PgQueryResultHKT, typeof schema>;
export type LedgerTx = Parameters<Parameters<LedgerDb['transaction']>[0]>[0];

export interface Database {
  db: LedgerDb;
  kind: 'postgres' | 'pglite';
  /** Requests that waited too long for a pool connection (answered UNAVAILABLE), since start. */
  poolWaitTimeouts(): number;
  /**
   * LISTENs on `channel` until the returned function is called: `onNotify` per notification, `onListening(true)`
   * once listening (again), `onListening(false)` when notifications may be missed (the connection was lost; it
   * is re-established with bounded backoff). Resolves once the first attempt has succeeded or failed.
   */
  listen(
    channel: string,
    onNotify: (payload: string) => void,
    onListening: (listening: boolean) => void,
  ): Promise<() => Promise<void>>;
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
  /** How long a query or transaction waits for a free connection before failing (see isPoolWaitTimeout). */
  poolWaitMs?: number;
  /** Called once per pool wait that timed out, whichever layer asked for the connection. */
  onPoolWaitTimeout?: () => void;
}

export function openPostgres(options: PostgresOptions): Database {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize,
    connectionTimeoutMillis: options.poolWaitMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    // Set per connection rather than per transaction: saves a round trip on every payment.
    options: `-c lock_timeout=${options.lockTimeoutMs ?? 5_000} -c statement_timeout=${options.statementTimeoutMs ?? 15_000}`,
    // Queries may be sent before the previous one is answered: lets a transaction's BEGIN and COMMIT go out in
    // one exchange with its first and last statements (pipelined-transactions.ts).
    pipeline: true,
  });
  // A client's error (e.g. the server restarted or terminated it) must not crash the process: an idle one
  // is replaced by the pool, one in use fails its query, and one being closed by pool.end() is done anyway.
  pool.on('error', () => {});
  pool.on('connect', (client) => {
    client.on('error', () => {});
    traceQueries(client);
    pipelineTransactions(client);
  });
  pool.on('release', (_error: unknown, client: pg.PoolClient) => forgetTransaction(client));
  let poolWaitTimeouts = 0;
  countPoolWaitTimeouts(pool, () => {
    poolWaitTimeouts++;
    options.onPoolWaitTimeout?.();
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
    poolWaitTimeouts: () => poolWaitTimeouts,
    listen: (channel, onNotify, onListening) => listenPostgres(options.url, channel, onNotify, onListening),
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

const LISTEN_RETRY_MIN_MS = 250;
const LISTEN_RETRY_MAX_MS = 10_000;
const LISTEN_CONNECT_TIMEOUT_MS = 5_000;

/** A dedicated connection (LISTEN needs one that stays open), re-established with capped exponential backoff. */
async function listenPostgres(
  url: string,
  channel: string,
  onNotify: (payload: string) => void,
  onListening: (listening: boolean) => void,
): Promise<() => Promise<void>> {
  let stopped = false;
  let client: pg.Client | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let failures = 0;
  const lost = (failed: pg.Client) => {
    if (client !== failed) return;
    client = undefined;
    onListening(false);
    failed.end().catch(() => {});
    if (stopped) return;
    const delayMs = Math.min(LISTEN_RETRY_MAX_MS, LISTEN_RETRY_MIN_MS * 2 ** Math.min(failures++, 10));
    retryTimer = setTimeout(() => void connect(), delayMs);
  };
  const connect = async () => {
    const next = new pg.Client({ connectionString: url, connectionTimeoutMillis: LISTEN_CONNECT_TIMEOUT_MS });
    client = next;
    next.on('error', () => lost(next));
    next.on('end', () => lost(next));
    next.on('notification', (message) => {
      if (message.channel === channel) onNotify(message.payload ?? '');
    });
    try {
      await next.connect();
      await next.query(`listen ${pg.escapeIdentifier(channel)}`);
      if (client !== next || stopped) return;
      failures = 0;
      onListening(true);
    } catch {
      lost(next);
    }
  };
  await connect();
  return async () => {
    stopped = true;
    clearTimeout(retryTimer);
    const current = client;
    client = undefined;
    onListening(false);
    await current?.end().catch(() => {});
  };
}

type ConnectCallback = (error: Error | undefined, ...rest: unknown[]) => void;

/**
 * Wraps pool.connect, which both drizzle's transactions and pool.query (callback style) go through, to see every
 * connection wait that timed out at its source, exactly once.
 */
function countPoolWaitTimeouts(pool: pg.Pool, onTimeout: () => void): void {
  const connect = pool.connect.bind(pool) as (callback?: ConnectCallback) => Promise<pg.PoolClient> | undefined;
  const check = (error: unknown) => {
    if (isPoolWaitTimeout(error)) onTimeout();
  };
  (pool as unknown as { connect: typeof connect }).connect = (callback?: ConnectCallback) => {
    if (callback) {
      return connect((error, ...rest) => {
        check(error);
        callback(error, ...rest);
      });
    }
    return connect()?.catch((error: unknown) => {
      check(error);
      throw error;
    });
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
    // One in-process connection: nothing waits for a pool.
    poolWaitTimeouts: () => 0,
    // One process: notifications are delivered in-process and never missed.
    listen: async (channel, onNotify, onListening) => {
      const unlisten = await client.listen(channel, onNotify);
      onListening(true);
      return async () => {
        onListening(false);
        await unlisten();
      };
    },
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

/**
 * Opens and migrates the database; an unreachable DATABASE_URL is a ConfigError naming it.
 * `onPoolWaitTimeout`: called once per request that waited too long for a pool connection.
 */
export async function openDatabase(
  config: DatabaseSettings & { dbPoolWaitMs?: number },
  onPoolWaitTimeout?: () => void,
): Promise<Database> {
  const database = config.databaseUrl
    ? openPostgres({
        url: config.databaseUrl,
        poolSize: config.dbPoolSize,
        poolWaitMs: config.dbPoolWaitMs,
        onPoolWaitTimeout,
      })
    : await openPglite(config.dataDir);
  try {
    await database.migrate();
  } catch (error) {
    await database.close().catch(() => {});
    throw explainDatabaseError(config, error);
  }
  return database;
}
