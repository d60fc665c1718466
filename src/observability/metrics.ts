/**
 * Prometheus metrics (prom-client) for the whole process, in one registry. The rest of the code calls the
 * small `metrics` interface below, one line per call site; only this module knows metric names and labels.
 *
 * Names follow Prometheus conventions: prefix `payment_ledger_`, base units (seconds), `_total` for counters.
 * Label values are bounded: procedures come from the registered routes (anything else is "unknown"), codes
 * from Connect's fixed list, policies, jobs and outcomes from fixed sets in the code.
 *
 * Recording is always on and costs a map lookup and an addition; METRICS_ENABLED only decides whether
 * /metrics is served. The registry is process-wide: one service per process in production. Gauges that
 * describe a running service (pool, outbox) are read at scrape time from sources the service registers.
 */
import { Code } from '@connectrpc/connect';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

const PREFIX = 'payment_ledger_';

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

/** The wire protocol of an RPC, from its content type. */
export type RpcProtocol = 'grpc' | 'grpc_web' | 'connect';

export function rpcProtocolOf(contentType: string | null | undefined): RpcProtocol {
  const type = (contentType ?? '').toLowerCase();
  if (type.startsWith('application/grpc-web')) return 'grpc_web';
  if (type.startsWith('application/grpc')) return 'grpc';
  return 'connect';
}

/** Connect's code names in snake case, as gRPC spells them (`ok`, `invalid_argument`, …). */
export function codeLabel(code: Code | undefined): string {
  if (code === undefined) return 'ok';
  const name = Code[code];
  return name === undefined ? 'unknown' : name.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
}

// Latency buckets in seconds: a payment takes milliseconds; a contended or timed-out one seconds.
const LATENCY_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const rpcRequests = new Counter({
  name: `${PREFIX}rpc_requests_total`,
  help: 'RPCs answered, by procedure, wire protocol and status code (early answers from hooks included).',
  labelNames: ['procedure', 'protocol', 'code'] as const,
  registers: [registry],
});
const rpcDuration = new Histogram({
  name: `${PREFIX}rpc_duration_seconds`,
  help: 'Time from request to answer (for streams: to the start of the response), by procedure, protocol and code.',
  labelNames: ['procedure', 'protocol', 'code'] as const,
  buckets: LATENCY_BUCKETS_SECONDS,
  registers: [registry],
});
const ledgerTransactions = new Counter({
  name: `${PREFIX}ledger_transactions_total`,
  help: 'Ledger transactions finished, by outcome (committed or failed).',
  labelNames: ['outcome'] as const,
  registers: [registry],
});
const ledgerCommands = new Histogram({
  name: `${PREFIX}ledger_transaction_commands`,
  help: 'Commands applied per ledger transaction.',
  buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
  registers: [registry],
});
const ledgerDuration = new Histogram({
  name: `${PREFIX}ledger_transaction_duration_seconds`,
  help: 'Time a ledger transaction took, retries included.',
  buckets: LATENCY_BUCKETS_SECONDS,
  registers: [registry],
});
const ledgerRetries = new Counter({
  name: `${PREFIX}ledger_transaction_retries_total`,
  help: 'Ledger transactions run again after a deadlock or serialization failure.',
  registers: [registry],
});
const outboxPublishErrors = new Counter({
  name: `${PREFIX}outbox_publish_errors_total`,
  help: 'Failed attempts to publish outbox events, counted per event.',
  registers: [registry],
});
const outboxPublished = new Counter({
  name: `${PREFIX}outbox_published_events_total`,
  help: 'Outbox events published and marked as such.',
  registers: [registry],
});
const rateLimitDecisions = new Counter({
  name: `${PREFIX}rate_limit_decisions_total`,
  help: 'Rate-limit decisions, by policy, decision (allowed or refused) and bucket store (redis or memory).',
  labelNames: ['policy', 'decision', 'store'] as const,
  registers: [registry],
});
const rateLimitFallback = new Gauge({
  name: `${PREFIX}rate_limit_redis_fallback`,
  help: '1 while the rate limiter serves from per-process buckets because Redis failed, else 0.',
  registers: [registry],
});
const jobRuns = new Counter({
  name: `${PREFIX}job_runs_total`,
  help: 'Background job runs (hold sweeper, settlement, idempotency key reaper), by job and outcome.',
  labelNames: ['job', 'outcome'] as const,
  registers: [registry],
});
const jobDuration = new Histogram({
  name: `${PREFIX}job_duration_seconds`,
  help: 'Time a background job run took, by job.',
  labelNames: ['job'] as const,
  buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
  registers: [registry],
});

