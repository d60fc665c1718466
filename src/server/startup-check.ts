/**
 * The ledger check run before the server serves: a server must not take payments on books that do not
 * balance (e.g. after the embedded data directory was written by two processes at once, or restored from a
 * bad copy). Refused unless the operator says otherwise (ALLOW_UNBALANCED_LEDGER=true), and then every
 * violation is logged at error level so that nobody mistakes the start for a healthy one.
 */
import type { LedgerDb } from '../db/client.js';
import { checkLedger } from '../ledger/check.js';

export interface StartupCheckLogger {
  info(details: object, message: string): void;
  error(details: object, message: string): void;
}

/** The ledger check failed at start-up and the operator did not allow serving anyway. */
export class UnbalancedLedgerError extends Error {
  constructor(readonly violations: string[]) {
    super(
      `the ledger check failed at start-up (${violations.length} violations, e.g. ${violations[0] ?? 'none listed'}); ` +
        'refusing to serve. Inspect with `npm run ledger:check`; to serve anyway set ALLOW_UNBALANCED_LEDGER=true',
    );
    this.name = 'UnbalancedLedgerError';
  }
}

/**
 * Runs the ledger check. Resolves when it passes, or when it fails and `allowUnbalanced` is set (after
 * logging each violation); otherwise rejects with UnbalancedLedgerError.
 */
export async function checkLedgerAtStart(
  db: LedgerDb,
  allowUnbalanced: boolean,
  log: StartupCheckLogger,
): Promise<void> {
  const started = performance.now();
  const report = await checkLedger(db);
  const durationMs = Math.round(performance.now() - started);
  if (report.passed) {
    log.info({ durationMs, checks: report.checks.map((check) => check.scope) }, 'ledger check passed at start-up');
    return;
  }
  const violations = report.checks.flatMap((check) => check.violations.map((found) => `${check.name}: ${found}`));
  if (!allowUnbalanced) throw new UnbalancedLedgerError(violations);
  for (const violation of violations) log.error({ violation }, 'LEDGER CHECK FAILED at start-up');
  log.error(
    { violations: violations.length },
    'SERVING A LEDGER THAT FAILS ITS CHECK because ALLOW_UNBALANCED_LEDGER=true; balances may be wrong',
  );
}
