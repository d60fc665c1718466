/**
 * Configuration is read from the environment once, at start, and validated here; a bad value stops the
 * server with a message naming the variable. Nothing else reads process.env.
 */
import { readDatabaseUrl } from './config/database.js';
import {
  ConfigError,
  collectConfigErrors,
  collecting,
  type Env,
  readBool,
  readInt,
  reportConfigError,
} from './config/env.js';
import type { KafkaConfig, OutboxConfig } from './config/kafka.js';
import * as kafkaSettings from './config/kafka.js';
import { type KeepaliveConfig, readKeepalive } from './config/keepalive.js';
import { type BatchConfig, readApiKeyCacheTtlMs, readBatch, readPoolWaitMs } from './config/ledger.js';
import type { ObservabilityConfig } from './config/observability.js';
import * as observabilitySettings from './config/observability.js';
import type { RateLimitConfig } from './config/rate-limit.js';
import * as rateLimitSettings from './config/rate-limit.js';
import type { AuthConfig, RequestLimits, TlsConfig } from './config/security.js';
import * as securitySettings from './config/security.js';
import { readWatch, type WatchConfig } from './config/watch.js';

export { ConfigError, ConfigErrors } from './config/env.js';
export type { KafkaConfig, KafkaSaslMechanism, OutboxConfig } from './config/kafka.js';
export type { BatchConfig } from './config/ledger.js';
export type { ObservabilityConfig } from './config/observability.js';
export type { RateLimitBucketConfig, RateLimitConfig } from './config/rate-limit.js';
export type { AuthConfig, RequestLimits, TlsConfig } from './config/security.js';

// Each section's problems are collected, so that one start reports every bad setting (see loadConfig).
const readKafka = collecting(kafkaSettings.readKafka);
const readOutbox = collecting(kafkaSettings.readOutbox);
const readObservability = collecting(observabilitySettings.readObservability);
const readRateLimit = collecting(rateLimitSettings.readRateLimit);
const readRedisUrl = collecting(rateLimitSettings.readRedisUrl);
const readTrustedProxies = collecting(rateLimitSettings.readTrustedProxies);
const readAuth = collecting(securitySettings.readAuth);
const readLimits = collecting(securitySettings.readLimits);
const readTls = collecting(securitySettings.readTls);

export interface Config {
  host: string;
  port: number;
  /** Unset: embedded PGlite in dataDir. */
  databaseUrl: string | undefined;
  dataDir: string;
  dbPoolSize: number;
  /**
   * Run the ledger check before serving (LEDGER_CHECK_ON_START; default on in embedded mode, off with
   * PostgreSQL, where it scans every entry on every replica's start: run `npm run ledger:check` instead).
   */
  ledgerCheckOnStart: boolean;
  /** Serve even though the start-up check failed (ALLOW_UNBALANCED_LEDGER), logging every violation. */
  allowUnbalancedLedger: boolean;
  /** How long a request waits for a pool connection before answering UNAVAILABLE. */
  dbPoolWaitMs: number;
  /** Group commit of ledger commands. */
  batch: BatchConfig;
  /** How long a verified API key is cached; 0 = never cached. Revocation clears every replica's cache at once. */
  apiKeyCacheTtlMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  tls: TlsConfig | undefined;
  corsOrigins: string[];
  /** Largest single payment, in major units of its currency (scaled by each currency's exponent). */
  maxPaymentMajorUnits: bigint;
  /** The largest single deposit, in major units of its currency. */
  maxDepositMajorUnits: bigint;
  idempotencyRetentionMs: number;
  idempotencyReapIntervalMs: number;
  shutdownGraceMs: number;
  requestBodyMaxBytes: number;
  /** Create demo accounts on first start (embedded mode only by default). */
  seedDemoData: boolean;
  /** Serve the built browser wallet at /wallet/ (embedded mode only by default). */
  serveWallet: boolean;
  /** MANUAL payments' holds: default length and the bounds a request may choose within. */
  holds: { defaultMs: number; minMs: number; maxMs: number; sweepIntervalMs: number };
  /** Scheduled settlement runs; 0 = only on demand (SettlementService.RunSettlement). */
  settlementIntervalMs: number;
  /** WatchAccount streams: bounds and poll interval. */
  watch: WatchConfig;
  kafka: KafkaConfig | undefined;
  outbox: OutboxConfig;
  /** redis://… for the shared rate-limit buckets; unset = per-process in-memory buckets. */
  redisUrl: string | undefined;
  /** Peers (IPs or CIDRs) whose X-Forwarded-For is believed when finding a client's address. */
  trustedProxies: string[];
  rateLimit: RateLimitConfig;
  auth: AuthConfig;
  limits: RequestLimits;
  /** HTTP/2 idle timeout and ping policy. */
  keepalive: KeepaliveConfig;
  /** Metrics, tracing and access log. */
  observability: ObservabilityConfig;
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
        reportConfigError(
          new ConfigError('CORS_ORIGINS', `has "${origin}", which is not an origin like https://wallet.example`),
        );
        return origin;
      }
    });
}

