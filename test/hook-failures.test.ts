/**
 * Failures outside a Connect handler (issue 10 item 2): with the database stopped, API-key authentication
 * fails in its onRequest hook. Every protocol must read that as UNAVAILABLE (which retry policies retry),
 * with no SQL, stack or path in what the client sees. The database is a private cluster of this test's own.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../src/server/start.js';
import { clientsFor, PROTOCOLS } from './support/clients.js';
import { defaultCredentialsFor } from './support/credentials.js';
import { openAccount } from './support/fixtures.js';
import { type PrivatePostgres, startPrivatePostgres } from './support/private-postgres.js';
import { frame, grpcStatusOf, h2Call } from './support/raw-calls.js';
import { startTestReplica } from './support/server.js';

const CALL_TIMEOUT_MS = 20_000;
const LEAKS = /select|insert|from "|api_keys|Failed query|\.ts\b|\/src\/|node_modules|at \w+ \(/i;

let cluster: PrivatePostgres;
let service: RunningService;
let backendKey: string;
let accountId: string;

beforeAll(async () => {
  cluster = await startPrivatePostgres();
  service = await startTestReplica(cluster.url);
  backendKey = defaultCredentialsFor(service.url).apiKey ?? '';
  accountId = await openAccount(clientsFor('connect-json', service.url));
  await cluster.stop('immediate');
}, 120_000);

afterAll(async () => {
  // Started again so that the service's shutdown does not wait on a database that is not there.
  await cluster?.start().catch(() => {});
  await service?.close();
  await cluster?.destroy();
}, 120_000);

describe('the database stopped while API keys are checked', () => {
  it.each(PROTOCOLS)('answers UNAVAILABLE over %s, with nothing internal in the message', async (protocol) => {
    const clients = clientsFor(protocol, service.url);
    const error = await clients.accounts.getAccount({ accountId }, { timeoutMs: CALL_TIMEOUT_MS }).then(
      () => undefined,
      (caught: unknown) => ConnectError.from(caught),
    );
    expect(error && Code[error.code]).toBe(Code[Code.Unavailable]);
    expect(error?.rawMessage).not.toMatch(LEAKS);
  });

  it('answers Connect JSON with HTTP 503 and a Connect error body, not Fastify JSON', async () => {
    const response = await fetch(`${service.url}/payment.v1.AccountService/GetAccount`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'connect-protocol-version': '1', 'x-api-key': backendKey },
      body: JSON.stringify({ accountId }),
    });
    const text = await response.text();
    expect(response.status).toBe(503);
    expect(JSON.parse(text)).toEqual({ code: 'unavailable', message: expect.any(String) });
    expect(text).not.toMatch(LEAKS);
  });

  it('answers gRPC as trailers-only HTTP 200 with grpc-status 14', async () => {
    const answer = await h2Call(
      service.url,
      '/payment.v1.AccountService/GetAccount',
      { 'content-type': 'application/grpc', te: 'trailers', 'x-api-key': backendKey },
      frame(new Uint8Array(0)),
    );
    expect(answer.status).toBe(200);
    expect(answer.headers['grpc-status']).toBe('14');
    expect(grpcStatusOf(answer).message).not.toMatch(LEAKS);
  });
});