/** Connection pool numbers, read at scrape time. */
export interface PoolStats {
  total: number;
  idle: number;
  waiting: number;
}

/** Outbox numbers, read at scrape time; null when the database did not answer. */
export interface OutboxGaugeStats {
  leader: boolean;
  unpublished: number | null;
  oldestAgeMs: number | null;
}

let poolSource: (() => PoolStats) | undefined;
let outboxSource: (() => Promise<OutboxGaugeStats>) | undefined;

const poolGauge = (name: string, help: string, pick: (stats: PoolStats) => number) =>
  new Gauge({
    name: `${PREFIX}${name}`,
    help,
    registers: [registry],
    collect() {
      if (poolSource) this.set(pick(poolSource()));
    },
  });
poolGauge('db_pool_connections', 'Database connections open in the pool (in use or idle).', (s) => s.total);
poolGauge('db_pool_idle_connections', 'Database connections open and idle in the pool.', (s) => s.idle);
poolGauge('db_pool_waiting_requests', 'Queries waiting for a pooled database connection.', (s) => s.waiting);

// Read once per scrape by the first of the outbox gauges; the others reuse it.
let outboxScrape: Promise<OutboxGaugeStats | undefined> | undefined;
const OUTBOX_SCRAPE_TIMEOUT_MS = 2_000;

function readOutbox(): Promise<OutboxGaugeStats | undefined> {
  if (!outboxSource) return Promise.resolve(undefined);
  outboxScrape ??= Promise.race([
    outboxSource().catch(() => undefined),
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), OUTBOX_SCRAPE_TIMEOUT_MS).unref()),
  ]).finally(() => {
    outboxScrape = undefined;
  });
  return outboxScrape;
}

const outboxGauge = (name: string, help: string, pick: (stats: OutboxGaugeStats) => number | null) =>
  new Gauge({
    name: `${PREFIX}${name}`,
    help,
    registers: [registry],
    async collect() {
      const stats = await readOutbox();
      const value = stats ? pick(stats) : null;
      if (value === null) this.reset();
      else this.set(value);
    },
  });
outboxGauge('outbox_unpublished_events', 'Outbox events not yet published.', (s) => s.unpublished);
outboxGauge('outbox_oldest_unpublished_age_seconds', 'Age of the oldest unpublished outbox event.', (s) =>
  s.oldestAgeMs === null ? null : s.oldestAgeMs / 1000,
);
outboxGauge('outbox_leader', '1 while this process is the outbox publisher (leader), else 0.', (s) =>
  s.leader ? 1 : 0,
);

/** The calls the rest of the code makes; each call site is one line. */
export const metrics = {
  /** An RPC answered (by a handler or early by a hook); `durationSeconds` from request start. */
  rpcAnswered(procedure: string, protocol: RpcProtocol, code: Code | undefined, durationSeconds: number): void {
    const labels = { procedure, protocol, code: codeLabel(code) };
    rpcRequests.inc(labels);
    rpcDuration.observe(labels, durationSeconds);
  },
  ledgerTransaction(committed: boolean, commands: number, durationSeconds: number): void {
    ledgerTransactions.inc({ outcome: committed ? 'committed' : 'failed' });
    ledgerCommands.observe(commands);
    ledgerDuration.observe(durationSeconds);
  },
  ledgerRetry(): void {
    ledgerRetries.inc();
  },
  outboxPublished(events: number): void {
    outboxPublished.inc(events);
  },
  outboxPublishFailed(events: number): void {
    outboxPublishErrors.inc(events);
  },
  rateLimitDecision(policy: string, allowed: boolean, store: 'redis' | 'memory'): void {
    rateLimitDecisions.inc({ policy, decision: allowed ? 'allowed' : 'refused', store });
  },
  rateLimitFallback(active: boolean): void {
    rateLimitFallback.set(active ? 1 : 0);
  },
  jobRun(job: string, ok: boolean, durationSeconds: number): void {
    jobRuns.inc({ job, outcome: ok ? 'ok' : 'failed' });
    jobDuration.observe({ job }, durationSeconds);
  },
  /** Registers where the pool gauges come from; returns a function that unregisters it. */
  watchPool(source: () => PoolStats): () => void {
    poolSource = source;
    return () => {
      if (poolSource === source) poolSource = undefined;
    };
  },
  /** Registers where the outbox gauges come from; returns a function that unregisters it. */
  watchOutbox(source: () => Promise<OutboxGaugeStats>): () => void {
    outboxSource = source;
    return () => {
      if (outboxSource === source) outboxSource = undefined;
    };
  },
};

/** The exposition text and its content type, for GET /metrics. */
export async function scrape(): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}
