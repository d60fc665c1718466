/** Starts the real service in-process on a free port against a fresh test database. */
import { type Config, loadConfig } from '../../src/config.js';
import { type RunningService, startService } from '../../src/server/start.js';
import { registerBackendKey, TEST_AUTH_ENV } from './credentials.js';
import { createTestDatabase, type TestDatabase } from './database.js';

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
