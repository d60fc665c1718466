/**
 * A `db.query` span around every query a node-postgres client runs, child of whatever span is active (the
 * ledger transaction, an RPC, a job). Applied per pooled client as the pool opens it, since drizzle runs
 * both pool.query and transactions through the clients' query(); and to the embedded PGlite client and
 * its transactions. With tracing off the spans are no-ops.
 */
import type pg from 'pg';
import { SpanKind, SpanStatusCode, tracer } from './tracing.js';

// The statement's first words are enough to tell queries apart; parameters are never recorded.
const MAX_STATEMENT_CHARS = 200;

function statementOf(args: unknown[]): string {
  const first = args[0];
  const text = typeof first === 'string' ? first : (first as { text?: unknown } | undefined)?.text;
  return typeof text === 'string' ? text.slice(0, MAX_STATEMENT_CHARS) : '';
}

/** Wraps `client.query` so that each call (promise or callback form) runs in a span. */
export function traceQueries(client: pg.PoolClient | pg.Client): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as { query: unknown }).query = (...args: unknown[]) => {
    const span = tracer().startSpan('db.query', {
      kind: SpanKind.CLIENT,
      attributes: { 'db.system': 'postgresql', 'db.statement': statementOf(args) },
    });
    if (!span.isRecording()) return query(...args);
    const end = (error: unknown) => {
      if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: (error as { code?: string }).code ?? 'error' });
      span.end();
    };
    const last = args[args.length - 1];
    if (typeof last === 'function') {
      args[args.length - 1] = (error: unknown, ...rest: unknown[]) => {
        end(error);
        return (last as (...callbackArgs: unknown[]) => unknown)(error, ...rest);
      };
      return query(...args);
    }
    const result = query(...args);
    if (result instanceof Promise) result.then(() => end(undefined), end);
    else span.end();
    return result;
  };
}

/** The part of an embedded PGlite client that drizzle calls: query, and transaction with its own query. */
interface PgliteLike {
  query: (...args: never[]) => Promise<unknown>;
  transaction: (callback: (tx: never) => Promise<unknown>) => Promise<unknown>;
}

function tracePromiseQuery(target: { query: (...args: never[]) => Promise<unknown> }): void {
  const query = target.query.bind(target) as (...args: unknown[]) => Promise<unknown>;
  (target as { query: unknown }).query = (...args: unknown[]) => {
    const span = tracer().startSpan('db.query', {
      kind: SpanKind.CLIENT,
      attributes: { 'db.system': 'postgresql', 'db.statement': statementOf(args) },
    });
    if (!span.isRecording()) return query(...args);
    return query(...args).then(
      (result) => {
        span.end();
        return result;
      },
      (error: unknown) => {
        span.setStatus({ code: SpanStatusCode.ERROR, message: (error as { code?: string }).code ?? 'error' });
        span.end();
        throw error;
      },
    );
  };
}

/** The same `db.query` spans for the embedded PGlite: its own queries and those of its transactions. */
export function tracePgliteQueries(client: PgliteLike): void {
  tracePromiseQuery(client);
  const transaction = client.transaction.bind(client) as (
    callback: (tx: unknown) => Promise<unknown>,
  ) => Promise<unknown>;
  (client as { transaction: unknown }).transaction = (callback: (tx: unknown) => Promise<unknown>) =>
    transaction((tx) => {
      tracePromiseQuery(tx as { query: (...args: never[]) => Promise<unknown> });
      return callback(tx);
    });
}
