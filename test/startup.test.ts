/**
 * The entry point as an operator runs it: bad configuration stops it with a message naming the variable,
 * and with no DATABASE_URL it starts on embedded PGlite, seeds demo accounts once, prints how to call it,
 * serves payments, stops cleanly on SIGTERM and finds its data again on the next start.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PaymentService, PaymentStatus } from '../gen/payment/v1/payment_pb.js';
import { withCredentials } from './support/clients.js';
import { TEST_AUTH_ENV } from './support/credentials.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { key } from './support/fixtures.js';
import {
  MAIN_ARGS,
  REPO_ROOT,
  type ServiceProcess,
  serviceEnv,
  startServiceProcess,
} from './support/service-process.js';

// Starting means compiling TypeScript through tsx and, the first time, initialising PGlite and migrating.
const START_TIMEOUT_MS = 45_000;
// SIGTERM drains and then closes; a short grace period bounds how long open client connections can hold it.
const SHUTDOWN_GRACE_MS = '2000';
const EXIT_TIMEOUT_MS = 10_000;

/** Starts the server with `env` and waits for it to exit by itself (a timeout kill gives code null). */
const startWith = (env: Record<string, string>) =>
  new Promise<{ code: number | null; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      MAIN_ARGS,
      { cwd: REPO_ROOT, env: serviceEnv(env), timeout: 30_000 },
      (error, _stdout, stderr) => resolve({ code: error ? (error.code as number | null) : 0, stderr }),
    );
  });

describe('configuration errors', () => {
  // Exits before listening, so a bad value is a failed start that names the culprit, not a half-working server.

  it.each([
    ['PORT', { PORT: 'notaport' }],
    ['DATABASE_URL', { DATABASE_URL: 'mysql://x' }],
  ])('refuses a bad %s', async (variable, env) => {
    const { code, stderr } = await startWith(env);
    expect(code).not.toBe(0);
    expect(code).not.toBeNull(); // killed by the timeout would be null: it must exit by itself
    expect(stderr).toContain(variable);
    expect(stderr).toMatch(/invalid configuration/);
  });
});

describe('settings found wrong only while starting', () => {
  // The database, the address and the port are tried, not just parsed: each failure names its setting and
  // exits 2 like a parse error, instead of "failed to start: listen EADDRINUSE" with exit 1.
  let database: TestDatabase;
  let blocker: net.Server;
  beforeAll(async () => {
    database = await createTestDatabase();
    blocker = net.createServer().listen(0, '127.0.0.1');
    await once(blocker, 'listening');
  });
  afterAll(async () => {
    blocker?.close();
    await database?.drop();
  });

  it('names HOST, PORT, METRICS_PORT or DATABASE_URL and exits 2', async () => {
    const base = Object.assign({}, TEST_AUTH_ENV, { DATABASE_URL: database.url, LOG_LEVEL: 'fatal' });
    const takenPort = String((blocker.address() as net.AddressInfo).port);
    const cases: [string, Record<string, string>][] = [
      ['HOST', { HOST: '192.0.2.1', PORT: '0' }],
      ['PORT', { PORT: takenPort }],
      ['METRICS_PORT', { PORT: '18765', METRICS_ENABLED: 'true', METRICS_PORT: '18765' }],
      ['DATABASE_URL', { DATABASE_URL: database.url.replace(/\/[^/]+$/, '/no_such_database') }],
    ];
    for (const [variable, env] of cases) {
      const { code, stderr } = await startWith(Object.assign({}, base, env));
      expect({ variable, code }).toEqual({ variable, code: 2 });
      expect(stderr).toMatch(new RegExp(`invalid configuration: ${variable} `));
      expect(stderr).not.toMatch(/^\s+at /m);
    }
  });
});

