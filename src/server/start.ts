/**
 * Wires the service together and runs it: database (migrated), ledger, application layer, background jobs
 * and the HTTP server. Used by main.ts and by the tests, which start real servers in-process.
 */
import { setMaxListeners } from 'node:events';
import { Code, ConnectError } from '@connectrpc/connect';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { PaymentsApp } from '../app/payments-app.js';
import { SettlementsApp } from '../app/settlements-app.js';
import { API_KEY_REVOKED_CHANNEL } from '../auth/api-keys.js';
import type { DevKeyPair } from '../auth/dev-keys.js';
import { setUpAuthentication } from '../auth/setup.js';
import { explainListenError } from '../config/listen.js';
import type { Config } from '../config.js';
import { LEDGER_SERVICES } from '../contract.js';
import { type Database, openDatabase } from '../db/client.js';
import { maxPaymentMinorFor } from '../domain/currency.js';
import { HealthStatusBoard, ServingStatus } from '../grpc/health.js';
import { Ledger } from '../ledger/apply.js';
import { CommandBatcher } from '../ledger/batcher.js';
import { sweepExpiredHolds } from '../ledger/hold-sweeper.js';
import { reapOnce } from '../ledger/key-reaper.js';
import { runSettlement } from '../ledger/settlement.js';
import { startObservability } from '../observability/setup.js';
import { createOutboxPublisher, type OutboxPublisher } from '../outbox/index.js';
import { createRateLimitRedis, waitForRedis } from '../ratelimit/redis-client.js';
import { startDatabaseHealth } from './database-health.js';
import { buildHttpServer, listenerOf } from './http-server.js';
import { type Periodic, startPeriodic } from './periodic.js';
import { checkLedgerAtStart } from './startup-check.js';

export interface RunningService {
  fastify: FastifyInstance;
  database: Database;
  app: PaymentsApp;
  ledger: Ledger;
  /** Group commit in front of the ledger: the app's command runner. */
  batcher: CommandBatcher;
  /** Background jobs, exposed so that tests and tools can run one now. */
  jobs: { keyReaper: Periodic; holdSweeper: Periodic; settlement: Periodic; databaseHealth: Periodic };
  /** Publishes the transactional outbox (to Kafka, or to the log without KAFKA_BROKERS). */
  outbox: OutboxPublisher;
  /** The embedded mode's development signing key, for the demo users' tokens; undefined otherwise. */
  devKeyPair: DevKeyPair | undefined;
  /** http://host:port/metrics when METRICS_PORT gives metrics a listener of their own. */
  metricsUrl: string | undefined;
  /** http://host:port (https:// with TLS). */
  url: string;
  port: number;
  /** Stops accepting, lets in-flight requests finish within the grace period, then releases everything. */
  close(): Promise<void>;
}

const POOL_LOG_INTERVAL_MS = 10_000;

export interface ServiceOptions {
  /** Where log lines go instead of stdout (tests read them). */
  logStream?: { write(line: string): void };
}

/**
 * Opens the database, wires ledger, application layer and authentication, builds the server, runs the
 * optional ledger check, starts the jobs, listens (config.port 0: any free port) and starts the outbox.
 * A refusal of the start-up ledger check closes what was opened and is rethrown; other steps' errors propagate.
 */
