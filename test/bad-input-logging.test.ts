/**
 * Undecodable requests are the client's fault: they get INVALID_ARGUMENT and no error-level log line, so an
 * unauthenticated client cannot flood the log (issue 12 item 2; Health/Watch used to log one per request).
 * The real entry point runs as a child process so that its log output can be read.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TEST_AUTH_ENV } from './support/credentials.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { frame, grpcStatusOf, h2Call } from './support/raw-calls.js';
import { type ServiceProcess, startServiceProcess } from './support/service-process.js';

const START_TIMEOUT_MS = 60_000;
const EXIT_TIMEOUT_MS = 30_000;
const BAD_REQUESTS = 10;
const TRUNCATED = frame(Buffer.from([0x0a]));
const ERROR_LEVEL = /"level":(50|60)/;

let database: TestDatabase;
let running: ServiceProcess | undefined;
let url: string;

beforeAll(async () => {
  database = await createTestDatabase();
  running = startServiceProcess({
    ...TEST_AUTH_ENV,
    DATABASE_URL: database.url,
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    SEED_DEMO_DATA: 'false',
    RATE_LIMIT_ENABLED: 'false',
  });
  [, url] = (await running.waitForStdout(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/, START_TIMEOUT_MS)) as [string, string];
}, START_TIMEOUT_MS + 10_000);

afterAll(async () => {
  running?.kill();
  await database?.drop();
});

it('answers undecodable requests INVALID_ARGUMENT without logging an error for any of them', async () => {
  const grpc = { 'content-type': 'application/grpc', te: 'trailers' };
  for (let i = 0; i < BAD_REQUESTS; i++) {
    for (const [path, body] of [
      ['/grpc.health.v1.Health/Watch', TRUNCATED],
      ['/grpc.health.v1.Health/Check', TRUNCATED],
      ['/grpc.health.v1.Health/Watch', Buffer.from([0, 0, 0, 0, 1])],
      ['/grpc.health.v1.Health/Watch', frame(Buffer.from([0x1f, 0x8b]), 1)],
    ] as const) {
      const headers = body[0] === 1 ? { ...grpc, 'grpc-encoding': 'gzip' } : grpc;
      expect(grpcStatusOf(await h2Call(url, path, headers, body)).code).toBe(3);
    }
  }
  // Everything is in the log once the process has exited.
  expect(await running!.stop('SIGTERM', EXIT_TIMEOUT_MS)).toBe(0);
  const errorLines = running!
    .stdout()
    .split('\n')
    .filter((line) => ERROR_LEVEL.test(line));
  running = undefined;
  expect(errorLines).toEqual([]);
});
