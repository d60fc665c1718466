/**
 * `npm run ledger:check`: verifies the ledger in DATABASE_URL (or the embedded database in DATA_DIR) and
 * prints what it checked. Exits 1 on any violation, 2 if it could not run. Takes no arguments: any is refused
 * with a usage line (exit 2).
 */
import { loadDatabaseSettings } from '../src/config/database.js';
import { openDatabase } from '../src/db/client.js';
import { checkLedger } from '../src/ledger/check.js';
import { exitOnUsageError, strictArgs } from './cli.js';

const USAGE = 'usage: npm run -s ledger:check (no arguments; DATABASE_URL, else DATA_DIR, names the database)';

/** Refuses any argument (an unknown flag or a positional one) with one line and the usage, exit 2. */
function refuseArguments(argv: string[]): void {
  try {
    strictArgs({ args: argv, allowPositionals: false, options: {} });
  } catch (error) {
    exitOnUsageError('ledger:check', USAGE, error);
    throw error;
  }
}

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

refuseArguments(process.argv.slice(2));
main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error('ledger check could not run:', error instanceof Error ? error.message : error);
    process.exit(2);
  },
);