// long: the composition root; each step is a line or two that needs the ones before, and their order is the point.
export async function startService(config: Config, options: ServiceOptions = {}): Promise<RunningService> {
  // Logged where it happens, at most once per interval: an exhausted pool under load is one line, not thousands.
  let logPoolWaitTimeout = () => {};
  const database = await openDatabase(config, () => logPoolWaitTimeout());
  const { ledger, batcher } = openLedger(config, database);
  const app = new PaymentsApp(database.db, batcher, config.holds, config.watch, (error) =>
    fastify.log.warn({ err: error }, 'watch poll failed; retrying at the next tick'),
  );
  const { authenticator, devKeyPair, stopListening } = await startAuthentication(config, database);
  const health = servingHealthBoard();
  const shutdown = new AbortController();
  // Every in-flight request listens on this signal; Node's default cap of 10 listeners would warn under load.
  setMaxListeners(0, shutdown.signal);
  const rateLimitRedis = await connectRateLimitRedis(config);
  const fastify = await buildHttpServer({
    config,
    database,
    app,
    settlementsApp: new SettlementsApp(database.db),
    health,
    shutdownSignal: shutdown.signal,
    outboxStatus: (statsTimeoutMs) => outbox.status(statsTimeoutMs),
    rateLimitRedis,
    authenticator,
    logStream: options.logStream,
  });
  const log = fastify.log;
  if (config.ledgerCheckOnStart) {
    await checkLedgerAtStart(database.db, config.allowUnbalancedLedger, log).catch(async (error: unknown) => {
      await fastify.close();
      rateLimitRedis?.disconnect();
      await database.close();
      throw error;
    });
  }
  logPoolWaitTimeout = poolWaitLogger(log, database, config.dbPoolSize);
  const jobs = Object.assign(startJobs(config, database, ledger, log), {
    databaseHealth: startDatabaseHealth(database, health, log),
  });

  const outbox = createOutboxPublisher(config, database, log.child({ component: 'outbox' }));

  const observability = await startObservability(config, () => outbox.status());
  const { url, port } = await listen(fastify, config);
  outbox.start();

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= shutDown({
      config,
      fastify,
      health,
      app,
      shutdown,
      jobs,
      outbox,
      rateLimitRedis,
      stopListening,
      observability,
      database,
    });
    return closing;
  };

  const { metricsUrl } = observability;
  return { fastify, database, app, ledger, batcher, jobs, outbox, devKeyPair, metricsUrl, url, port, close };
}

/** The ledger and the group-commit batcher in front of it (the app's command runner). */
function openLedger(config: Config, database: Database): { ledger: Ledger; batcher: CommandBatcher } {
  const ledger = new Ledger(database.db, {
    idempotencyRetentionMs: config.idempotencyRetentionMs,
    maxPaymentMinor: maxPaymentMinorFor(config.maxPaymentMajorUnits),
    maxDepositMinor: maxPaymentMinorFor(config.maxDepositMajorUnits),
  });
  const batcher = new CommandBatcher(
    ledger,
    Object.assign({}, config.batch, {
      // Embedded PGlite has one connection: a second transaction would only queue behind the first.
      maxBatchesInFlight: database.kind === 'pglite' ? 1 : config.batch.maxBatchesInFlight,
    }),
  );
  return { ledger, batcher };
}

/** Redis for shared rate-limit buckets, when the limiter is on and REDIS_URL is set; undefined otherwise. */
async function connectRateLimitRedis(config: Config): Promise<Redis | undefined> {
  if (!config.rateLimit.enabled || !config.redisUrl) return undefined;
  const redis = createRateLimitRedis(config.redisUrl, config.rateLimit.redisTimeoutMs);
  // Bounded: a missing Redis delays the start by at most a moment and the limiter serves from memory.
  await waitForRedis(redis);
  return redis;
}

/** The authenticator, with its API key cache kept current by revocation notices from every replica. */
async function startAuthentication(config: Config, database: Database) {
  const { authenticator, devKeyPair, apiKeyCache } = await setUpAuthentication(config, database.db);
  // Revocations on any replica clear this one's cache at once; while not listening, the cache is bypassed.
  const stopListening = await database.listen(
    API_KEY_REVOKED_CHANNEL,
    () => apiKeyCache.clear(),
    (listening) => apiKeyCache.setListening(listening),
  );
  return { authenticator, devKeyPair, stopListening };
}

/** Probes may ask about one service by name as well as about the server as a whole (""). */
function servingHealthBoard(): HealthStatusBoard {
  const health = new HealthStatusBoard();
  for (const service of LEDGER_SERVICES) {
    health.set(service.typeName, ServingStatus.SERVING);
  }
  return health;
}