describe('embedded mode (no DATABASE_URL)', () => {
  let dataDir: string;
  let running: ServiceProcess | undefined;

  interface DemoBanner {
    url: string;
    alice: string;
    bob: string;
    headers: Record<string, string>;
    /** Tokens per demo user and the backend key, as the banner prints them. */
    tokens: Record<string, string>;
    backendKey: string;
  }

  async function start(): Promise<DemoBanner> {
    running = startServiceProcess({ DATA_DIR: dataDir, PORT: '0', SHUTDOWN_GRACE_MS });
    // The log line and the banner are written separately and in no fixed order: wait for both.
    const [, url] = await running.waitForStdout(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/, START_TIMEOUT_MS);
    const [banner] = await running.waitForStdout(/Demo accounts[\s\S]*--list-services \S+\n/, START_TIMEOUT_MS);
    const id = (name: string) => banner.match(new RegExp(`^\\s+${name}\\s+(acct_[0-9a-z]{26})\\s`, 'm'))?.[1];
    // The curl example's headers are what a client must send; use them rather than our own idea of them.
    const curl = banner.match(/curl -s (.*?)\\\n/)?.[1] ?? '';
    const headers = Object.fromEntries([...curl.matchAll(/-H '([^:]+): ([^']+)'/g)].map(([, n, v]) => [n!, v!]));
    expect(headers).toMatchObject({ 'Content-Type': 'application/json', 'Connect-Protocol-Version': '1' });
    expect(banner).toContain(`${url}/payment.v1.PaymentService/AuthorizePayment`);
    const alice = id('alice');
    const bob = id('bob');
    expect(alice).toBeDefined();
    expect(bob).toBeDefined();
    const token = (name: string) => banner.match(new RegExp(`^\\s+${name}\\s+Authorization: Bearer (\\S+)`, 'm'))?.[1];
    const backendKey = banner.match(/x-api-key: (plk_\S+)/)?.[1];
    expect(token('alice')).toBeDefined();
    expect(backendKey).toBeDefined();
    return {
      url: url!,
      alice: alice!,
      bob: bob!,
      headers,
      tokens: { alice: token('alice')!, bob: token('bob')! },
      backendKey: backendKey!,
    };
  }

  async function stop(): Promise<void> {
    const code = await running!.stop('SIGTERM', EXIT_TIMEOUT_MS);
    running = undefined;
    expect(code).toBe(0);
  }

  /** As the banner's curl example does it, with alice's token unless other headers are given. */
  async function postJson<T>(demo: DemoBanner, method: string, body: object, headers = demo.headers): Promise<T> {
    const response = await fetch(`${demo.url}/payment.v1.PaymentService/${method}`, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as T;
  }

  // Connect JSON writes int64 as a string. Read as the backend, which may read any account.
  const available = async (demo: DemoBanner, accountId: string) =>
    (
      await postJson<{ balance: { available: { amountMinor: string } } }>(
        demo,
        'GetAccountBalance',
        { accountId },
        { 'Content-Type': 'application/json', 'Connect-Protocol-Version': '1', 'x-api-key': demo.backendKey },
      )
    ).balance.available.amountMinor;

  // A DATA_DIR per test, so each starts from nothing and the tests run in any order.
  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'ledger-embedded-'));
  });
  afterEach(async () => {
    // A failed test must not leave a server running in the background.
    running?.kill();
    running = undefined;
    await rm(dataDir, { recursive: true, force: true });
  });

  it('seeds demo accounts, serves Connect JSON and gRPC, and exits 0 on SIGTERM', async () => {
    const first = await start();
    expect(first.alice).not.toBe(first.bob);
    expect(await available(first, first.alice)).toBe('100000');

    // As the banner's curl example does it: Connect JSON over HTTP/1.1.
    const viaJson = await postJson<{ payment: { status: string } }>(first, 'AuthorizePayment', {
      idempotencyKey: key('embedded-json'),
      payerAccountId: first.alice,
      payeeAccountId: first.bob,
      amount: { amountMinor: '1250', currency: 'USD' },
      description: 'lunch',
    });
    expect(viaJson.payment.status).toBe('PAYMENT_STATUS_COMPLETED');

    // And over gRPC (HTTP/2 cleartext) on the same port, still as alice with her banner token.
    const payments = createClient(
      PaymentService,
      createGrpcTransport({ baseUrl: first.url, interceptors: [withCredentials({ token: first.tokens.alice })] }),
    );
    const { payment } = await payments.authorizePayment({
      idempotencyKey: key('embedded-grpc'),
      payerAccountId: first.alice,
      payeeAccountId: first.bob,
      amount: { amountMinor: 250n, currency: 'USD' },
    });
    expect(PaymentStatus[payment!.status]).toBe('COMPLETED');

    const { balance } = await payments.getAccountBalance({ accountId: first.alice });
    expect(balance?.available?.amountMinor).toBe(100_000n - 1_500n);
    expect(await available(first, first.bob)).toBe(String(5_000 + 1_500));

    await stop();
  });

  it('restarts on the same DATA_DIR with the same demo accounts and the data written before', async () => {
    const first = await start();
    const paid = await postJson<{ payment: { status: string } }>(first, 'AuthorizePayment', {
      idempotencyKey: key('embedded-before-restart'),
      payerAccountId: first.alice,
      payeeAccountId: first.bob,
      amount: { amountMinor: '1500', currency: 'USD' },
    });
    expect(paid.payment.status).toBe('PAYMENT_STATUS_COMPLETED');
    await stop();

    const second = await start();
    // Seeding again replayed the same accounts instead of creating new ones...
    expect({ alice: second.alice, bob: second.bob }).toEqual({ alice: first.alice, bob: first.bob });
    // ...and did not deposit again: balances are where the first run left them.
    expect(await available(second, second.alice)).toBe(String(100_000 - 1_500));
    expect(await available(second, second.bob)).toBe(String(5_000 + 1_500));
    await stop();
  });
});
