/**
 * Readiness tells the truth: /readyz fails while the database is unreachable and recovers with it (on a
 * private PostgreSQL cluster the test stops and starts), and gRPC health tells watchers NOT_SERVING as
 * soon as shutdown begins.
 */
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Health } from '../gen/grpc/health/v1/health_pb.js';
import { ServingStatus } from '../src/grpc/health.js';
import { type RunningService, startService } from '../src/server/start.js';
import { type PrivatePostgres, startPrivatePostgres } from './support/private-postgres.js';
import { testConfig } from './support/server.js';
import { within } from './support/waits.js';

// Each /readyz answers within its own bounded check; this bounds how many it takes to see a change.
const READY_CHANGE_TIMEOUT_MS = 60_000;
const POLL_INTERVAL_MS = 100;

let cluster: PrivatePostgres;
let service: RunningService;
let closed = false;

beforeAll(async () => {
  cluster = await startPrivatePostgres();
  service = await startService(testConfig(cluster.url, { SHUTDOWN_GRACE_MS: '2000' }));
}, 180_000);

afterAll(async () => {
  if (!closed) await service?.close();
  await cluster?.destroy();
});

async function readyz(): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${service.url}/readyz`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Polls /readyz until it answers `status`; returns that answer. */
async function readyzBecomes(status: number) {
  const deadline = Date.now() + READY_CHANGE_TIMEOUT_MS;
  for (;;) {
    const answer = await readyz();
    if (answer.status === status) return answer;
    if (Date.now() > deadline) throw new Error(`/readyz still ${answer.status}: ${JSON.stringify(answer.body)}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

/** Polls gRPC Health/Check for the payment service until it answers `status`. */
async function paymentHealthBecomes(status: ServingStatus): Promise<void> {
  const sessionManager = new Http2SessionManager(service.url);
  try {
    const health = createClient(Health, createGrpcTransport({ baseUrl: service.url, sessionManager }));
    const deadline = Date.now() + READY_CHANGE_TIMEOUT_MS;
    for (;;) {
      const answer = await health.check({ service: 'payment.v1.PaymentService' });
      if (answer.status === status) return;
      if (Date.now() > deadline) throw new Error(`gRPC health still ${ServingStatus[answer.status]}`);
      await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
    }
  } finally {
    sessionManager.abort();
  }
}

it('/readyz and gRPC health per service fail while PostgreSQL is down and recover with it; liveness stays', async () => {
  expect(await readyz()).toMatchObject({ status: 200, body: { status: 'ready', database: 'ok' } });

  await cluster.stop('immediate');
  const down = await readyzBecomes(503);
  expect(down.body).toMatchObject({ status: 'not ready', database: 'unreachable' });
  // Nothing internal: no error text, no SQL, no address of the database.
  expect(JSON.stringify(down.body)).not.toMatch(/ECONNREFUSED|select|127\.0\.0\.1|postgres/i);
  // Liveness is about the process, not its dependencies: restarting the server would not help.
  expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
  // gRPC readiness probes ask per service; the overall entry ("") is liveness, like /healthz.
  await paymentHealthBecomes(ServingStatus.NOT_SERVING);
  const sessionManager = new Http2SessionManager(service.url);
  const overall = createClient(Health, createGrpcTransport({ baseUrl: service.url, sessionManager }));
  expect((await overall.check({ service: '' })).status).toBe(ServingStatus.SERVING);
  sessionManager.abort();

  await cluster.start();
  const up = await readyzBecomes(200);
  expect(up.body).toMatchObject({ status: 'ready', database: 'ok' });
  await paymentHealthBecomes(ServingStatus.SERVING);
}, 180_000);

it('gRPC health goes NOT_SERVING for watchers as soon as shutdown begins, then ends the stream', async () => {
  const sessionManager = new Http2SessionManager(service.url);
  try {
    const health = createClient(Health, createGrpcTransport({ baseUrl: service.url, sessionManager }));
    expect((await health.check({ service: '' })).status).toBe(ServingStatus.SERVING);
    const updates = health.watch({ service: 'payment.v1.PaymentService' })[Symbol.asyncIterator]();
    expect((await within(updates.next(), 30_000, 'first status')).value?.status).toBe(ServingStatus.SERVING);

    const closing = service.close();
    closed = true;
    expect((await within(updates.next(), 30_000, 'status on shutdown')).value?.status).toBe(ServingStatus.NOT_SERVING);
    expect((await within(updates.next(), 30_000, 'end of stream')).done).toBe(true);
    await within(closing, 30_000, 'shutdown');
  } finally {
    sessionManager.abort();
  }
}, 120_000);
