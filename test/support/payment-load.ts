/**
 * Payments under faults: a bounded stream of AuthorizePayment calls, each under its own idempotency key and
 * tagged with it (the description), retried with the same key until answered, the way a careful client
 * behaves. Afterwards `paymentLoadProblems` checks the database: every request, acknowledged at once or only
 * after retries, made exactly one payment, and the one its answer named.
 */
import { randomUUID } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import { sql } from 'drizzle-orm';
import type { Clients } from './clients.js';
import type { LedgerReader } from './server-processes.js';

export const LOAD_AMOUNT_MINOR = 1n;

export interface PaymentPair {
  payer: string;
  payee: string;
}

export interface PaymentRequestLog {
  /** The idempotency key, also sent as the payment's description. */
  key: string;
  /** Answered OK on the first attempt (acknowledged before any fault could touch it). */
  acknowledgedFirstTime: boolean;
  attempts: number;
  /** The payment id of the final answer. */
  paymentId: string;
  /** How the failed attempts failed (at most MAX_FAILURES_KEPT, the first ones). */
  failures: Failure[];
}

/** A failed attempt: the code a client acts on, and the message it was given. */
export interface Failure {
  code: string;
  message: string;
}

const MAX_FAILURES_KEPT = 20;

/**
 * Codes that tell a client "may or may not have happened: retry with the same key". Transport failures land
 * here too: connect-node reports a refused connection as UNAVAILABLE, a reset HTTP/1.1 socket as ABORTED and
 * a cut HTTP/2 stream as CANCELED.
 */
export const RETRY_CODES: ReadonlySet<string> = new Set(['Unavailable', 'DeadlineExceeded', 'Aborted', 'Canceled']);

export interface PaymentLoadOptions {
  /** Where to send the next attempt: may change (a restarted server listens on a new port). */
  clients: () => Clients;
  pairs: PaymentPair[];
  /** How many requests in all. */
  total: number;
  /** Requests in flight at once. */
  concurrency: number;
  /** A request unanswered this long after its first attempt fails the load. */
  retryForMs: number;
  /** Called after every answered request with the number answered so far. */
  onAnswered?: (answered: number) => void;
}

const RETRY_BACKOFF_MS = [20, 50, 100, 200, 300];

/** Runs the load; resolves with every request's log once all are answered, rejects if one never is. */
export async function runPaymentLoad(options: PaymentLoadOptions): Promise<PaymentRequestLog[]> {
  const logs: PaymentRequestLog[] = [];
  const run = randomUUID().slice(0, 8);
  let issued = 0;
  const worker = async () => {
    while (issued < options.total) {
      const index = issued++;
      const pair = options.pairs[index % options.pairs.length]!;
      logs.push(await payUntilAnswered(options, `load-${run}-${index}`, pair));
      options.onAnswered?.(logs.length);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return logs;
}

async function payUntilAnswered(
  options: PaymentLoadOptions,
  key: string,
  pair: PaymentPair,
): Promise<PaymentRequestLog> {
  const {
    value: payment,
    attempts,
    failures,
  } = await untilAnswered(options.clients, options.retryForMs, key, async (clients) => {
    const { payment } = await clients.payments.authorizePayment(
      {
        idempotencyKey: key,
        payerAccountId: pair.payer,
        payeeAccountId: pair.payee,
        amount: { amountMinor: LOAD_AMOUNT_MINOR, currency: 'USD' },
        description: key,
      },
      { timeoutMs: CALL_TIMEOUT_MS },
    );
    if (!payment) throw new Error('AuthorizePayment answered without a payment');
    return payment;
  });
  return { key, acknowledgedFirstTime: attempts === 1, attempts, paymentId: payment.id, failures };
}

/** Bounds one attempt, so that a request lost with its connection is retried rather than awaited forever. */
export const CALL_TIMEOUT_MS = 10_000;

/**
 * A failed attempt as a client sees it. A socket error on the client's side (a write to a connection the
 * killed server left: EPIPE, which connect-node does not map and reports as INTERNAL) is a transport
 * failure, UNAVAILABLE in gRPC's terms; a code the server sent is kept as it is.
 */
export function failureOf(error: unknown): Failure {
  const connectError = ConnectError.from(error);
  let cause: unknown = connectError.cause;
  for (let depth = 0; cause instanceof Error && depth < 5; depth++, cause = cause.cause) {
    const systemCode = (cause as NodeJS.ErrnoException).code;
    if ('syscall' in cause && typeof systemCode === 'string') {
      return { code: 'Unavailable', message: `client-side transport failure (${systemCode}): ${cause.message}` };
    }
  }
  return { code: Code[connectError.code], message: connectError.rawMessage };
}

/**
 * Calls `call` with `clients()` until it answers, as a client retrying under one idempotency key would: any
 * error (connection refused, UNAVAILABLE, a timeout) means "try again" after a short back-off. Throws with the
 * latest errors once `retryForMs` have passed since the first attempt.
 */
export async function untilAnswered<T>(
  clients: () => Clients,
  retryForMs: number,
  what: string,
  call: (clients: Clients) => Promise<T>,
): Promise<{ value: T; attempts: number; failures: Failure[] }> {
  const started = Date.now();
  const errors: string[] = [];
  const failures: Failure[] = [];
  for (let attempt = 1; ; attempt++) {
    try {
      return { value: await call(clients()), attempts: attempt, failures };
    } catch (error) {
      if (failures.length < MAX_FAILURES_KEPT) failures.push(failureOf(error));
      // The latest few say why it is still failing.
      errors.push(String(error));
      if (errors.length > 3) errors.shift();
      if (Date.now() - started > retryForMs) {
        throw new Error(`${what} unanswered after ${attempt} attempts in ${retryForMs} ms: ${errors.join('; ')}`);
      }
      const backoff = RETRY_BACKOFF_MS[Math.min(attempt - 1, RETRY_BACKOFF_MS.length - 1)]!;
      await new Promise((resolve) => setTimeout(resolve, backoff));
    }
  }
}

/**
 * What the database says about the load, as a list of problems (empty when all is well): each key made
 * exactly one payment, the one its answer named; no payment was made that no request asked for.
 */
export async function paymentLoadProblems(ledger: LedgerReader, logs: PaymentRequestLog[]): Promise<string[]> {
  // Only this load's payments: keys are load-<run>-<index>.
  const run = logs[0]?.key.replace(/-\d+$/, '-') ?? 'load-none-';
  const rows = await ledger.rows<{ description: string; n: number; ids: string[] }>(
    sql`select description, count(*)::int as n, array_agg(id) as ids from payments
        where starts_with(description, ${run}) group by description`,
  );
  const byKey = new Map(rows.map((row) => [row.description, row]));
  const problems: string[] = [];
  for (const log of logs) {
    const row = byKey.get(log.key);
    if (!row) problems.push(`${log.key} (answered ${log.paymentId}) has no payment`);
    else if (row.n !== 1) problems.push(`${log.key} made ${row.n} payments: ${row.ids.join(', ')}`);
    else if (row.ids[0] !== log.paymentId) problems.push(`${log.key} answered ${log.paymentId}, stored ${row.ids[0]}`);
    byKey.delete(log.key);
  }
  for (const row of byKey.values()) problems.push(`payment for ${row.description} that no answered request made`);
  return problems;
}
