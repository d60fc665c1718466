/**
 * Builds the Fastify server: Connect handlers for every service on one port (gRPC, gRPC-Web, Connect),
 * CORS for configured browser origins, HTTP liveness/readiness, health and reflection.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { cors as connectCors } from '@connectrpc/connect';
import fastifyCors from '@fastify/cors';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import type { Redis } from 'ioredis';
import { registerApiKeyService } from '../api/api-key-handlers.js';
import { errorMappingInterceptor } from '../api/errors.js';
import { registerLedgerServices } from '../api/handlers.js';
import { IDEMPOTENT_REPLAYED_HEADER } from '../api/headers.js';
import { observabilityInterceptor, withHttpRequest } from '../api/observe.js';
import { registerOperatorServices } from '../api/operator-handlers.js';
import { JSON_OPTIONS, strictInputInterceptor } from '../api/strict-input.js';
import { ApiKeysApp } from '../app/api-keys-app.js';
import type { PaymentsApp } from '../app/payments-app.js';
import type { SettlementsApp } from '../app/settlements-app.js';
import type { Authenticator } from '../auth/authenticate.js';
import { authContextValues, registerAuthentication } from '../auth/hook.js';
import { authInterceptor } from '../auth/interceptor.js';
import type { Config } from '../config.js';
import { SERVED_FILES } from '../contract.js';
import type { Database } from '../db/client.js';
import { type HealthStatusBoard, registerHealthService } from '../grpc/health.js';
import { registerReflectionServices } from '../grpc/reflection.js';
import { scrape } from '../observability/metrics.js';
import type { OutboxStatus } from '../outbox/index.js';
import { TrustedProxies } from '../ratelimit/client-key.js';
import { registerRateLimit } from '../ratelimit/hook.js';
import { RATE_LIMIT_RESPONSE_HEADERS } from '../ratelimit/respond.js';
import { registerConnectRoutes } from './connect-routes.js';
import { READY_CHECK_TIMEOUT_MS, withTimeout } from './database-health.js';
import { createListener, type DualProtocolServer, type ListenerHandler } from './listener.js';
import { answerFrameworkError, registerProtocolErrorAnswers } from './protocol-errors.js';
import { registerRequestLimits } from './request-limits.js';
import { registerWallet } from './wallet.js';

export interface ServerDependencies {
  config: Config;
  database: Database;
  app: PaymentsApp;
  settlementsApp: SettlementsApp;
  health: HealthStatusBoard;
  /** Aborted when the shutdown grace period is over: handlers still running are cancelled. */
  shutdownSignal: AbortSignal;
  /**
   * The outbox publisher's role and lag, shown in /readyz; informational, it never fails readiness. The lag
   * counts are left out (null) when the database does not give them within `statsTimeoutMs`; the role never is.
   */
  outboxStatus?: (statsTimeoutMs?: number) => Promise<OutboxStatus>;
  /** Shared rate-limit buckets (REDIS_URL); without it the limiter keeps per-process buckets. */
  rateLimitRedis?: Redis | undefined;
  authenticator: Authenticator;
  /** Where log lines go instead of stdout (tests read them). */
  logStream?: { write(line: string): void } | undefined;
}

const IDLE_TIMEOUT_MS = 60_000;
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
// Headers of our own that browsers must be allowed to send or read, beyond Connect's lists.
// traceparent/tracestate: a browser's W3C trace context, which the server continues (docs/observability.md).
const EXTRA_REQUEST_HEADERS = ['authorization', 'x-api-key', 'x-request-id', 'traceparent', 'tracestate'];
const EXTRA_RESPONSE_HEADERS = [IDEMPOTENT_REPLAYED_HEADER, 'x-request-id', ...RATE_LIMIT_RESPONSE_HEADERS];

/**
 * The Fastify server, not yet listening: hooks in the order a request meets them (request limits,
 * authentication, rate limit), the Connect routes of every service, the wallet and the HTTP probes.
 */
export async function buildHttpServer(deps: ServerDependencies): Promise<FastifyInstance> {
  const { config } = deps;
  const fastify = createFastify(deps);

  // Failures in hooks, body parsing and unknown paths answer in the caller's protocol, never Fastify's JSON.
  registerProtocolErrorAnswers(fastify);

  // Set before the handler runs: Connect routes write to the raw response, so onSend hooks never see them,
  // but connect-fastify copies the reply's headers across.
  fastify.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  await registerCors(fastify, config.corsOrigins);

  // First: a request over a limit costs nothing, not even an API key lookup.
  registerRequestLimits(fastify, {
    maxBodyBytes: config.requestBodyMaxBytes,
    maxTimeoutMs: config.limits.maxTimeoutMs,
  });
  // Before the rate limiter, so that buckets belong to verified principals.
  registerAuthentication(fastify, deps.authenticator);

  // After CORS, so that a refusal carries the CORS headers; before the routes, so that it answers first.
  const limiter = config.rateLimit.enabled
    ? registerRateLimit(fastify, { config, redis: deps.rateLimitRedis, logger: fastify.log })
    : undefined;

  await registerRpcRoutes(fastify, deps);

  if (config.serveWallet && !registerWallet(fastify)) {
    fastify.log.warn('SERVE_WALLET is on but wallet/dist is missing: run `npm run wallet:build`');
  }
  registerProbes(fastify, deps, () => limiter?.redisCircuit());
  return fastify;
}

