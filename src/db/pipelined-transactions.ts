/**
 * Fewer round trips per transaction on node-postgres: a transaction's BEGIN travels in one write with its first
 * statement, and its COMMIT, when the caller asks, with its last one (as pgjdbc does), so a ledger batch of one
 * read and one write is two round trips instead of four. It relies on the client's pipeline mode (node-postgres
 * `pipeline: true`, https://node-postgres.com/features/pipelining): each statement keeps its own Sync, and the
 * server answers them in order.
 *
 * Why the semantics stay those of a plain transaction:
 *  - BEGIN is only held back, never dropped: it goes out, before anything else, with the transaction's first
 *    statement. A transaction that runs no statement sends neither BEGIN nor COMMIT/ROLLBACK.
 *  - A statement sent with COMMIT that fails aborts the transaction; the COMMIT behind it then ends it as a
 *    ROLLBACK (PostgreSQL answers COMMIT in a failed transaction that way, without an error). The statement's
 *    own promise carries the error, as it would without pipelining.
 *  - A COMMIT sent early is the one the transaction's owner (drizzle) waits for when it commits: its failure
 *    fails the transaction then. Nothing may run after such a statement: the caller must send COMMIT only with
 *    its transaction's last statement, and only when nothing it does afterwards can refuse the result.
 */
import type pg from 'pg';

/** The exact texts drizzle's transaction() sends (drizzle-orm/node-postgres session.js). */
const BEGIN = 'begin';
const COMMIT = 'commit';
const ROLLBACK = 'rollback';

type QueryFn = (...args: unknown[]) => unknown;

interface TransactionState {
  /** A BEGIN was asked for and not yet sent: it goes with the next statement. */
  beginHeld: boolean;
  /** A COMMIT already on the wire, sent with the transaction's last statement. */
  commitSent: Promise<unknown> | undefined;
  /** The client's query before this wrapper: sends right away. */
  send: QueryFn;
  stream: { cork(): void; uncork(): void };
}

const states = new WeakMap<object, TransactionState>();

/** The SQL text of a query call: its first argument, a string or a config object with `text`. */
function textOf(args: unknown[]): unknown {
  const first = args[0];
  return typeof first === 'string' ? first : (first as { text?: unknown } | undefined)?.text;
}

/** Sends `args` now, preceded by a held-back BEGIN in the same write; returns what the client's query returns. */
function sendAfterHeldBegin(state: TransactionState, args: unknown[]): unknown {
  if (!state.beginHeld) return state.send(...args);
  state.beginHeld = false;
  state.stream.cork();
  try {
    const begun = state.send(BEGIN) as Promise<unknown>;
    // BEGIN fails only when the connection does, and then so does the statement behind it.
    begun.catch(() => {});
    return state.send(...args);
  } finally {
    state.stream.uncork();
  }
}

/**
 * Installs held-back BEGIN and early COMMIT on `client` (a pooled node-postgres client created with
 * `pipeline: true`); every other query passes through unchanged. Call once per client, when the pool opens it.
 */
export function pipelineTransactions(client: pg.ClientBase): void {
  const connection = (client as unknown as { connection: { stream: TransactionState['stream'] } }).connection;
  const state: TransactionState = {
    beginHeld: false,
    commitSent: undefined,
    send: client.query.bind(client) as QueryFn,
    stream: connection.stream,
  };
  states.set(client, state);
  (client as unknown as { query: QueryFn }).query = (...args: unknown[]) => {
    const text = textOf(args);
    const promiseForm = typeof args[args.length - 1] !== 'function';
    if (promiseForm && text === BEGIN && !state.beginHeld && state.commitSent === undefined) {
      state.beginHeld = true;
      return Promise.resolve(EMPTY_RESULT);
    }
    if (promiseForm && (text === COMMIT || text === ROLLBACK) && state.beginHeld) {
      // Nothing ran: there is no transaction on the server to end.
      state.beginHeld = false;
      return Promise.resolve(EMPTY_RESULT);
    }
    if (promiseForm && state.commitSent && (text === COMMIT || text === ROLLBACK)) {
      const commitSent = state.commitSent;
      state.commitSent = undefined;
      if (text === COMMIT) return commitSent;
      // The owner rolls back after a failure: the early COMMIT has ended the transaction already (as a
      // ROLLBACK when a statement failed); the ROLLBACK is still sent, so the connection is surely idle.
      return commitSent.then(
        () => state.send(ROLLBACK),
        () => state.send(ROLLBACK),
      );
    }
    return sendAfterHeldBegin(state, args);
  };
}

/**
 * Forgets what a transaction on `client` left behind: call when the pool takes the client back. A BEGIN still
 * held (its owner released without committing, and nothing ran) must not be sent ahead of the next borrower's
 * first query, which would leave that borrower in a transaction it never asked for.
 */
export function forgetTransaction(client: pg.ClientBase): void {
  const state = states.get(client);
  if (!state) return;
  state.beginHeld = false;
  state.commitSent = undefined;
}

const EMPTY_RESULT = { command: '', rowCount: 0, oid: 0, rows: [], fields: [] };

/**
 * Runs `config` on `client` and sends the transaction's COMMIT in the same write; resolves with `config`'s
 * result. On a client without pipelineTransactions it only runs `config` (the owner commits as usual).
 */
export function queryThenCommit<R>(client: pg.ClientBase, config: pg.QueryConfig): Promise<R> {
  const state = states.get(client);
  if (!state) return client.query(config) as unknown as Promise<R>;
  state.stream.cork();
  try {
    const result = sendAfterHeldBegin(state, [config]) as Promise<R>;
    const committed = state.send(COMMIT) as Promise<unknown>;
    committed.catch(() => {});
    state.commitSent = committed;
    return result;
  } finally {
    state.stream.uncork();
  }
}
