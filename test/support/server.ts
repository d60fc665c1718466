/** Starts the real service in-process on a free port against a fresh test database. */
import { type Config, loadConfig } from '../../src/config.js';
import { type RunningService, startService } from '../../src/server/service.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export interface TestServer {
  service: RunningService;
  database: TestDatabase;
  url: string;
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
    ...overrides,
  });
}

export async function startTestServer(overrides: Record<string, string> = {}): Promise<TestServer> {
  const database = await createTestDatabase();
  const service = await startService(testConfig(database.url, overrides));
  return {
    service,
    database,
    url: service.url,
    stop: async () => {
      await service.close();
      await database.drop();
    },
  };
}
