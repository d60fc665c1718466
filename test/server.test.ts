/**
 * The server as deployed: probes, every protocol and HTTP version on the one port, CORS, request limits,
 * what clients see when something breaks inside, graceful shutdown and TLS. Real server, real PostgreSQL.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Code, createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Health, HealthCheckResponse_ServingStatus } from '../gen/grpc/health/v1/health_pb.js';
import { PaymentStatus } from '../gen/payment/v1/payment_pb.js';
import { asBackend, clientsOver, connectErrorOf, holdAuthorizations, payment } from './support/calls.js';
import { clientsFor } from './support/clients.js';
import { credentialHeaders, defaultCredentialsFor } from './support/credentials.js';
import { availableOf, fundedAccount, openAccount } from './support/fixtures.js';
import { createSelfSignedCert, type SelfSignedCert } from './support/self-signed-cert.js';
import { startTestServer, type TestServer } from './support/server.js';
import { within } from './support/waits.js';

const run = promisify(execFile);
const bufBinary = fileURLToPath(new URL('../node_modules/.bin/buf', import.meta.url));
const AUTHORIZE_PATH = '/payment.v1.PaymentService/AuthorizePayment';
const LEAK_MARKERS = ['payments', 'select', 'insert', 'Failed query', 'at ', '.ts'];
// Shutdown tests run with a 5 s grace period and require close() within 4 s: that bound separates "drained and
// closed" from "waited out the grace period, then cut connections".
const GRACE = { SHUTDOWN_GRACE_MS: '5000' };
const PROMPTLY_MS = 4_000;

/**
 * Servers that are not testing shutdown get a short grace period: test clients leave HTTP/1.1 keep-alive
 * connections open, and those currently hold close() for the whole grace period (see "graceful shutdown").
 */
const startServer = (overrides: Record<string, string> = {}) =>
  startTestServer({ SHUTDOWN_GRACE_MS: '1000', ...overrides });

async function closeTimed(target: TestServer): Promise<number> {
  const started = performance.now();
  await within(target.service.close(), PROMPTLY_MS, 'service.close()');
  return performance.now() - started;
}

let cert: SelfSignedCert;
let server: TestServer;
let accountId: string;
beforeAll(async () => {
  cert = await createSelfSignedCert();
  server = await startServer();
  accountId = await fundedAccount(clientsFor('grpc', server.url), 4_200n);
});
afterAll(async () => {
  await server?.stop();
  await cert?.remove();
});

describe('probes', () => {
  it('answers /healthz and /readyz over HTTP/1.1', async () => {
    const live = await fetch(`${server.url}/healthz`);
    expect(live.status).toBe(200);
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ database: 'ok' });
  });

  it('reports SERVING through the gRPC health service', async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    const { status } = await health.check({ service: '' });
    expect(HealthCheckResponse_ServingStatus[status]).toBe('SERVING');
  });
});

describe('one cleartext port, every protocol and HTTP version', () => {
  it.each([
    [
      'Connect JSON over HTTP/2',
      () => createConnectTransport({ baseUrl: server.url, interceptors: asBackend(server.url), httpVersion: '2' }),
    ],
    [
      'Connect JSON over HTTP/1.1',
      () => createConnectTransport({ baseUrl: server.url, interceptors: asBackend(server.url), httpVersion: '1.1' }),
    ],
    [
      'gRPC-Web over HTTP/2',
      () => createGrpcWebTransport({ baseUrl: server.url, interceptors: asBackend(server.url), httpVersion: '2' }),
    ],
  ])('%s', async (_name, transport) => {
    expect(await availableOf(clientsOver(transport()), accountId)).toBe(4_200n);
  });

  it('lists both services to buf curl through reflection over h2c', async () => {
    const args = ['curl', '--http2-prior-knowledge', '--list-services', server.url];
    const { stdout } = await run(bufBinary, args, { timeout: 30_000 });
    const services = stdout.split('\n').map((line) => line.trim());
    expect(services).toContain('payment.v1.PaymentService');
    expect(services).toContain('payment.v1.AccountService');
  });

  it('refuses a Connect JSON POST without Connect-Protocol-Version', async () => {
    const response = await fetch(`${server.url}/payment.v1.PaymentService/GetAccountBalance`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ accountId }),
    });
    // Connect answers 400 with code invalid_argument (not 415 or a gRPC status).
    expect(response.status).toBe(400);
    const body = (await response.json()) as { code: string; message: string };
    expect(body.code).toBe('invalid_argument');
    expect(body.message).toMatch(/Connect-Protocol-Version/);
  });
});

