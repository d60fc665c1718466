/**
 * Logs with context: every line logged while serving a request carries its request id, principal and
 * procedure; ACCESS_LOG adds one line per RPC (also for RPCs the rate limiter answers early).
 */
import { randomUUID } from 'node:crypto';
import http2 from 'node:http2';
import { create, toBinary } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServerReflectionRequestSchema } from '../gen/grpc/reflection/v1/reflection_pb.js';
import { WatchAccountRequestSchema } from '../gen/payment/v1/payment_pb.js';
import type { RunningService } from '../src/server/start.js';
import { startService } from '../src/server/start.js';
import { connectErrorOf } from './support/calls.js';
import { clientsFor } from './support/clients.js';
import { registerBackendKey } from './support/credentials.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { key, openAccount } from './support/fixtures.js';
import { frame } from './support/raw-calls.js';
import { testConfig } from './support/server.js';
import { within } from './support/waits.js';

type LogLine = Record<string, unknown>;
const lines: LogLine[] = [];
const lineListeners = new Set<() => void>();
const logStream = {
  write: (line: string) => {
    lines.push(JSON.parse(line) as LogLine);
    for (const listener of lineListeners) listener();
  },
};

let database: TestDatabase;
let service: RunningService;
let principal: string;

beforeAll(async () => {
  database = await createTestDatabase();
  const config = testConfig(database.url, {
    LOG_LEVEL: 'info',
    ACCESS_LOG: 'true',
    RATE_LIMIT_ENABLED: 'true',
    RATE_LIMIT_KEY_PREFIX: `test-logs-${randomUUID()}:`,
    RATE_LIMIT_READ_CAPACITY: '1',
    RATE_LIMIT_READ_REFILL_PER_SECOND: '0',
  });
  service = await startService(config, { logStream });
  const backendKey = await registerBackendKey(service);
  principal = `apikey:${backendKey.split('_')[1]}`;
});
afterAll(async () => {
  await service?.close();
  await database?.drop();
});

const linesOf = (requestId: string) => lines.filter((line) => line.reqId === requestId);

/** The request's access line, as soon as it is logged. */
function accessLineOf(requestId: string): Promise<LogLine> {
  return new Promise((resolve) => {
    const check = () => {
      const line = linesOf(requestId).find((candidate) => candidate.msg === 'rpc');
      if (!line) return;
      lineListeners.delete(check);
      resolve(line);
    };
    lineListeners.add(check);
    check();
  });
}

describe('request logs', () => {
  it('an access line per RPC: procedure, code, duration, principal, replayed', async () => {
    const clients = clientsFor('grpc', service.url);
    const request = { idempotencyKey: key(), ownerRef: 'user:logged', currency: 'USD' };
    const first = randomUUID();
    const again = randomUUID();
    await clients.accounts.createAccount(request, { headers: { 'x-request-id': first } });
    await clients.accounts.createAccount(request, { headers: { 'x-request-id': again } });

    const [line] = linesOf(first);
    expect(line).toMatchObject({
      msg: 'rpc',
      procedure: 'payment.v1.AccountService/CreateAccount',
      protocol: 'grpc',
      code: 'ok',
      principal,
      replayed: false,
    });
    expect(typeof line!.durationMs).toBe('number');
    expect(linesOf(again)[0]).toMatchObject({ msg: 'rpc', code: 'ok', replayed: true });
  });

  it('an RPC refused early by the rate limiter gets its access line too', async () => {
    const clients = clientsFor('connect-json', service.url);
    const ids = [randomUUID(), randomUUID()];
    for (const id of ids)
      await connectErrorOf(
        clients.accounts.getAccount({ accountId: 'acct_none' }, { headers: { 'x-request-id': id } }),
      );
    expect(linesOf(ids[0]!)[0]).toMatchObject({ msg: 'rpc', code: 'not_found', principal });
    expect(linesOf(ids[1]!)[0]).toMatchObject({
      msg: 'rpc',
      procedure: 'payment.v1.AccountService/GetAccount',
      code: 'resource_exhausted',
      principal,
    });
  });

  it("an internal error is logged with the request's id, principal and procedure, never sent to the client", async () => {
    // Instrumentation of the running instance: the real handler path up to the app, which then fails.
    const app = service.app;
    const original = app.getPayment.bind(app);
    app.getPayment = async () => {
      throw new Error('boom: select * from payments');
    };
    try {
      const id = randomUUID();
      // A key of its own, so this test runs in any order: the other test spends the default key's reads bucket.
      const apiKey = await registerBackendKey(service);
      const keyPrincipal = `apikey:${apiKey.split('_')[1]}`;
      const error = await connectErrorOf(
        clientsFor('grpc-web', service.url, { apiKey }).payments.getPayment(
          { paymentId: 'pay_x' },
          { headers: { 'x-request-id': id } },
        ),
      );
      expect(error.code).toBe(Code.Internal);
      expect(error.rawMessage).not.toContain('select');
      const failure = linesOf(id).find((line) => line.msg === 'request failed with an internal error');
      expect(failure).toMatchObject({ procedure: 'payment.v1.PaymentService/GetPayment', principal: keyPrincipal });
    } finally {
      app.getPayment = original;
    }
  });
});

describe('a client that goes away mid-stream', () => {
  it('is a canceled RPC in the access log, not an internal error', async () => {
    const apiKey = await registerBackendKey(service);
    const accountId = await openAccount(clientsFor('grpc', service.url, { apiKey }));
    const listServices = create(ServerReflectionRequestSchema, { messageRequest: { case: 'listServices', value: '' } });
    const calls = [
      // Server streams: the request is whole, the client leaves while the server streams.
      { path: '/grpc.health.v1.Health/Watch', message: new Uint8Array(0), endRequest: true },
      {
        path: '/payment.v1.PaymentService/WatchAccount',
        message: toBinary(WatchAccountRequestSchema, create(WatchAccountRequestSchema, { accountId })),
        endRequest: true,
      },
      // A bidi stream: the client leaves while the server still reads its requests (this was logged as an
      // internal error, ERR_STREAM_PREMATURE_CLOSE).
      {
        path: '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
        message: toBinary(ServerReflectionRequestSchema, listServices),
        endRequest: false,
      },
    ];
    for (const call of calls) {
      const id = randomUUID();
      const session = http2.connect(service.url);
      session.on('error', () => {});
      const stream = session.request({
        ':method': 'POST',
        ':path': call.path,
        'content-type': 'application/grpc',
        te: 'trailers',
        'x-api-key': apiKey,
        'x-request-id': id,
      });
      stream.on('error', () => {});
      if (call.endRequest) stream.end(frame(call.message));
      else stream.write(frame(call.message));
      // The first answer says the call is being served; then the client vanishes.
      await within(new Promise((resolve) => stream.once('data', resolve)), 10_000, `${call.path}: first message`);
      session.destroy();
      const access = await within(accessLineOf(id), 10_000, `${call.path}: access line`);
      expect(access).toMatchObject({ procedure: call.path.slice(1), code: 'canceled' });
      expect(linesOf(id).filter((line) => Number(line.level) >= 50)).toEqual([]);
    }
  });
});
