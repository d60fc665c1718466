/**
 * `npm run ledger:check`: verifies the ledger in DATABASE_URL (or the embedded database in DATA_DIR) and
 * prints what it checked. Exits 1 on any violation, 2 if it could not run.
 */
import { loadDatabaseSettings } from '../src/config/database.js';
import { openDatabase } from '../src/db/client.js';
import { checkLedger } from '../src/ledger/check.js';

async function main(): Promise<number> {
  const database = await openDatabase(loadDatabaseSettings());
  try {
    const report = await checkLedger(database.db);
    for (const check of report.checks) {
      console.log(`${check.passed ? 'ok  ' : 'FAIL'} ${check.name} (${check.scope})`);
      for (const violation of check.violations) console.log(`     - ${violation}`);
    }
    console.log(report.passed ? 'ledger check passed' : 'ledger check FAILED');
    return report.passed ? 0 : 1;
  } finally {
    await database.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error('ledger check could not run:', error instanceof Error ? error.message : error);
    process.exit(2);
  },
);
