/**
 * Client certificates (mTLS) for backends: with a client CA configured and certificates required, a client
 * without a trusted certificate cannot even connect, and a trusted certificate's subject is a principal
 * with the scopes configured for it.
 */
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AccountService } from '../gen/payment/v1/account_pb.js';
import { SettlementService } from '../gen/payment/v1/settlement_pb.js';
import { type ClientCertificateAuthority, createClientCertificateAuthority } from './support/client-certs.js';
import { key } from './support/fixtures.js';
import { createSelfSignedCert, type SelfSignedCert } from './support/self-signed-cert.js';
import { startTestServer, type TestServer } from './support/server.js';

let serverCert: SelfSignedCert;
let clientCa: ClientCertificateAuthority;
let otherCa: ClientCertificateAuthority;
let server: TestServer;

beforeAll(async () => {
  serverCert = await createSelfSignedCert();
  clientCa = await createClientCertificateAuthority();
  otherCa = await createClientCertificateAuthority();
  server = await startTestServer({
    TLS_CERT_FILE: serverCert.certFile,
    TLS_KEY_FILE: serverCert.keyFile,
    TLS_CLIENT_CA_FILE: clientCa.caFile,
    TLS_CLIENT_CERT_REQUIRED: 'true',
    TLS_CLIENT_SCOPES: 'backend-a=accounts:admin payments:read',
  });
});
afterAll(async () => {
  await server?.stop();
  await Promise.all([serverCert?.remove(), clientCa?.remove(), otherCa?.remove()]);
});

const accountCount = async () =>
  (await server.database.query<{ n: string }>('select count(*)::text as n from accounts'))[0]?.n;

it('accepts a trusted client certificate as a principal with its configured scopes', async () => {
  const identity = await clientCa.issue('backend-a');
  for (const transport of [
    createGrpcTransport({ baseUrl: server.url, nodeOptions: { ca: serverCert.cert, ...identity } }),
    createConnectTransport({
      baseUrl: server.url,
      httpVersion: '1.1',
      nodeOptions: { ca: serverCert.cert, ...identity },
    }),
  ]) {
    const accounts = createClient(AccountService, transport);
    const { account } = await accounts.createAccount({
      idempotencyKey: key(),
      ownerRef: 'merchant:a',
      currency: 'USD',
    });
    expect(account?.id).toMatch(/^acct_/);
    // Its scopes do not include running settlements.
    const settle = await createClient(SettlementService, transport)
      .runSettlement({})
      .then(
        () => undefined,
        (error: unknown) => ConnectError.from(error),
      );
    expect(settle?.code).toBe(Code.PermissionDenied);
  }
  const keys = await server.database.query<{ principal: string }>('select distinct principal from idempotency_keys');
  expect(keys.map((row) => row.principal)).toContain('cert:backend-a');
});

it('refuses a client without a certificate, or with one from another CA, before any request', async () => {
  const before = await accountCount();
  const untrusted = await otherCa.issue('backend-a');
  for (const nodeOptions of [{ ca: serverCert.cert }, { ca: serverCert.cert, ...untrusted }]) {
    const accounts = createClient(AccountService, createGrpcTransport({ baseUrl: server.url, nodeOptions }));
    const error = await accounts
      .createAccount({ idempotencyKey: key(), ownerRef: 'intruder', currency: 'USD' }, { timeoutMs: 5_000 })
      .then(
        () => undefined,
        (caught: unknown) => ConnectError.from(caught),
      );
    expect(error).toBeDefined();
    // The TLS handshake fails, so the client reports a transport failure, never an answer from the service.
    expect([Code.Unavailable, Code.Internal, Code.Unknown, Code.Canceled]).toContain(error?.code);
  }
  expect(await accountCount()).toBe(before);
});
