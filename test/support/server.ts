/** Starts the real service in-process on a free port against a fresh test database. */
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { type Config, loadConfig } from '../../src/config.js';
import { type RunningService, startService } from '../../src/server/start.js';
import { registerBackendKey, TEST_AUTH_ENV } from './credentials.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { ledgerViolations } from './ledger-invariants.js';

export interface TestServer {
  service: RunningService;
  database: TestDatabase;
  url: string;
  /** A backend key with every scope; clients for this server use it unless told otherwise. */
  backendKey: string;
  stop(): Promise<void>;
}

export function testConfig(databaseUrl: string, overrides: Record<string, string> = {}): Config {
  return loadConfig({
    DATABASE_URL: databaseUrl,
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'silent',
    SEED_DEMO_DATA: 'false',
    // Tests fire many requests quickly from 127.0.0.1; the rate limit's own tests turn it on.
    RATE_LIMIT_ENABLED: 'false',
    ...TEST_AUTH_ENV,
    ...overrides,
  });
}

/** A second instance on an existing test database (replicas sharing one database). */
export async function startTestReplica(databaseUrl: string, overrides: Record<string, string> = {}) {
  const service = await startService(testConfig(databaseUrl, overrides));
  await registerBackendKey(service);
  return service;
}

export async function startTestServer(overrides: Record<string, string> = {}): Promise<TestServer> {
  const database = await createTestDatabase();
  const service = await startService(testConfig(database.url, overrides));
  const backendKey = await registerBackendKey(service);
  return {
    service,
    database,
    url: service.url,
    backendKey,
    stop: async () => {
      await service.close();
      await database.drop();
    },
  };
}

/**
 * One server for the tests of a file: registers the hooks that start it (startTestServer with `overrides`)
 * before the file's first test and stop it after its last. With `checkLedgerAfterEach`, the ledger's
 * invariants are checked after every test, so a test that unbalances it fails itself, in any order. Call
 * once at a file's top level; read the returned server inside tests and hooks only (it throws before start).
 */
export function serverForFile(
  overrides: Record<string, string> = {},
  options: { checkLedgerAfterEach?: boolean } = {},
): TestServer {
  let started: TestServer | undefined;
  const current = (): TestServer => {
    if (!started) throw new Error('serverForFile: the server is read before the file started it (beforeAll)');
    return started;
  };
  beforeAll(async () => {
    started = await startTestServer(overrides);
  });
  afterAll(async () => {
    await started?.stop();
  });
  if (options.checkLedgerAfterEach) {
    afterEach(async () => {
      expect(await ledgerViolations(current().database)).toEqual([]);
    });
  }
  return {
    get service() {
      return current().service;
    },
    get database() {
      return current().database;
    },
    get url() {
      return current().url;
    },
    get backendKey() {
      return current().backendKey;
    },
    stop: () => current().stop(),
  };
}