/** Logs pool wait timeouts where they happen, at most once per POOL_LOG_INTERVAL_MS. */
function poolWaitLogger(log: FastifyBaseLogger, database: Database, poolSize: number): () => void {
  let lastPoolLogMs = Number.NEGATIVE_INFINITY;
  return () => {
    if (Date.now() - lastPoolLogMs < POOL_LOG_INTERVAL_MS) return;
    lastPoolLogMs = Date.now();
    log.warn(
      { poolWaitTimeouts: database.poolWaitTimeouts(), poolSize },
      'requests waited too long for a database connection and were answered UNAVAILABLE',
    );
  };
}

/** The background jobs, each on its own interval from the configuration. */
function startJobs(
  config: Config,
  database: Database,
  ledger: Ledger,
  log: FastifyBaseLogger,
): Omit<RunningService['jobs'], 'databaseHealth'> {
  return {
    keyReaper: startPeriodic(
      'idempotency key reaper',
      config.idempotencyReapIntervalMs,
      async () => {
        const deleted = await reapOnce(database.db);
        if (deleted > 0) log.info({ deleted }, 'reaped expired idempotency keys');
      },
      log,
    ),
    holdSweeper: startPeriodic(
      'hold sweeper',
      config.holds.sweepIntervalMs,
      async () => {
        const expired = await sweepExpiredHolds(database.db, ledger);
        if (expired > 0) log.info({ expired }, 'expired holds released');
      },
      log,
    ),
    settlement: startPeriodic(
      'settlement run',
      config.settlementIntervalMs,
      async () => {
        const made = await runSettlement(database.db, { skipIfBusy: true });
        if (made && made.length > 0) log.info({ settlements: made.length }, 'scheduled settlement run completed');
      },
      log,
    ),
  };
}

/** Listens on config.host:port; returns the port actually bound (config.port may be 0) and the URL to use. */
async function listen(fastify: FastifyInstance, config: Config): Promise<{ url: string; port: number }> {
  await fastify
    .listen({
      host: config.host,
      port: config.port,
      // Fastify only knows its own https option; with TLS our listener serves https:// (h2 and HTTP/1.1).
      listenTextResolver: (address) =>
        `Server listening at ${config.tls ? address.replace(/^http:/, 'https:') : address}`,
    })
    .catch((error: unknown) => {
      throw explainListenError(error, config.host, config.port, 'PORT');
    });
  const address = fastify.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const hostForUrl = config.host.includes(':') ? `[${config.host}]` : config.host;
  return { url: `${config.tls ? 'https' : 'http'}://${hostForUrl}:${port}`, port };
}

interface ShutdownParts {
  config: Config;
  fastify: FastifyInstance;
  health: HealthStatusBoard;
  app: PaymentsApp;
  shutdown: AbortController;
  jobs: RunningService['jobs'];
  outbox: OutboxPublisher;
  rateLimitRedis: Redis | undefined;
  stopListening: () => Promise<void>;
  observability: { close(): Promise<void> };
  database: Database;
}

/**
 * Stops accepting, lets in-flight requests finish within config.shutdownGraceMs (then aborts them and cuts
 * every connection), then stops the jobs and the outbox and releases Redis, observability and the database.
 */
async function shutDown(parts: ShutdownParts): Promise<void> {
  const { config, fastify, shutdown, database } = parts;
  parts.health.close();
  // Open watch streams would otherwise keep the server busy for the whole grace period.
  parts.app.closeWatches();
  const listener = listenerOf(fastify);
  // Past the grace period, whatever is still open is cut so that shutdown is bounded.
  const deadline = setTimeout(() => {
    shutdown.abort(
      new ConnectError('the server is shutting down; retry with the same idempotency key', Code.Unavailable),
    );
    listener.destroyAllConnections();
  }, config.shutdownGraceMs);
  try {
    await fastify.close();
  } finally {
    clearTimeout(deadline);
    await Promise.all(Object.values(parts.jobs).map((job) => job.stop()));
    // Finishes or abandons its in-flight batch (never lost: unmarked rows stay unpublished), releases the
    // advisory lock and disconnects the producer.
    await parts.outbox.stop();
    parts.rateLimitRedis?.disconnect();
    await parts.stopListening();
    await parts.observability.close();
    await database.close();
  }
}
