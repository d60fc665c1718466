/**
 * Wires the service together and runs it: database (migrated), ledger, application layer, background jobs
 * and the HTTP server. Used by main.ts and by the tests, which start real servers in-process.
 */
import { setMaxListeners } from 'node:events';
import { Code, ConnectError } from '@connectrpc/connect';
import type { FastifyInstance } from 'fastify';
import { AccountService } from '../../gen/payment/v1/account_pb.js';
import { AdminService } from '../../gen/payment/v1/admin_pb.js';
import { PaymentService } from '../../gen/payment/v1/payment_pb.js';
import { SettlementService } from '../../gen/payment/v1/settlement_pb.js';
import { PaymentsApp } from '../app/payments-app.js';
import { SettlementsApp } from '../app/settlements-app.js';
import type { DevKeyPair } from '../auth/dev-keys.js';
import { setUpAuthentication } from '../auth/setup.js';
import type { Config } from '../config.js';
import { type Database, openPglite, openPostgres } from '../db/client.js';
import { minorUnitExponent } from '../domain/currency.js';
import { HealthStatusBoard, ServingStatus } from '../grpc/health.js';
import { Ledger } from '../ledger/apply.js';
import { sweepExpiredHolds } from '../ledger/hold-sweeper.js';
import { reapOnce } from '../ledger/key-reaper.js';
import { runSettlement } from '../ledger/settlement.js';
import { createOutboxPublisher, type OutboxPublisher } from '../outbox/index.js';
import { createRateLimitRedis, waitForRedis } from '../ratelimit/redis-client.js';
import { buildServer, listenerOf } from './app.js';
import { type Periodic, startPeriodic } from './periodic.js';

export interface RunningService {
  fastify: FastifyInstance;
  database: Database;
  app: PaymentsApp;
  ledger: Ledger;
  /** Background jobs, exposed so that tests and tools can run one now. */
  jobs: { keyReaper: Periodic; holdSweeper: Periodic; settlement: Periodic };
  /** Publishes the transactional outbox (to Kafka, or to the log without KAFKA_BROKERS). */
  outbox: OutboxPublisher;
  /** The embedded mode's development signing key, for the demo users' tokens; undefined otherwise. */
  devKeyPair: DevKeyPair | undefined;
  /** http://host:port (https:// with TLS). */
  url: string;
  port: number;
  /** Stops accepting, lets in-flight requests finish within the grace period, then releases everything. */
  close(): Promise<void>;
}

export function maxPaymentMinorFor(maxMajorUnits: bigint): (currency: string) => bigint {
  const cache = new Map<string, bigint>();
  return (currency) => {
    let max = cache.get(currency);
    if (max === undefined) {
      max = maxMajorUnits * 10n ** BigInt(minorUnitExponent(currency) ?? 2);
      cache.set(currency, max);
    }
    return max;
  };
}

export async function openDatabase(config: Config): Promise<Database> {
  const database = config.databaseUrl
    ? openPostgres({ url: config.databaseUrl, poolSize: config.dbPoolSize })
    : await openPglite(config.dataDir);
  await database.migrate();
  return database;
}

export async function startService(config: Config): Promise<RunningService> {
  const database = await openDatabase(config);
  const ledger = new Ledger(database.db, {
    idempotencyRetentionMs: config.idempotencyRetentionMs,
    maxPaymentMinor: maxPaymentMinorFor(config.maxPaymentMajorUnits),
  });
  const app = new PaymentsApp(database.db, ledger, config.holds, config.watch, (error) =>
    fastify.log.warn({ err: error }, 'watch poll failed; retrying at the next tick'),
  );
  const { authenticator, devKeyPair } = await setUpAuthentication(config, database.db);
  const settlementsApp = new SettlementsApp(database.db);
  const health = new HealthStatusBoard();
  // Probes may ask about one service by name as well as about the server as a whole ("").
  for (const service of [PaymentService, AccountService, SettlementService, AdminService]) {
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
  });
  const log = fastify.log;
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

  await fastify.listen({ host: config.host, port: config.port });
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
        await database.close();
      }
    })();
    return closing;
  };

  return { fastify, database, app, ledger, jobs, outbox, devKeyPair, url, port, close };
}
