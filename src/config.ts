/**
 * Configuration is read from the environment once, at start, and validated here; a bad value stops the
 * server with a message naming the variable. Nothing else reads process.env.
 */
import { isIP } from 'node:net';

export interface TlsConfig {
  certFile: string;
  keyFile: string;
}

export type KafkaSaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

/** The outbox publisher's broker connection; unset KAFKA_BROKERS = events go to the log (src/outbox/). */
export interface KafkaConfig {
  brokers: string[];
  clientId: string;
  ssl: boolean;
  sasl: { mechanism: KafkaSaslMechanism; username: string; password: string } | undefined;
}

export interface OutboxConfig {
  /** Topic per event family; which aggregate goes where is src/outbox/routing.ts. */
  topics: { accounts: string; payments: string };
  batchSize: number;
  /** Fallback when no NOTIFY arrives (and the only trigger on the embedded database). */
  pollIntervalMs: number;
  /** How often a standby replica tries to become the publisher: the bound on a takeover. */
  leaderRetryMs: number;
  /** Cap of the exponential backoff between failed publish attempts. */
  retryMaxMs: number;
  /** A row failing this many times is reported with a warning (and still retried, never skipped). */
  warnAfterAttempts: number;
  /** The oldest unpublished event older than this is logged as lag. */
  lagWarnMs: number;
  /** Published rows are deleted after this long. */
  retentionMs: number;
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
  /** MANUAL payments' holds: default length and the bounds a request may choose within. */
  holds: { defaultMs: number; minMs: number; maxMs: number; sweepIntervalMs: number };
  /** Scheduled settlement runs; 0 = only on demand (SettlementService.RunSettlement). */
  settlementIntervalMs: number;
  kafka: KafkaConfig | undefined;
  outbox: OutboxConfig;
  /** redis://… for the shared rate-limit buckets; unset = per-process in-memory buckets. */
  redisUrl: string | undefined;
  /** Peers (IPs or CIDRs) whose X-Forwarded-For is believed when finding a client's address. */
  trustedProxies: string[];
  rateLimit: RateLimitConfig;
}

export interface RateLimitBucketConfig {
  capacity: number;
  /** May be fractional; 0 = never refills (for tests and emergencies). */
  refillPerSecond: number;
}

/** Token buckets per client, one policy for money-moving RPCs and one for everything else (src/ratelimit/). */
export interface RateLimitConfig {
  enabled: boolean;
  writes: RateLimitBucketConfig;
  reads: RateLimitBucketConfig;
  redisTimeoutMs: number;
  keyPrefix: string;
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

const SASL_MECHANISMS: readonly KafkaSaslMechanism[] = ['plain', 'scram-sha-256', 'scram-sha-512'];
// Kafka's own rules for topic names and (by convention) client ids.
const KAFKA_NAME = /^[A-Za-z0-9._-]{1,249}$/;

function readKafkaName(env: Env, name: string, fallback: string): string {
  const raw = env[name] || fallback;
  if (!KAFKA_NAME.test(raw)) throw new ConfigError(name, `must be 1-249 of A-Z a-z 0-9 . _ -, got "${raw}"`);
  return raw;
}

function readKafka(env: Env): KafkaConfig | undefined {
  const raw = env.KAFKA_BROKERS;
  if (raw === undefined || raw.trim() === '') {
    for (const name of ['KAFKA_SASL_MECHANISM', 'KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD']) {
      if (env[name]) throw new ConfigError('KAFKA_BROKERS', `must be set when ${name} is`);
    }
    return undefined;
  }
  const brokers = raw
    .split(',')
    .map((broker) => broker.trim())
    .filter((broker) => broker !== '');
  for (const broker of brokers) {
    const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(broker);
    const port = Number(match?.[2]);
    if (!match || port < 1 || port > 65535) {
      throw new ConfigError('KAFKA_BROKERS', `must be a comma list of host:port, got "${broker}"`);
    }
  }
  const mechanism = env.KAFKA_SASL_MECHANISM || undefined;
  let sasl: KafkaConfig['sasl'];
  if (mechanism !== undefined) {
    if (!(SASL_MECHANISMS as readonly string[]).includes(mechanism)) {
      throw new ConfigError('KAFKA_SASL_MECHANISM', `must be one of ${SASL_MECHANISMS.join(', ')}, got "${mechanism}"`);
    }
    const username = env.KAFKA_SASL_USERNAME || undefined;
    const password = env.KAFKA_SASL_PASSWORD || undefined;
    if (!username) throw new ConfigError('KAFKA_SASL_USERNAME', 'must be set when KAFKA_SASL_MECHANISM is');
    if (!password) throw new ConfigError('KAFKA_SASL_PASSWORD', 'must be set when KAFKA_SASL_MECHANISM is');
    sasl = { mechanism: mechanism as KafkaSaslMechanism, username, password };
  } else if (env.KAFKA_SASL_USERNAME || env.KAFKA_SASL_PASSWORD) {
    throw new ConfigError('KAFKA_SASL_MECHANISM', 'must be set when KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is');
  }
  return {
    brokers,
    clientId: readKafkaName(env, 'KAFKA_CLIENT_ID', 'payment-ledger'),
    ssl: readBool(env, 'KAFKA_SSL', false),
    sasl,
  };
}

function readOutbox(env: Env): OutboxConfig {
  return {
    topics: {
      accounts: readKafkaName(env, 'KAFKA_TOPIC_ACCOUNTS', 'payment.events.v1.accounts'),
      payments: readKafkaName(env, 'KAFKA_TOPIC_PAYMENTS', 'payment.events.v1.payments'),
    },
    batchSize: readInt(env, 'OUTBOX_BATCH_SIZE', 500, 1, 10_000),
    pollIntervalMs: readInt(env, 'OUTBOX_POLL_INTERVAL_MS', 1_000, 10, 600_000),
    leaderRetryMs: readInt(env, 'OUTBOX_LEADER_RETRY_MS', 5_000, 10, 600_000),
    retryMaxMs: readInt(env, 'OUTBOX_RETRY_MAX_MS', 30_000, 10, 3_600_000),
    warnAfterAttempts: readInt(env, 'OUTBOX_WARN_AFTER_ATTEMPTS', 5, 1, 1_000_000),
    lagWarnMs: readInt(env, 'OUTBOX_LAG_WARN_MS', 60_000, 1, 86_400_000),
    retentionMs: readInt(env, 'OUTBOX_RETENTION_HOURS', 72, 1, 24 * 365) * 3_600_000,
  };
}

const DAY_SECONDS = 86_400;

function readHolds(env: Env): Config['holds'] {
  const minSeconds = readInt(env, 'HOLD_MIN_SECONDS', 60, 1, 365 * DAY_SECONDS);
  const maxSeconds = readInt(env, 'HOLD_MAX_SECONDS', 30 * DAY_SECONDS, 1, 365 * DAY_SECONDS);
  if (maxSeconds < minSeconds)
    throw new ConfigError('HOLD_MAX_SECONDS', `must be at least HOLD_MIN_SECONDS (${minSeconds})`);
  const defaultSeconds = readInt(env, 'HOLD_DEFAULT_SECONDS', 7 * DAY_SECONDS, 1, 365 * DAY_SECONDS);
  if (defaultSeconds < minSeconds || defaultSeconds > maxSeconds) {
    throw new ConfigError('HOLD_DEFAULT_SECONDS', `must lie between HOLD_MIN_SECONDS and HOLD_MAX_SECONDS`);
  }
  return {
    defaultMs: defaultSeconds * 1000,
    minMs: minSeconds * 1000,
    maxMs: maxSeconds * 1000,
    sweepIntervalMs: readInt(env, 'HOLD_SWEEP_INTERVAL_SECONDS', 30, 1, DAY_SECONDS) * 1000,
  };
}

function readRate(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+(\.\d+)?$/.test(raw)) throw new ConfigError(name, `must be a number ≥ 0 like 10 or 0.5, got "${raw}"`);
  const value = Number(raw);
  if (value > 1_000_000) throw new ConfigError(name, `must be at most 1000000, got ${value}`);
  return value;
}

