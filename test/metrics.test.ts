/**
 * Prometheus metrics: traffic over each protocol (and a request the rate limiter answers early), then a
 * scrape of /metrics shows the RPC, ledger, pool, outbox, rate-limit, job and process series.
 */
import { randomUUID } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectErrorOf } from './support/calls.js';
import { clientsFor, PROTOCOLS } from './support/clients.js';
import { openAccount } from './support/fixtures.js';
import { REDIS_URL } from './support/rate-limit.js';
import { startTestServer, type TestServer } from './support/server.js';
import { within } from './support/waits.js';

/** Sample values of a text exposition, keyed by the series as printed (`name{label="v",…}`). */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

async function scrapeOf(url: string): Promise<{ status: number; type: string | null; samples: Map<string, number> }> {
  const response = await fetch(url);
  const text = await response.text();
  return { status: response.status, type: response.headers.get('content-type'), samples: parseExposition(text) };
}

/** The value of one series; labels in the order the metric declares them. */
function sample(samples: Map<string, number>, series: string): number {
  const value = samples.get(series);
  if (value === undefined) {
    const name = series.split('{')[0]!;
    const near = [...samples.keys()].filter((key) => key.startsWith(name)).slice(0, 20);
    throw new Error(`no series ${series}; series of ${name}: ${near.join(', ') || 'none'}`);
  }
  return value;
}

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const poll = async () => {
    while (!(await condition())) await new Promise((done) => setTimeout(done, 50));
  };
  await within(poll(), 10_000, what);
}

const rpc = (procedure: string, protocol: string, code: string) =>
  `payment_ledger_rpc_requests_total{procedure="${procedure}",protocol="${protocol}",code="${code}"}`;

describe('GET /metrics', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      METRICS_ENABLED: 'true',
      RATE_LIMIT_ENABLED: 'true',
      REDIS_URL,
      RATE_LIMIT_KEY_PREFIX: `test-metrics-${randomUUID()}:`,
      RATE_LIMIT_WRITE_CAPACITY: '1000',
      RATE_LIMIT_READ_CAPACITY: '2',
      RATE_LIMIT_READ_REFILL_PER_SECOND: '0',
      // The counts below are Redis's: a reply slower than the default 250 ms would fall back to memory.
      RATE_LIMIT_REDIS_TIMEOUT_MS: '2000',
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('exposes per-RPC, ledger, pool, outbox, rate-limit, job and process series after traffic', async () => {
    for (const protocol of PROTOCOLS) await openAccount(clientsFor(protocol, server.url));
    const grpc = clientsFor('grpc', server.url);
    // Reads: two allowed (one NOT_FOUND), the third refused by the rate limiter before any handler.
    const missing = () => grpc.accounts.getAccount({ accountId: randomUUID() });
    expect((await connectErrorOf(missing())).code).toBe(Code.NotFound);
    await connectErrorOf(missing());
    expect((await connectErrorOf(missing())).code).toBe(Code.ResourceExhausted);
    await server.service.jobs.holdSweeper.runNow();
    await server.service.jobs.settlement.runNow();
    await until(() => server.service.outbox.currentRole === 'leader', 'the outbox publisher leading');

    const { status, type, samples } = await scrapeOf(`${server.url}/metrics`);
    expect(status).toBe(200);
    expect(type).toContain('text/plain');

    const create = 'payment.v1.AccountService/CreateAccount';
    for (const protocol of ['connect', 'grpc_web', 'grpc']) {
      expect(sample(samples, rpc(create, protocol, 'ok'))).toBeGreaterThanOrEqual(1);
      expect(
        sample(
          samples,
          `payment_ledger_rpc_duration_seconds_count{procedure="${create}",protocol="${protocol}",code="ok"}`,
        ),
      ).toBeGreaterThanOrEqual(1);
    }
    const getAccount = 'payment.v1.AccountService/GetAccount';
    expect(sample(samples, rpc(getAccount, 'grpc', 'not_found'))).toBeGreaterThanOrEqual(2);
    expect(sample(samples, rpc(getAccount, 'grpc', 'resource_exhausted'))).toBeGreaterThanOrEqual(1);

    expect(sample(samples, 'payment_ledger_ledger_transactions_total{outcome="committed"}')).toBeGreaterThanOrEqual(3);
    expect(sample(samples, 'payment_ledger_ledger_transaction_commands_count')).toBeGreaterThanOrEqual(3);
    expect(sample(samples, 'payment_ledger_ledger_transaction_duration_seconds_count')).toBeGreaterThanOrEqual(3);
    expect(sample(samples, 'payment_ledger_ledger_transaction_retries_total')).toBeGreaterThanOrEqual(0);

    expect(sample(samples, 'payment_ledger_db_pool_connections')).toBeGreaterThanOrEqual(1);
    expect(sample(samples, 'payment_ledger_db_pool_idle_connections')).toBeGreaterThanOrEqual(0);
    expect(sample(samples, 'payment_ledger_db_pool_waiting_requests')).toBe(0);

    expect(sample(samples, 'payment_ledger_outbox_leader')).toBe(1);
    expect(sample(samples, 'payment_ledger_outbox_unpublished_events')).toBeGreaterThanOrEqual(0);
    expect(sample(samples, 'payment_ledger_outbox_oldest_unpublished_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(sample(samples, 'payment_ledger_outbox_publish_errors_total')).toBeGreaterThanOrEqual(0);

    const decisions = (policy: string, decision: string) =>
      sample(
        samples,
        `payment_ledger_rate_limit_decisions_total{policy="${policy}",decision="${decision}",store="redis"}`,
      );
    expect(decisions('writes', 'allowed')).toBeGreaterThanOrEqual(3);
    expect(decisions('reads', 'allowed')).toBeGreaterThanOrEqual(2);
    expect(decisions('reads', 'refused')).toBeGreaterThanOrEqual(1);
    expect(sample(samples, 'payment_ledger_rate_limit_redis_fallback')).toBe(0);

    for (const job of ['hold_sweeper', 'settlement_run']) {
      expect(sample(samples, `payment_ledger_job_runs_total{job="${job}",outcome="ok"}`)).toBeGreaterThanOrEqual(1);
    }
    expect(sample(samples, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(sample(samples, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
  });
});

describe('metrics settings', () => {
  it('METRICS_PORT serves /metrics on a listener of its own, and not on the service port', async () => {
    const server = await startTestServer({ METRICS_ENABLED: 'true', METRICS_PORT: '0' });
    try {
      expect(server.service.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const separate = await scrapeOf(server.service.metricsUrl!);
      expect(separate.status).toBe(200);
      expect(separate.samples.has('process_cpu_user_seconds_total')).toBe(true);
      expect((await fetch(`${server.url}/metrics`)).status).toBe(404);
    } finally {
      await server.stop();
    }
  });

  it('without METRICS_ENABLED against PostgreSQL, /metrics is not served', async () => {
    const server = await startTestServer();
    try {
      expect(server.service.metricsUrl).toBeUndefined();
      expect((await fetch(`${server.url}/metrics`)).status).toBe(404);
    } finally {
      await server.stop();
    }
  });
});
