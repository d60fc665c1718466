/**
 * Server processes for the replica and crash tests: the real entry point (service-process.ts) started on a
 * free port, with its URL read from its start-up log line, plus what those tests need around it: a backend
 * API key in a PostgreSQL database, and the ledger's tables read straight from either kind of database.
 */
import { sql } from 'drizzle-orm';
import { createApiKey } from '../../src/auth/api-keys.js';
import { SCOPES } from '../../src/auth/caller.js';
import { type Database, openPglite, openPostgres } from '../../src/db/client.js';
import { checkLedger } from '../../src/ledger/check.js';
import { TEST_AUTH_ENV } from './credentials.js';
import { type ServiceProcess, startServiceProcess } from './service-process.js';

/** tsx compiles the sources on every start, and the machine running the tests may be busy. */
export const PROCESS_START_TIMEOUT_MS = 60_000;
export const PROCESS_EXIT_TIMEOUT_MS = 15_000;

export interface ServerProcess extends ServiceProcess {
  /** http://127.0.0.1:PORT */
  url: string;
}

/** Starts `node src/main.ts` with `env` and resolves once it listens. Kills it if it does not. */
export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const running = startServiceProcess({ HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env });
  // A test worker that ends abruptly must not leave servers running on the shared machine.
  const killAtExit = () => running.kill();
  process.once('exit', killAtExit);
  running.child.once('exit', () => process.off('exit', killAtExit));
  try {
    const [, url] = await running.waitForStdout(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/, PROCESS_START_TIMEOUT_MS);
    return Object.assign(running, { url: url! });
  } catch (error) {
    running.kill();
    throw error;
  }
}

/** Settings for a server process on PostgreSQL: the test's JWT key, no demo data, the rate limiter off. */
export function postgresProcessEnv(databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    DB_POOL_SIZE: '4',
    SEED_DEMO_DATA: 'false',
    RATE_LIMIT_ENABLED: 'false',
    SHUTDOWN_GRACE_MS: '2000',
    ...TEST_AUTH_ENV,
    ...extra,
  };
}

/** A new backend API key with every scope, valid on every server of that database. */
export async function createBackendKey(databaseUrl: string): Promise<string> {
  const database = openPostgres({ url: databaseUrl, poolSize: 1 });
  try {
    return (await createApiKey(database.db, 'test-backend', [...SCOPES])).key;
  } finally {
    await database.close();
  }
}

/**
 * A backend API key with every scope in an embedded data directory, made before any server opens it (as an
 * operator would with `npm run apikey -- create`). Unlike the demo banner's key, which each start replaces,
 * it stays valid, and stays one principal, across restarts: idempotency keys are per principal.
 */
export async function createEmbeddedBackendKey(dataDir: string): Promise<string> {
  const database = await openPglite(dataDir);
  try {
    await database.migrate();
    return (await createApiKey(database.db, 'test-backend', [...SCOPES])).key;
  } finally {
    await database.close();
  }
}

export interface LedgerReader {
  /** Rows of a read-only SQL query. */
  rows<Row>(query: ReturnType<typeof sql>): Promise<Row[]>;
  /** The violations `npm run ledger:check` would report; empty when the books balance. */
  violations(): Promise<string[]>;
  close(): Promise<void>;
}

function readerOf(database: Database): LedgerReader {
  return {
    rows: async <Row>(query: ReturnType<typeof sql>) =>
      ((await database.db.execute(query)) as unknown as { rows: Row[] }).rows,
    violations: async () =>
      (await checkLedger(database.db)).checks.flatMap((check) => check.violations.map((v) => `${check.name}: ${v}`)),
    close: () => database.close(),
  };
}

const TAIL_LINE_CHARS = 300;

/**
 * The last `count` lines a server process wrote to stdout and to stderr, each cut to a readable length, after
 * its last few warnings and errors from further back (pino levels 40 and up), which the latest info lines would
 * otherwise hide: for the message of a test that gives up on it (what it last did, what went wrong before).
 */
export function logTail(process: ServiceProcess, count = 8): string[] {
  const lines = (text: string) => text.split('\n').filter((line) => line.trim() !== '');
  const out = lines(process.stdout());
  const earlierTrouble = out
    .slice(0, -count)
    .filter((line) => /^\{"level":[4-6]\d/.test(line))
    .slice(-4)
    .map((line) => `earlier: ${line}`);
  return [
    ...earlierTrouble,
    ...out.slice(-count),
    ...lines(process.stderr())
      .slice(-count)
      .map((line) => `stderr: ${line}`),
  ].map((line) => (line.length > TAIL_LINE_CHARS ? `${line.slice(0, TAIL_LINE_CHARS)}…` : line));
}

/**
 * The sessions on the reader's database that are in a transaction, waiting, or holding an advisory lock
 * (the outbox leadership, a settlement run), one line each: who holds what, and for how long.
 */
export async function busySessions(ledger: LedgerReader): Promise<string[]> {
  const rows = await ledger.rows<Record<string, string | number | null>>(sql`
    select a.pid, a.application_name as app, a.state, a.wait_event_type as wait_type, a.wait_event as wait,
           floor(extract(epoch from clock_timestamp() - a.xact_start))::int as xact_s,
           (select string_agg(l.objid::text, ',') from pg_locks l
             where l.pid = a.pid and l.locktype = 'advisory' and l.granted) as advisory,
           left(regexp_replace(a.query, '[[:space:]]+', ' ', 'g'), 100) as query
    from pg_stat_activity a
    where a.datname = current_database() and a.pid <> pg_backend_pid()
      and (a.state not in ('idle') or exists (
        select 1 from pg_locks l where l.pid = a.pid and l.locktype = 'advisory' and l.granted))
    order by a.pid`);
  return rows.map((row) =>
    Object.entries(row)
      .filter(([, value]) => value !== null && value !== '')
      .map(([name, value]) => `${name}=${value}`)
      .join(' '),
  );
}

/** Reads a PostgreSQL ledger. */
export function readPostgresLedger(databaseUrl: string): LedgerReader {
  return readerOf(openPostgres({ url: databaseUrl, poolSize: 2 }));
}

/** Reads an embedded ledger: only once no server has the directory open. */
export async function readEmbeddedLedger(dataDir: string): Promise<LedgerReader> {
  return readerOf(await openPglite(dataDir));
}
