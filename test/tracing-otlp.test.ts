/**
 * Tracing as configured in production: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set, spans batched over OTLP/HTTP
 * to an in-process receiver. Without that setting (every other test file) no tracer provider is installed.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientsFor } from './support/clients.js';
import { openAccount } from './support/fixtures.js';
import { startTestServer, type TestServer } from './support/server.js';

const received: { path: string; contentType: string; body: string }[] = [];
const receiver = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    received.push({
      path: request.url ?? '',
      contentType: request.headers['content-type'] ?? '',
      body: Buffer.concat(chunks).toString('utf8'),
    });
    response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});

let server: TestServer;
beforeAll(async () => {
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  const { port } = receiver.address() as AddressInfo;
  server = await startTestServer({
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${port}/v1/traces`,
    OTEL_SERVICE_NAME: 'ledger-otlp-test',
  });
});
afterAll(async () => {
  receiver.close();
});

describe('OTLP export', () => {
  it('sends the RPC, ledger and query spans to the configured endpoint (flushed at shutdown)', async () => {
    await openAccount(clientsFor('grpc', server.url));
    // close() flushes the batch: nothing waits on the exporter's schedule.
    await server.stop();
    const bodies = received.filter((request) => request.path === '/v1/traces').map((request) => request.body);
    const all = bodies.join('\n');
    expect(bodies.length).toBeGreaterThanOrEqual(1);
    expect(all).toContain('ledger-otlp-test');
    expect(all).toContain('payment.v1.AccountService/CreateAccount');
    expect(all).toContain('ledger.transaction');
    expect(all).toContain('db.query');
  });
});