/** Fastify on our dual-protocol listener, with request ids and logging set up. */
function createFastify(deps: ServerDependencies): FastifyInstance {
  const { config } = deps;
  const trustedProxies = new TrustedProxies(config.trustedProxies);
  return Fastify({
    logger: { level: config.logLevel, ...(deps.logStream ? { stream: deps.logStream } : {}) },
    // Fastify's types assume one protocol; at run time it only needs listen/close/address, which this has.
    serverFactory: (handler) =>
      createListener(handler as ListenerHandler, {
        tls: config.tls,
        maxHeaderBytes: config.limits.maxHeaderBytes,
        maxConnections: config.limits.maxConnections,
        idleTimeoutMs: IDLE_TIMEOUT_MS,
        keepalive: config.keepalive,
        headersTimeoutMs: config.limits.headersTimeoutMs,
        requestBodyTimeoutMs: config.limits.requestBodyTimeoutMs,
        maxConnectionsPerClient: config.limits.maxConnectionsPerClient,
        isExemptFromPerClientCap: (address) => trustedProxies.has(address),
      }) as unknown as Server,
    forceCloseConnections: 'idle',
    frameworkErrors: answerFrameworkError,
    bodyLimit: config.requestBodyMaxBytes,
    // A client's x-request-id is kept only when it is a short token: it is logged and sent back in a header,
    // so it must not carry control characters or grow a response with the input.
    requestIdHeader: false,
    genReqId: (request) => {
      const offered = request.headers['x-request-id'];
      return typeof offered === 'string' && CLIENT_REQUEST_ID.test(offered) ? offered : randomUUID();
    },
    // Per-request access lines at info level would dominate the log under load; errors are logged with the id.
    logController: new LogController({ disableRequestLogging: true }),
  }) as unknown as FastifyInstance;
}

/** CORS for the configured browser origins (none: no CORS headers at all; `*`: any origin). */
async function registerCors(fastify: FastifyInstance, origins: string[]): Promise<void> {
  if (origins.length === 0) return;
  await fastify.register(fastifyCors, {
    origin: origins.includes('*') ? true : origins,
    methods: [...connectCors.allowedMethods],
    allowedHeaders: [...connectCors.allowedHeaders, ...EXTRA_REQUEST_HEADERS],
    exposedHeaders: [...connectCors.exposedHeaders, ...EXTRA_RESPONSE_HEADERS],
    maxAge: 2 * 60 * 60,
  });
}

/** Every RPC service, behind the interceptors every RPC passes through. */
async function registerRpcRoutes(fastify: FastifyInstance, deps: ServerDependencies): Promise<void> {
  const { config } = deps;
  await registerConnectRoutes(fastify, {
    // Outermost first: observability sees every RPC and its final code; errors raised by authentication or
    // input checks are mapped like any other. Input is checked once the caller is known, before handler work.
    interceptors: [
      observabilityInterceptor({ accessLog: config.observability.accessLog }),
      errorMappingInterceptor(fastify.log),
      authInterceptor(),
      strictInputInterceptor(),
    ],
    contextValues: (request) => withHttpRequest(authContextValues(request), request),
    readMaxBytes: config.requestBodyMaxBytes,
    maxTimeoutMs: config.limits.maxTimeoutMs,
    // Refuses cross-site form posts and makes accidental plain-HTTP clients fail loudly.
    requireConnectProtocolHeader: true,
    // Zero amounts and default enums are written out: a balance of 0 should read as 0, not be absent. Our own
    // services read JSON strictly per method (strict-input.ts: serveStrictly).
    jsonOptions: JSON_OPTIONS,
    shutdownSignal: deps.shutdownSignal,
    routes(router) {
      registerLedgerServices(router, deps.app);
      registerOperatorServices(router, deps.settlementsApp);
      registerApiKeyService(router, new ApiKeysApp(deps.database.db));
      registerHealthService(router, deps.health);
      registerReflectionServices(router, SERVED_FILES);
    },
  });
}

/**
 * /healthz (the process answers), /readyz (the database answers within READY_CHECK_TIMEOUT_MS; the outbox
 * and the rate limiter's Redis circuit are shown but never fail it) and /metrics unless it has its own port.
 */
function registerProbes(
  fastify: FastifyInstance,
  deps: ServerDependencies,
  redisCircuit: () => { state: string } | undefined,
): void {
  fastify.get('/healthz', async () => ({ status: 'ok' }));
  // On the service port unless METRICS_PORT moves it to a port of its own (start.ts).
  const metrics = deps.config.observability.metrics;
  if (metrics.enabled && metrics.port === undefined) {
    fastify.get('/metrics', async (_request, reply) => {
      const { contentType, body } = await scrape();
      return reply.type(contentType).send(body);
    });
  }
  fastify.get('/readyz', async (_request, reply) => {
    // The role answers at once; only the lag counts wait for the database, and no longer than the ping does.
    const outboxDetail = deps.outboxStatus
      ? deps.outboxStatus(READY_CHECK_TIMEOUT_MS).then(
          ({ role, unpublished, oldestAgeMs }) => ({ outbox: { role, unpublished, oldestAgeMs } }),
          () => ({ outbox: { error: 'unavailable' } }),
        )
      : Promise.resolve({});
    // Informational like the outbox: Redis trouble never makes the service unready (the limiter fails open).
    const circuit = redisCircuit();
    const rateLimitDetail = circuit ? { rateLimit: { redisCircuit: circuit.state } } : {};
    try {
      await withTimeout(deps.database.ping(), READY_CHECK_TIMEOUT_MS);
      return { status: 'ready', database: 'ok', ...(await outboxDetail), ...rateLimitDetail };
    } catch {
      return reply
        .code(503)
        .send({ status: 'not ready', database: 'unreachable', ...(await outboxDetail), ...rateLimitDetail });
    }
  });
}

export function listenerOf(fastify: FastifyInstance): DualProtocolServer {
  return fastify.server as unknown as DualProtocolServer;
}
