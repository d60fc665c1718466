/**
 * The start-up ledger check with PostgreSQL: off by default (it scans every entry on every replica's start),
 * and when turned on (LEDGER_CHECK_ON_START=true) a ledger that fails it is not served. The embedded mode,
 * where it is on by default, is covered by test/data-dir-lock.test.ts.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startService } from '../src/server/start.js';
import { UnbalancedLedgerError } from '../src/server/startup-check.js';
import { clientsFor } from './support/clients.js';
import { fundedAccount } from './support/fixtures.js';
import { startTestServer, type TestServer, testConfig } from './support/server.js';

let server: TestServer;
let accountId: string;

beforeAll(async () => {
  server = await startTestServer({ LEDGER_CHECK_ON_START: 'true' });
  accountId = await fundedAccount(clientsFor('grpc', server.url), 10_000n);
  await server.service.close();
});

afterAll(async () => {
  await server?.database.drop();
});

it('starts on a balanced ledger with the check on, and refuses one whose stored balance disagrees', async () => {
  const checked = await startService(testConfig(server.database.url, { LEDGER_CHECK_ON_START: 'true' }));
  await checked.close();

  await server.database.query('update account_balances set posted_minor = posted_minor + 1 where account_id = $1', [
    accountId,
  ]);
  const refused = startService(testConfig(server.database.url, { LEDGER_CHECK_ON_START: 'true' }));
  await expect(refused).rejects.toBeInstanceOf(UnbalancedLedgerError);
  await expect(refused).rejects.toThrow(new RegExp(`balances_equal_their_entries: ${accountId}`));

  const allowed = await startService(
    testConfig(server.database.url, { LEDGER_CHECK_ON_START: 'true', ALLOW_UNBALANCED_LEDGER: 'true' }),
  );
  await allowed.close();
  // Off by default with PostgreSQL: the server starts, and `npm run ledger:check` is the operator's tool.
  const unchecked = await startService(testConfig(server.database.url));
  await unchecked.close();
}, 120_000);
