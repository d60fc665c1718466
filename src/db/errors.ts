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

// Node's socket errors when the database cannot be reached or drops the connection.
const CONNECTION_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
// SQLSTATEs of a database that cannot serve now, through no fault of the query: down, starting or shutting
// down (57P01–57P03); out of connection slots, memory or disk (53xxx); gone or not ours to use: dropped or
// misnamed (3D000), a role refused (28000, 28P01); a standby after a failover (25006, read-only).
const UNAVAILABLE_SQLSTATES = new Set([
  '57P01',
  '57P02',
  '57P03',
  '53000',
  '53100',
  '53200',
  '53300',
  '3D000',
  '28000',
  '28P01',
  '25006',
]);
// node-postgres reports a lost or never-made connection by message only.
const CONNECTION_MESSAGES = [
  /connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /connection timeout/i,
  // A client whose connection broke mid-transaction refuses the ROLLBACK that follows with this.
  /client has encountered a connection error/i,
];

/**
 * True when `error` (or one of its causes) says the database is unreachable rather than that a query was
 * wrong: callers answer UNAVAILABLE, which clients retry, instead of INTERNAL.
 */
export function isConnectionFailure(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH && current; depth++) {
    const { code, message, errors } = current as { code?: unknown; message?: unknown; errors?: unknown };
    if (typeof code === 'string' && (CONNECTION_ERRNOS.has(code) || UNAVAILABLE_SQLSTATES.has(code))) return true;
    if (typeof code === 'string' && /^08[0-9A-Z]{3}$/.test(code)) return true;
    if (typeof message === 'string' && CONNECTION_MESSAGES.some((pattern) => pattern.test(message))) return true;
    // An AggregateError from trying several addresses (IPv4 and IPv6).
    if (
      Array.isArray(errors) &&
      errors.some((inner) => CONNECTION_ERRNOS.has((inner as { code?: string })?.code ?? ''))
    ) {
      return true;
    }
    current = (current as { cause?: unknown }).cause;
  }
  return false;
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
