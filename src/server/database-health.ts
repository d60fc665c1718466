/**
 * Whether the database answers, for both readiness probes. /readyz asks on each call. gRPC health learns it
 * from a periodic check, so a Health/Check never waits on I/O: each ledger service's entry is SERVING while
 * the database answers and NOT_SERVING while it does not, and the overall entry ("") stays the liveness
 * answer, like /healthz (a probe that restarts the process would not bring the database back).
 */
import { LEDGER_SERVICES } from '../contract.js';
import type { Database } from '../db/client.js';
import { type HealthStatusBoard, ServingStatus } from '../grpc/health.js';
import { type Periodic, type PeriodicLogger, startPeriodic } from './periodic.js';

/** How long a readiness ping may take before the database counts as unreachable. */
export const READY_CHECK_TIMEOUT_MS = 2_000;
/** How often gRPC health re-checks the database: the bound on how stale its answer is. */
const DATABASE_HEALTH_INTERVAL_MS = 2_000;

/** `promise`, or a rejection once `timeoutMs` has passed. */
export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Keeps the ledger services' gRPC health in step with the database (see the module comment). */
export function startDatabaseHealth(
  database: Pick<Database, 'ping'>,
  health: HealthStatusBoard,
  logger: PeriodicLogger,
): Periodic {
  return startPeriodic(
    'database health',
    DATABASE_HEALTH_INTERVAL_MS,
    async () => {
      const answers = await withTimeout(database.ping(), READY_CHECK_TIMEOUT_MS).then(
        () => true,
        () => false,
      );
      const status = answers ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
      for (const service of LEDGER_SERVICES) health.set(service.typeName, status);
    },
    logger,
  );
}
