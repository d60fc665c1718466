/**
 * PostgreSQL reports failures by SQLSTATE. Drizzle wraps driver errors (keeping the original as `cause`),
 * so look through a few levels of causes for the code.
 */
const MAX_CAUSE_DEPTH = 5;

export function sqlStateOf(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

export const SqlState = {
  serializationFailure: '40001',
  deadlockDetected: '40P01',
  lockNotAvailable: '55P03',
  queryCanceled: '57014',
  uniqueViolation: '23505',
  checkViolation: '23514',
} as const;

/** Failures where running the same transaction again is safe and likely to succeed. */
export function isRetryable(error: unknown): boolean {
  const state = sqlStateOf(error);
  return state === SqlState.serializationFailure || state === SqlState.deadlockDetected;
}

/** node-postgres's pool gave up waiting for a free connection (it sets no code, only this message). */
const POOL_WAIT_TIMEOUT_MESSAGE = 'timeout exceeded when trying to connect';

/** Whether `error` (or one of its causes) is a pool connection wait that timed out: the pool, not the query. */
export function isPoolWaitTimeout(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH && current; depth++) {
    if (current instanceof Error && current.message === POOL_WAIT_TIMEOUT_MESSAGE) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}