describe('CORS for configured browser origins', () => {
  const origin = 'https://wallet.example';
  let corsServer: TestServer;
  beforeAll(async () => {
    corsServer = await startServer({ CORS_ORIGINS: origin });
  });
  afterAll(async () => {
    await corsServer?.stop();
  });

  const preflight = (from: string) =>
    fetch(`${corsServer.url}${AUTHORIZE_PATH}`, {
      method: 'OPTIONS',
      headers: {
        origin: from,
        'access-control-request-method': 'POST',
        'access-control-request-headers':
          'content-type,connect-protocol-version,x-grpc-web,authorization,x-api-key,traceparent,tracestate',
      },
    });
  const list = (value: string | null) => (value ?? '').toLowerCase().split(/,\s*/);

  it('lets the configured origin send Connect, gRPC-Web and authorization headers', async () => {
    const response = await preflight(origin);
    expect(response.status).toBeLessThan(300);
    expect(response.headers.get('access-control-allow-origin')).toBe(origin);
    expect(response.headers.get('access-control-allow-methods')).toMatch(/POST/);
    expect(list(response.headers.get('access-control-allow-headers'))).toEqual(
      expect.arrayContaining([
        'content-type',
        'connect-protocol-version',
        'x-grpc-web',
        'authorization',
        'x-api-key',
        'traceparent',
        'tracestate',
      ]),
    );
  });

  // Expose-Headers matters on the actual response (a preflight's is ignored by browsers).
  it('lets the configured origin read grpc-status, grpc-message and idempotent-replayed', async () => {
    const response = await fetch(`${corsServer.url}/payment.v1.PaymentService/GetAccountBalance`, {
      method: 'POST',
      headers: {
        origin,
        'content-type': 'application/json',
        'connect-protocol-version': '1',
        ...credentialHeaders(defaultCredentialsFor(corsServer.url)),
      },
      body: JSON.stringify({ accountId: 'acct_unknown' }),
    });
    expect(response.headers.get('access-control-allow-origin')).toBe(origin);
    expect(list(response.headers.get('access-control-expose-headers'))).toEqual(
      expect.arrayContaining(['grpc-status', 'grpc-message', 'idempotent-replayed']),
    );
  });

  it('does not allow any other origin', async () => {
    const response = await preflight('https://evil.example');
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('request size limit', () => {
  let limited: TestServer;
  beforeAll(async () => {
    limited = await startServer({ REQUEST_BODY_MAX_BYTES: '2048' });
  });
  afterAll(async () => {
    await limited?.stop();
  });

  // Refused from its declared length before authentication, or while it is read when no length is declared:
  // either way before validation (which would say INVALID_ARGUMENT for a description over 500 characters)
  // and before anything touches the ledger.
  it.each(['connect-json', 'grpc-web', 'grpc'] as const)(
    'answers RESOURCE_EXHAUSTED over %s and writes nothing',
    async (protocol) => {
      const clients = clientsFor(protocol, limited.url);
      const pay = await payment(clients);
      const count = async () =>
        (await limited.database.query<{ n: number }>('select count(*)::int as n from payments'))[0]?.n;
      const before = await count();
      const error = await connectErrorOf(pay({ description: 'x'.repeat(10_000) }));
      expect(Code[error.code]).toBe(Code[Code.ResourceExhausted]);
      expect(error.rawMessage).toMatch(/larger than (the limit of|configured readMaxBytes) 2048/);
      expect(await count()).toBe(before);
    },
  );
});

describe('internal details never reach clients', () => {
  let broken: TestServer;
  beforeAll(async () => {
    broken = await startServer();
  });
  afterAll(async () => {
    await broken?.stop();
  });

  it.each(['connect-json', 'grpc'] as const)('answers INTERNAL "internal error" over %s', async (protocol) => {
    const pay = await payment(clientsFor(protocol, broken.url));
    // A real failure from PostgreSQL, whose driver error names the SQL and the missing table.
    await broken.database.query('alter table payments rename to payments_gone');
    try {
      const error = await connectErrorOf(pay());
      expect(Code[error.code]).toBe(Code[Code.Internal]);
      expect(error.rawMessage).toBe('internal error');
      for (const marker of LEAK_MARKERS) expect(error.rawMessage).not.toContain(marker);
    } finally {
      await broken.database.query('alter table payments_gone rename to payments');
    }
    // The same request works once the table is back: the failure was the one we caused.
    expect(PaymentStatus[(await pay()).payment!.status]).toBe('COMPLETED');
  });
});

// Each test owns its server (close() ends it), so they run concurrently.
describe.concurrent('graceful shutdown', () => {
  it('lets requests already in flight over HTTP/1.1 and HTTP/2 finish', async ({ expect }) => {
    const target = await startTestServer(GRACE);
    try {
      const [json, grpc] = [clientsFor('connect-json', target.url), clientsFor('grpc', target.url)];
      const [payJson, payGrpc] = [await payment(json), await payment(grpc)];
      // A raw HTTP/2 session of our own shows the server's GOAWAY: proof that shutdown has begun.
      const session = http2.connect(target.url);
      const goaway = once(session, 'goaway');
      const probe = session.request({ ':path': '/healthz' });
      probe.resume();
      expect((await once(probe, 'response'))[0][':status']).toBe(200);

      const hold = holdAuthorizations(target, 2);
      const inFlight = Promise.all([payJson(), payGrpc()]);
      await hold.arrived;
      const closed = target.service.close();
      await within(goaway, PROMPTLY_MS, 'GOAWAY on the idle HTTP/2 session');
      hold.release();
      for (const { payment: paid } of await within(inFlight, PROMPTLY_MS, 'in-flight requests')) {
        expect(PaymentStatus[paid!.status]).toBe('COMPLETED');
      }
      session.destroy();
      await closed;
    } finally {
      await target.stop();
    }
  });

  it('closes an idle gRPC (HTTP/2) session at once', async ({ expect }) => {
    const target = await startTestServer(GRACE);
    try {
      await openAccount(clientsFor('grpc', target.url));
      expect(await closeTimed(target)).toBeLessThan(PROMPTLY_MS);
    } finally {
      await target.stop();
    }
  });

  // Connections the sniffer hands to the HTTP/1.1 server are invisible to Node's own idle tracking.
  it('closes an idle HTTP/1.1 keep-alive connection at once', async ({ expect }) => {
    const target = await startTestServer(GRACE);
    const agent = new http.Agent({ keepAlive: true });
    try {
      const json = clientsOver(
        createConnectTransport({
          baseUrl: target.url,
          interceptors: asBackend(target.url),
          httpVersion: '1.1',
          nodeOptions: { agent },
        }),
      );
      await openAccount(json);
      expect(Object.values(agent.freeSockets).flat()).toHaveLength(1);
      expect(await closeTimed(target)).toBeLessThan(PROMPTLY_MS);
    } finally {
      agent.destroy();
      await target.stop();
    }
  });

  // A request already in flight when shutdown starts must not leave its keep-alive socket open afterwards.
  it('closes an HTTP/1.1 connection once the request in flight on it is answered', async ({ expect }) => {
    const target = await startTestServer(GRACE);
    const agent = new http.Agent({ keepAlive: true });
    try {
      const json = clientsOver(
        createConnectTransport({
          baseUrl: target.url,
          interceptors: asBackend(target.url),
          httpVersion: '1.1',
          nodeOptions: { agent },
        }),
      );
      const pay = await payment(json);
      const hold = holdAuthorizations(target, 1);
      // The agent's one connection is busy, not idle, when close() starts.
      const inFlight = pay();
      await hold.arrived;
      const started = performance.now();
      const closed = within(target.service.close(), PROMPTLY_MS, 'service.close()');
      hold.release();
      expect(PaymentStatus[(await inFlight).payment!.status]).toBe('COMPLETED');
      await closed;
      expect(performance.now() - started).toBeLessThan(PROMPTLY_MS);
    } finally {
      agent.destroy();
      await target.stop();
    }
  });

  // With TLS, HTTP/1.1 is served by the HTTP/2 server's allowHTTP1 fallback, which Node does not track either.
  it('closes an idle HTTP/1.1 keep-alive connection over TLS at once', async ({ expect }) => {
    const target = await startTestServer({ ...GRACE, TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile });
    const agent = new https.Agent({ keepAlive: true, ca: cert.cert });
    try {
      const web = createGrpcWebTransport({
        baseUrl: target.url,
        interceptors: asBackend(target.url),
        httpVersion: '1.1',
        nodeOptions: { agent },
      });
      await openAccount(clientsOver(web));
      expect(Object.values(agent.freeSockets).flat()).toHaveLength(1);
      expect(await closeTimed(target)).toBeLessThan(PROMPTLY_MS);
    } finally {
      agent.destroy();
      await target.stop();
    }
  });
});

describe('TLS on one port', () => {
  let secure: TestServer;
  let tlsAccount: string;
  beforeAll(async () => {
    secure = await startServer({ TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile });
    expect(secure.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const grpc = clientsOver(
      createGrpcTransport({ baseUrl: secure.url, interceptors: asBackend(secure.url), nodeOptions: { ca: cert.cert } }),
    );
    tlsAccount = await fundedAccount(grpc, 777n);
  });
  afterAll(async () => {
    await secure?.stop();
  });

  it('serves native gRPC over HTTP/2 (ALPN h2)', async () => {
    const transport = createGrpcTransport({
      baseUrl: secure.url,
      interceptors: asBackend(secure.url),
      nodeOptions: { ca: cert.cert },
    });
    expect(await availableOf(clientsOver(transport), tlsAccount)).toBe(777n);
  });

  it('serves gRPC-Web over HTTP/1.1', async () => {
    const transport = createGrpcWebTransport({
      baseUrl: secure.url,
      interceptors: asBackend(secure.url),
      httpVersion: '1.1',
      nodeOptions: { ca: cert.cert },
    });
    expect(await availableOf(clientsOver(transport), tlsAccount)).toBe(777n);
  });

  it('serves Connect JSON over HTTP/1.1 to a plain HTTPS client', async () => {
    const { status, httpVersion, body } = await new Promise<{ status?: number; httpVersion: string; body: string }>(
      (resolve, reject) => {
        const request = https.request(
          `${secure.url}/payment.v1.PaymentService/GetAccountBalance`,
          {
            method: 'POST',
            ca: cert.cert,
            agent: false,
            timeout: 10_000,
            headers: {
              'content-type': 'application/json',
              'connect-protocol-version': '1',
              ...credentialHeaders(defaultCredentialsFor(secure.url)),
            },
          },
          (response) => {
            let text = '';
            response.setEncoding('utf8');
            response.on('data', (chunk: string) => {
              text += chunk;
            });
            response.on('end', () =>
              resolve({ status: response.statusCode, httpVersion: response.httpVersion, body: text }),
            );
          },
        );
        request.on('timeout', () => request.destroy(new Error('timed out')));
        request.on('error', reject);
        request.end(JSON.stringify({ accountId: tlsAccount }));
      },
    );
    expect(status).toBe(200);
    expect(httpVersion).toBe('1.1');
    expect(JSON.parse(body)).toMatchObject({ balance: { accountId: tlsAccount, available: { amountMinor: '777' } } });
  });
});