const DAY_SECONDS = 86_400;

function readHolds(env: Env): Config['holds'] {
  const minSeconds = readInt(env, 'HOLD_MIN_SECONDS', 60, 1, 365 * DAY_SECONDS);
  const maxSeconds = readInt(env, 'HOLD_MAX_SECONDS', 30 * DAY_SECONDS, 1, 365 * DAY_SECONDS);
  if (maxSeconds < minSeconds) {
    reportConfigError(new ConfigError('HOLD_MAX_SECONDS', `must be at least HOLD_MIN_SECONDS (${minSeconds})`));
  }
  const defaultSeconds = readInt(env, 'HOLD_DEFAULT_SECONDS', 7 * DAY_SECONDS, 1, 365 * DAY_SECONDS);
  if (defaultSeconds < minSeconds || defaultSeconds > maxSeconds) {
    reportConfigError(
      new ConfigError('HOLD_DEFAULT_SECONDS', `must lie between HOLD_MIN_SECONDS and HOLD_MAX_SECONDS`),
    );
  }
  return {
    defaultMs: defaultSeconds * 1000,
    minMs: minSeconds * 1000,
    maxMs: maxSeconds * 1000,
    sweepIntervalMs: readInt(env, 'HOLD_SWEEP_INTERVAL_SECONDS', 30, 1, DAY_SECONDS) * 1000,
  };
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * The server's whole configuration. Every bad or missing setting is reported at once, in one ConfigErrors
 * (a ConfigError) whose message has a line per problem, each naming its variable.
 */
export function loadConfig(env: Env = process.env): Config {
  return collectConfigErrors(() => checkPorts(readConfig(env)));
}

/** Two listeners on one port would fail at start as "PORT is in use", naming the wrong setting. */
function checkPorts(config: Config): Config {
  const metricsPort = config.observability.metrics.port;
  if (metricsPort !== undefined && metricsPort !== 0 && metricsPort === config.port) {
    reportConfigError(new ConfigError('METRICS_PORT', `must differ from PORT (both ${config.port})`));
  }
  return config;
}

function readConfig(env: Env): Config {
  let logLevel = env.LOG_LEVEL || 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    reportConfigError(new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`));
    logLevel = 'info';
  }
  const databaseUrl = readDatabaseUrl(env);
  const host = env.HOST || '127.0.0.1';
  const dbPoolSize = readInt(env, 'DB_POOL_SIZE', 8, 1, 200);
  return {
    host,
    port: readInt(env, 'PORT', 8080, 0, 65535),
    databaseUrl,
    dataDir: env.DATA_DIR || '.data/pglite',
    dbPoolSize,
    dbPoolWaitMs: readPoolWaitMs(env),
    batch: readBatch(env, dbPoolSize),
    apiKeyCacheTtlMs: readApiKeyCacheTtlMs(env),
    ledgerCheckOnStart: readBool(env, 'LEDGER_CHECK_ON_START', databaseUrl === undefined),
    allowUnbalancedLedger: readBool(env, 'ALLOW_UNBALANCED_LEDGER', false),
    logLevel: logLevel as Config['logLevel'],
    tls: readTls(env),
    corsOrigins: readOrigins(env),
    maxPaymentMajorUnits: BigInt(readInt(env, 'MAX_PAYMENT_MAJOR_UNITS', 1_000_000, 1, 1_000_000_000)),
    // At most 10^9 major units (10^13 minor units for 4-decimal currencies), far below the 2^62 per currency.
    maxDepositMajorUnits: BigInt(readInt(env, 'MAX_DEPOSIT_MAJOR_UNITS', 1_000_000, 1, 1_000_000_000)),
    idempotencyRetentionMs: readInt(env, 'IDEMPOTENCY_RETENTION_HOURS', 24, 1, 24 * 365) * 3_600_000,
    idempotencyReapIntervalMs: readInt(env, 'IDEMPOTENCY_REAP_INTERVAL_SECONDS', 300, 1, 86_400) * 1000,
    shutdownGraceMs: readInt(env, 'SHUTDOWN_GRACE_MS', 10_000, 0, 600_000),
    requestBodyMaxBytes: readInt(env, 'REQUEST_BODY_MAX_BYTES', 64 * 1024, 1024, 16 * 1024 * 1024),
    seedDemoData: readBool(env, 'SEED_DEMO_DATA', databaseUrl === undefined),
    serveWallet: readBool(env, 'SERVE_WALLET', databaseUrl === undefined),
    holds: readHolds(env),
    watch: readWatch(env),
    settlementIntervalMs: readInt(env, 'SETTLEMENT_INTERVAL_SECONDS', 3_600, 0, 7 * 86_400) * 1000,
    kafka: readKafka(env),
    outbox: readOutbox(env),
    redisUrl: readRedisUrl(env),
    trustedProxies: readTrustedProxies(env),
    rateLimit: readRateLimit(env),
    auth: readAuth(env, databaseUrl === undefined),
    limits: readLimits(env),
    keepalive: readKeepalive(env),
    observability: readObservability(env, databaseUrl === undefined),
  };
}