function readRedisUrl(env: Env): string | undefined {
  const raw = env.REDIS_URL;
  if (raw === undefined || raw === '') return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError('REDIS_URL', 'is not a URL (expected redis://host:6379)');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError('REDIS_URL', `must start with redis:// or rediss://, got "${url.protocol}//"`);
  }
  return raw;
}

function readTrustedProxies(env: Env): string[] {
  const raw = env.TRUSTED_PROXIES;
  if (!raw) return [];
  return raw
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry) => {
      const [address = '', prefix, extra] = entry.split('/');
      const family = isIP(address);
      const maxPrefix = family === 6 ? 128 : 32;
      const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= maxPrefix);
      if (family === 0 || !prefixOk || extra !== undefined) {
        throw new ConfigError('TRUSTED_PROXIES', `has "${entry}", which is not an IP address or CIDR block`);
      }
      return entry;
    });
}

function readRateLimit(env: Env): RateLimitConfig {
  const keyPrefix = env.RATE_LIMIT_KEY_PREFIX ?? 'ratelimit:';
  if (keyPrefix.length > 100) throw new ConfigError('RATE_LIMIT_KEY_PREFIX', 'must be at most 100 characters');
  return {
    enabled: readBool(env, 'RATE_LIMIT_ENABLED', true),
    writes: {
      capacity: readInt(env, 'RATE_LIMIT_WRITE_CAPACITY', 20, 1, 1_000_000),
      refillPerSecond: readRate(env, 'RATE_LIMIT_WRITE_REFILL_PER_SECOND', 10),
    },
    reads: {
      capacity: readInt(env, 'RATE_LIMIT_READ_CAPACITY', 100, 1, 1_000_000),
      refillPerSecond: readRate(env, 'RATE_LIMIT_READ_REFILL_PER_SECOND', 50),
    },
    redisTimeoutMs: readInt(env, 'RATE_LIMIT_REDIS_TIMEOUT_MS', 50, 1, 10_000),
    keyPrefix,
  };
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
    holds: readHolds(env),
    settlementIntervalMs: readInt(env, 'SETTLEMENT_INTERVAL_SECONDS', 3_600, 0, 7 * 86_400) * 1000,
    kafka: readKafka(env),
    outbox: readOutbox(env),
    redisUrl: readRedisUrl(env),
    trustedProxies: readTrustedProxies(env),
    rateLimit: readRateLimit(env),
  };
}
