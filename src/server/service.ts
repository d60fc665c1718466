/**
 * Wires the service together and runs it: database (migrated), ledger, application layer, background jobs
 * and the HTTP server. Used by main.ts and by the tests, which start real servers in-process.
 */
import { setMaxListeners } from 'node:events';
import { Code, ConnectError } from '@connectrpc/connect';
import type { FastifyInstance } from 'fastify';
import { PaymentsApp } from '../app/payments-app.js';
import { SettlementsApp } from '../app/settlements-app.js';
import { API_KEY_REVOKED_CHANNEL } from '../auth/api-keys.js';
import type { DevKeyPair } from '../auth/dev-keys.js';
import { setUpAuthentication } from '../auth/setup.js';
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
import { buildServer, listenerOf } from './app.js';
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
  jobs: { keyReaper: Periodic; holdSweeper: Periodic; settlement: Periodic };
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

export async function startService(config: Config, options: ServiceOptions = {}): Promise<RunningService> {
  // Logged where it happens, at most once per interval: an exhausted pool under load is one line, not thousands.
  let logPoolWaitTimeout = () => {};
  const database = await openDatabase(config, () => logPoolWaitTimeout());
  const ledger = new Ledger(database.db, {
    idempotencyRetentionMs: config.idempotencyRetentionMs,
    maxPaymentMinor: maxPaymentMinorFor(config.maxPaymentMajorUnits),
    maxDepositMinor: maxPaymentMinorFor(config.maxDepositMajorUnits),
  });
  const batcher = new CommandBatcher(ledger, {
    ...config.batch,
    // Embedded PGlite has one connection: a second transaction would only queue behind the first.
    maxBatchesInFlight: database.kind === 'pglite' ? 1 : config.batch.maxBatchesInFlight,
  });
  const app = new PaymentsApp(database.db, batcher, config.holds, config.watch, (error) =>
    fastify.log.warn({ err: error }, 'watch poll failed; retrying at the next tick'),
  );
  const { authenticator, devKeyPair, apiKeyCache } = await setUpAuthentication(config, database.db);
  // Revocations on any replica clear this one's cache at once; while not listening, the cache is bypassed.
  const stopListening = await database.listen(
    API_KEY_REVOKED_CHANNEL,
    () => apiKeyCache.clear(),
    (listening) => apiKeyCache.setListening(listening),
  );
  const settlementsApp = new SettlementsApp(database.db);
  const health = new HealthStatusBoard();
  // Probes may ask about one service by name as well as about the server as a whole ("").
  for (const service of LEDGER_SERVICES) {
    health.set(service.typeName, ServingStatus.SERVING);
  }
  const shutdown = new AbortController();
  // Every in-flight request listens on this signal; Node's default cap of 10 listeners would warn under load.
  setMaxListeners(0, shutdown.signal);
  const rateLimitRedis =
    config.rateLimit.enabled && config.redisUrl
      ? createRateLimitRedis(config.redisUrl, config.rateLimit.redisTimeoutMs)
      : undefined;
  // Bounded: a missing Redis delays the start by at most a moment and the limiter serves from memory.
  if (rateLimitRedis) await waitForRedis(rateLimitRedis);
  const fastify = await buildServer({
    config,
    database,
    app,
    settlementsApp,
    health,
    shutdownSignal: shutdown.signal,
    outboxStatus: () => outbox.status(),
    rateLimitRedis,
    authenticator,
    logStream: options.logStream,
  });
  const log = fastify.log;
  if (config.ledgerCheckOnStart) {
    try {
      await checkLedgerAtStart(database.db, config.allowUnbalancedLedger, log);
    } catch (error) {
      await fastify.close();
      rateLimitRedis?.disconnect();
      await database.close();
      throw error;
    }
  }
  let lastPoolLogMs = Number.NEGATIVE_INFINITY;
  logPoolWaitTimeout = () => {
    if (Date.now() - lastPoolLogMs < POOL_LOG_INTERVAL_MS) return;
    lastPoolLogMs = Date.now();
    log.warn(
      { poolWaitTimeouts: database.poolWaitTimeouts(), poolSize: config.dbPoolSize },
      'requests waited too long for a database connection and were answered UNAVAILABLE',
    );
  };
  const jobs = {
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

  const outbox = createOutboxPublisher(config, database, log.child({ component: 'outbox' }));

  const observability = await startObservability(config, () => outbox.status());
  await fastify.listen({
    host: config.host,
    port: config.port,
    // Fastify only knows its own https option; with TLS our listener serves https:// (h2 and HTTP/1.1).
    listenTextResolver: (address) =>
      `Server listening at ${config.tls ? address.replace(/^http:/, 'https:') : address}`,
  });
  outbox.start();
  const address = fastify.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const hostForUrl = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `${config.tls ? 'https' : 'http'}://${hostForUrl}:${port}`;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      health.close();
      // Open watch streams would otherwise keep the server busy for the whole grace period.
      app.closeWatches();
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
        await Promise.all(Object.values(jobs).map((job) => job.stop()));
        // Finishes or abandons its in-flight batch (never lost: unmarked rows stay unpublished), releases the
        // advisory lock and disconnects the producer.
        await outbox.stop();
        rateLimitRedis?.disconnect();
        await stopListening();
        await observability.close();
        await database.close();
      }
    })();
    return closing;
  };

  const { metricsUrl } = observability;
  return { fastify, database, app, ledger, batcher, jobs, outbox, devKeyPair, metricsUrl, url, port, close };
}
