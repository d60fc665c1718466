/**
 * OpenTelemetry tracing and request context, end to end: the SDK's in-memory exporter stands in for the
 * OTLP collector. A gRPC call carrying a traceparent gets a server span in the caller's trace, the ledger
 * transaction and its database queries are child spans, and the Kafka record of the event it caused carries
 * the same trace in its `traceparent` header and the request id as the event's correlation id.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccountCreatedSchema } from '../gen/payment/events/v1/events_pb.js';
import { AccountService } from '../gen/payment/v1/account_pb.js';
import { loadConfig } from '../src/config.js';
import { installTracing } from '../src/observability/tracing.js';
import { HEADER } from '../src/outbox/routing.js';
import { startService } from '../src/server/start.js';
import { asBackend } from './support/calls.js';
import { registerBackendKey } from './support/credentials.js';
import { collectEvents, type EventCollector, type MockKafka, startMockKafka, waitUntil } from './support/kafka.js';
import { TOPICS } from './support/outbox.js';
import { startTestServer, type TestServer } from './support/server.js';

const exporter = new InMemorySpanExporter();
const tracing = installTracing({ serviceName: 'payment-ledger-test', exporter });

let kafka: MockKafka;
let server: TestServer;
let events: EventCollector;

beforeAll(async () => {
  kafka = await startMockKafka();
  events = await collectEvents(kafka.directBrokers, [TOPICS.accounts]);
  server = await startTestServer({ KAFKA_BROKERS: kafka.brokers, KAFKA_CLIENT_ID: 'ledger-tracing-test' });
});
afterAll(async () => {
  await server?.stop();
  await events?.stop();
  await kafka?.stop();
  await tracing.shutdown();
});

const spanId = (span: ReadableSpan) => span.spanContext().spanId;
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

const TRANSPORTS = {
  grpc: (baseUrl: string) => createGrpcTransport({ baseUrl, interceptors: asBackend(baseUrl) }),
  grpc_web: (baseUrl: string) =>
    createGrpcWebTransport({ baseUrl, httpVersion: '1.1', interceptors: asBackend(baseUrl) }),
  connect: (baseUrl: string) =>
    createConnectTransport({ baseUrl, httpVersion: '1.1', interceptors: asBackend(baseUrl) }),
};

describe('a traced CreateAccount', () => {
  for (const [protocol, transport] of Object.entries(TRANSPORTS)) {
    it(`over ${protocol}: server, ledger and query spans in the caller's trace; traceparent and request id reach Kafka`, async () => {
      const traceId = randomBytes(16).toString('hex');
      const callerSpanId = randomBytes(8).toString('hex');
      const requestId = randomUUID();
      const accounts = createClient(AccountService, transport(server.url));
      const { account } = await accounts.createAccount(
        { idempotencyKey: randomUUID(), ownerRef: 'user:traced', currency: 'USD' },
        { headers: { traceparent: `00-${traceId}-${callerSpanId}-01`, 'x-request-id': requestId } },
      );

      const inTrace = () => exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId);
      await waitUntil(
        () => inTrace().some((span) => span.name === 'payment.v1.AccountService/CreateAccount'),
        'the server span',
      );
      const spans = inTrace();
      const serverSpan = spans.find((span) => span.name === 'payment.v1.AccountService/CreateAccount')!;
      expect(parentOf(serverSpan)).toBe(callerSpanId);
      expect(serverSpan.attributes['request.id']).toBe(requestId);
      expect(serverSpan.attributes['rpc.grpc.status_code']).toBe(0);
      const ledgerSpan = spans.find((span) => span.name === 'ledger.transaction');
      expect(ledgerSpan, `spans: ${spans.map((span) => span.name).join(', ')}`).toBeDefined();
      expect(parentOf(ledgerSpan!)).toBe(spanId(serverSpan));
      const queries = spans.filter((span) => span.name === 'db.query' && parentOf(span) === spanId(ledgerSpan!));
      expect(queries.length).toBeGreaterThanOrEqual(2); // at least BEGIN and the write
      expect(queries.some((span) => /\binsert into\b/i.test(String(span.attributes['db.statement'])))).toBe(true);

      const accountId = account!.id;
      await events.waitFor((messages) => messages.some((m) => m.key === accountId), `AccountCreated of ${accountId}`);
      const record = events.messages.find((m) => m.key === accountId)!;
      const traceparent = record.headers[HEADER.traceparent];
      expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      expect(traceparent!.split('-')[1]).toBe(traceId);
      const event = fromBinary(AccountCreatedSchema, record.value);
      expect(event.metadata?.correlationId).toBe(requestId);
    });
  }

  it("a background job's queries are traced in traces of their own", async () => {
    const before = exporter.getFinishedSpans().length;
    await server.service.jobs.holdSweeper.runNow();
    const queries = exporter
      .getFinishedSpans()
      .slice(before)
      .filter((span) => span.name === 'db.query');
    expect(queries.length).toBeGreaterThanOrEqual(1);
    for (const query of queries) expect(parentOf(query)).toBeUndefined();
  });
});

describe('the embedded database (PGlite)', () => {
  it('traces its queries as children of the ledger transaction too', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ledger-trace-pglite-'));
    const embedded = await startService(
      loadConfig({ PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'silent', SEED_DEMO_DATA: 'false' }),
    );
    try {
      await registerBackendKey(embedded);
      await createClient(AccountService, TRANSPORTS.grpc(embedded.url)).createAccount({
        idempotencyKey: randomUUID(),
        ownerRef: 'user:embedded',
        currency: 'USD',
      });
      const spans = exporter.getFinishedSpans();
      const ledgerSpans = spans.filter((span) => span.name === 'ledger.transaction');
      const ledgerIds = new Set(ledgerSpans.map(spanId));
      const underLedger = spans.filter((span) => span.name === 'db.query' && ledgerIds.has(parentOf(span) ?? ''));
      expect(underLedger.some((span) => /\binsert into\b/i.test(String(span.attributes['db.statement'])))).toBe(true);
    } finally {
      await embedded.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
