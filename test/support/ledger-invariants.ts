/**
 * The ledger's first law, checked straight from the database with the same checks as `npm run
 * ledger:check`: entries sum to zero per currency, balances equal their entries, nothing negative, every
 * payment's entries match its status, settlements add up.
 */
import { openPostgres } from '../../src/db/client.js';
import { checkLedger } from '../../src/ledger/check.js';
import type { TestDatabase } from './database.js';

export async function ledgerViolations(database: TestDatabase): Promise<string[]> {
  const connection = openPostgres({ url: database.url, poolSize: 1 });
  try {
    const report = await checkLedger(connection.db);
    return report.checks.flatMap((check) => check.violations.map((violation) => `${check.name}: ${violation}`));
  } finally {
    await connection.close();
  }
}
