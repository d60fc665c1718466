/**
 * Configuration is read from the environment once, at start, and validated here; a bad value stops the
 * server with a message naming the variable. Nothing else reads process.env.
 */
export interface TlsConfig {
  certFile: string;
  keyFile: string;
}

export interface Config {
  host: string;
  port: number;
  /** Unset: embedded PGlite in dataDir. */
  databaseUrl: string | undefined;
  dataDir: string;
  dbPoolSize: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  tls: TlsConfig | undefined;
  corsOrigins: string[];
  /** Largest single payment, in major units of its currency (scaled by each currency's exponent). */
  maxPaymentMajorUnits: bigint;
  idempotencyRetentionMs: number;
  idempotencyReapIntervalMs: number;
  shutdownGraceMs: number;
  requestBodyMaxBytes: number;
  /** Create demo accounts on first start (embedded mode only by default). */
  seedDemoData: boolean;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`invalid configuration: ${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function readInt(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function readBool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

function readDatabaseUrl(env: Env): string | undefined {
  const raw = env.DATABASE_URL;
  if (raw === undefined || raw === '') return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError('DATABASE_URL', 'is not a URL (expected postgres://user@host:port/database)');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError('DATABASE_URL', `must start with postgres:// or postgresql://, got "${url.protocol}//"`);
  }
  return raw;
}

function readTls(env: Env): TlsConfig | undefined {
  const certFile = env.TLS_CERT_FILE || undefined;
  const keyFile = env.TLS_KEY_FILE || undefined;
  if (!certFile && !keyFile) return undefined;
  if (!certFile) throw new ConfigError('TLS_CERT_FILE', 'must be set when TLS_KEY_FILE is');
  if (!keyFile) throw new ConfigError('TLS_KEY_FILE', 'must be set when TLS_CERT_FILE is');
  return { certFile, keyFile };
}

function readOrigins(env: Env): string[] {
  const raw = env.CORS_ORIGINS;
  if (!raw) return [];
  return raw
    .split(',')
    .map((origin) => origin.trim())
    .filter((origin) => origin !== '')
    .map((origin) => {
      if (origin === '*') return origin;
      try {
        return new URL(origin).origin;
      } catch {
        throw new ConfigError('CORS_ORIGINS', `has "${origin}", which is not an origin like https://wallet.example`);
      }
    });
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function loadConfig(env: Env = process.env): Config {
  const logLevel = env.LOG_LEVEL || 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const databaseUrl = readDatabaseUrl(env);
  const host = env.HOST || '127.0.0.1';
  return {
    host,
    port: readInt(env, 'PORT', 8080, 0, 65535),
    databaseUrl,
    dataDir: env.DATA_DIR || '.data/pglite',
    dbPoolSize: readInt(env, 'DB_POOL_SIZE', 8, 1, 200),
    logLevel: logLevel as Config['logLevel'],
    tls: readTls(env),
    corsOrigins: readOrigins(env),
    maxPaymentMajorUnits: BigInt(readInt(env, 'MAX_PAYMENT_MAJOR_UNITS', 1_000_000, 1, 1_000_000_000)),
    idempotencyRetentionMs: readInt(env, 'IDEMPOTENCY_RETENTION_HOURS', 24, 1, 24 * 365) * 3_600_000,
    idempotencyReapIntervalMs: readInt(env, 'IDEMPOTENCY_REAP_INTERVAL_SECONDS', 300, 1, 86_400) * 1000,
    shutdownGraceMs: readInt(env, 'SHUTDOWN_GRACE_MS', 10_000, 0, 600_000),
    requestBodyMaxBytes: readInt(env, 'REQUEST_BODY_MAX_BYTES', 64 * 1024, 1024, 16 * 1024 * 1024),
    seedDemoData: readBool(env, 'SEED_DEMO_DATA', databaseUrl === undefined),
  };
}
