/**
 * Where the ledger's data lives: all that `db:migrate`, `apikey` and `ledger:check` need, so that they run
 * without the server's other settings (JWT keys, TLS, Kafka…).
 */
import { ConfigError, collectConfigErrors, type Env, readInt, readUrl } from './env.js';

export interface DatabaseSettings {
  /** Unset: embedded PGlite in dataDir. */
  databaseUrl: string | undefined;
  dataDir: string;
  dbPoolSize: number;
}

export function readDatabaseUrl(env: Env): string | undefined {
  return readUrl(env, 'DATABASE_URL', ['postgres:', 'postgresql:'], 'postgres://user@host:port/database');
}

/** DATABASE_URL, DATA_DIR and DB_POOL_SIZE; every bad one reported at once (ConfigErrors). */
export function loadDatabaseSettings(env: Env = process.env): DatabaseSettings {
  return collectConfigErrors(() => ({
    databaseUrl: readDatabaseUrl(env),
    dataDir: env.DATA_DIR || '.data/pglite',
    dbPoolSize: readInt(env, 'DB_POOL_SIZE', 8, 1, 200),
  }));
}

/** Where a database error of `url` came from, for a message that names DATABASE_URL but not the password. */
export function describeDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`;
  } catch {
    return 'the configured server';
  }
}

const REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'refused the connection (is PostgreSQL running there?)',
  ENOTFOUND: 'names a host that does not resolve',
  EAI_AGAIN: 'names a host that does not resolve',
  ETIMEDOUT: 'did not answer in time',
  '28P01': 'was refused: wrong user or password',
  '28000': 'was refused by the server (pg_hba.conf or role)',
  '3D000': 'names a database that does not exist (createdb it first)',
};

/**
 * A failure to reach or log in to DATABASE_URL as a ConfigError naming the variable (never its password);
 * anything else is returned unchanged.
 */
export function explainDatabaseError(settings: DatabaseSettings, error: unknown): unknown {
  if (!settings.databaseUrl) return error;
  const code = (error as { code?: unknown } | undefined)?.code;
  const reason = typeof code === 'string' ? REASONS[code] : undefined;
  if (!reason) return error;
  return new ConfigError('DATABASE_URL', `(${describeDatabaseUrl(settings.databaseUrl)}) ${reason}`);
}
