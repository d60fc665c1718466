/**
 * A database that disappears under a running server (dropped, or a replica pointed at a database that does
 * not exist) is UNAVAILABLE on every protocol, never INTERNAL: the request may be retried once it is back.
 * An outside probe dropped the database with (force) and every RPC answered "internal error".
 */
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type RunningService, startService } from '../src/server/start.js';
import { clientsFor, PROTOCOLS } from './support/clients.js';
import { registerBackendKey } from './support/credentials.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { openAccount } from './support/fixtures.js';
import { testConfig } from './support/server.js';

let database: TestDatabase;
let service: RunningService;
let apiKey: string;
let dropped = false;

beforeAll(async () => {
  database = await createTestDatabase();
  // A key cached by the server: the first refusal then comes from the handler's own query, not the key lookup.
  service = await startService(testConfig(database.url, { LOG_LEVEL: 'fatal' }));
  apiKey = await registerBackendKey(service);
});
afterAll(async () => {
  await service?.close();
  if (!dropped) await database?.drop();
});

it('answers UNAVAILABLE on every protocol once its database is dropped', async () => {
  const accountId = await openAccount(clientsFor('connect-json', service.url, { apiKey }));
  await database.drop();
  dropped = true;
  for (const protocol of PROTOCOLS) {
    const clients = clientsFor(protocol, service.url, { apiKey });
    for (const call of [
      () => clients.payments.getAccountBalance({ accountId }),
      () => clients.accounts.createAccount({ idempotencyKey: `k-${protocol}`, ownerRef: 'user:x', currency: 'USD' }),
    ]) {
      const error = await call().then(
        () => undefined,
        (caught: unknown) => ConnectError.from(caught),
      );
      expect({ protocol, code: error && Code[error.code] }).toEqual({ protocol, code: 'Unavailable' });
      expect(error?.rawMessage).not.toMatch(/select|insert|database ".*" does not exist|3D000/i);
    }
  }
});
