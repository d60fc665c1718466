/**
 * Fewer round trips per transaction on node-postgres: a transaction's BEGIN travels with its first statement,
 * and its COMMIT, when the caller asks, with its last one (as pgjdbc does), so a ledger batch of one read and
 * one write is two round trips instead of four. The pool's clients run in pipeline mode (node-postgres
 * `pipeline: true`, https://node-postgres.com/features/pipelining), which accepts pg.Query objects.
 *
 * BEGIN + statement, and statement + COMMIT, each go as ONE extended-protocol exchange ending in a single Sync
 * (https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY): when any message of it
 * fails, PostgreSQL skips the rest until the Sync. So
 *  - a BEGIN that fails runs nothing after it (the statement cannot run outside a transaction);
 *  - a statement that fails never reaches its COMMIT: the transaction stays open and aborted, and its owner
 *    (drizzle's transaction()) rolls it back, as it would without pipelining;
 *  - a statement sent with COMMIT resolves only once COMMIT succeeded; a failed COMMIT rejects it, and nothing
 *    was committed. Nothing may run after such a statement: the caller sends COMMIT only with its
 *    transaction's last statement, and only when nothing it does afterwards can refuse the result.
 * BEGIN and COMMIT are named statements parsed once per connection (by the first transaction on it, which sends
 * them on their own), so the combined exchanges never carry a Parse of theirs.
 */
import pg from 'pg';

/** The exact texts drizzle's transaction() sends (drizzle-orm/node-postgres session.js). */
const BEGIN = 'begin';
const COMMIT = 'commit';
const ROLLBACK = 'rollback';
const BEGIN_STATEMENT = { name: 'pipelined_begin', text: 'BEGIN' };
const COMMIT_STATEMENT = { name: 'pipelined_commit', text: 'COMMIT' };

type QueryFn = (...args: unknown[]) => unknown;

/** The parts of node-postgres's Connection used here (pg/lib/connection.js). */
interface Connection {
  parsedStatements: Record<string, string>;
  submittedNamedStatements: Record<string, string>;
  stream: { cork(): void; uncork(): void };
  bind(config: { statement: string; portal: string; values: unknown[] }): void;
  execute(config: { portal: string; rows: number }): void;
  sync(): void;
}

/** pg.Query as this module uses it (pg/lib/query.js): its type definitions leave these members out. */
interface QueryInternals {
  name: string | undefined;
  text: string | undefined;
  values: unknown;
  submit(connection: Connection): Error | null;
  handleCommandComplete(message: unknown, connection: Connection): void;
  portal: string;
  callback: ((error: Error | null, result: pg.QueryResult) => void) | undefined;
}
const QueryBase = pg.Query as unknown as new (config: pg.QueryConfig) => QueryInternals;
const base = pg.Query.prototype as unknown as QueryInternals;

/** Writes Bind and Execute of an already parsed, parameterless named statement (BEGIN or COMMIT), no Sync. */
function runParsed(connection: Connection, statement: string): void {
  connection.bind({ statement, portal: '', values: [] });
  connection.execute({ portal: '', rows: 0 });
}

const isParsed = (connection: Connection, statement: { name: string; text: string }) =>
  connection.parsedStatements[statement.name] === statement.text;

/**
 * One statement with BEGIN before it and/or COMMIT after it, in one exchange with one Sync. Its promise (or
 * callback) settles at the Sync: with the statement's result when every part succeeded, else the first error.
 */
class PipelinedQuery extends QueryBase {
  private commandsAnswered = 0;

  constructor(
    config: pg.QueryConfig,
    private readonly withBegin: boolean,
    private readonly withCommit: boolean,
  ) {
    // Extended protocol even without parameters: a simple Query message would end the exchange early.
    super(Object.assign({}, config, { queryMode: 'extended' }) as pg.QueryConfig);
  }

  /** One socket write for the whole exchange (pg.Query.submit corks only its own messages). */
  override submit(connection: Connection): Error | null {
    // A query pg.Query.submit refuses writes nothing, so neither may its BEGIN.
    if (this.refusedBySubmit(connection)) return base.submit.call(this, connection);
    connection.stream.cork();
    try {
      if (this.withBegin) runParsed(connection, BEGIN_STATEMENT.name);
      return base.submit.call(this, connection);
    } finally {
      connection.stream.uncork();
    }
  }

  /** pg.Query.submit's own checks (pg 8.23, lib/query.js), made before it writes anything. */
  private refusedBySubmit(connection: Connection): boolean {
    if (typeof this.text !== 'string' && typeof this.name !== 'string') return true;
    const name = this.name ?? '';
    const previous = connection.parsedStatements[name] || connection.submittedNamedStatements[name];
    if (this.text && previous && this.text !== previous) return true;
    return Boolean(this.values) && !Array.isArray(this.values);
  }

  /** Called by pg.Query after the statement's Describe (not when its Bind failed): Execute, COMMIT, Sync. */
  _getRows(connection: Connection): void {
    connection.execute({ portal: this.portal, rows: 0 });
    if (this.withCommit) runParsed(connection, COMMIT_STATEMENT.name);
    connection.sync();
  }

  /** BEGIN's and COMMIT's CommandComplete are not results of the statement. */
  override handleCommandComplete(message: unknown, connection: Connection): void {
    const index = this.commandsAnswered++;
    const statementIndex = this.withBegin ? 1 : 0;
    if (index === statementIndex) base.handleCommandComplete.call(this, message, connection);
  }
}

interface TransactionState {
  /** Between the owner's BEGIN and its COMMIT or ROLLBACK. */
  inTransaction: boolean;
  /**
   * A savepoint (drizzle's nested transaction) was opened in it: from then on COMMIT is never sent early, since
   * it would end the outer transaction from inside one, however the savepoints later fared.
   */
  usedSavepoint: boolean;
  /** A BEGIN was asked for and not yet sent: it goes with the next statement. */
  beginHeld: boolean;
  /** The statement sent with COMMIT, settled once COMMIT was answered; the owner's commit waits for it. */
  commitSent: Promise<unknown> | undefined;
  /** The client's query before this wrapper: sends right away. */
  send: QueryFn;
  connection: Connection;
}

const states = new WeakMap<object, TransactionState>();

/** Sends `query` through the client; resolves with its result (pg.Query objects are not promises). */
function sendQuery(state: TransactionState, query: QueryInternals): Promise<pg.QueryResult> {
  return new Promise((resolve, reject) => {
    query.callback = (error, result) => (error ? reject(error) : resolve(result));
    state.send(query);
  });
}

/** A promise-form query call as a pg.QueryConfig, or undefined for the callback form and query objects. */
function configOf(args: unknown[]): pg.QueryConfig | undefined {
  if (typeof args[args.length - 1] === 'function') return undefined;
  const [first, values] = args;
  if (typeof (first as { submit?: unknown } | undefined)?.submit === 'function') return undefined;
  if (typeof first === 'string') return { text: first, values: values as unknown[] | undefined };
  const config = first as pg.QueryConfig;
  return values === undefined ? config : Object.assign({}, config, { values: values as unknown[] });
}

/** Sends a query that follows a held-back BEGIN: both in one exchange once BEGIN is parsed here, else in turn. */
function sendAfterHeldBegin(state: TransactionState, args: unknown[], withCommit = false): unknown {
  state.beginHeld = false;
  const config = configOf(args);
  if (config && isParsed(state.connection, BEGIN_STATEMENT)) {
    return sendQuery(state, new PipelinedQuery(config, true, withCommit));
  }
  // The connection's first transaction (BEGIN gets parsed now), a callback-form call or a query object: BEGIN
  // first, alone, and the call only once it succeeded.
  const begun = state.send(BEGIN_STATEMENT) as Promise<unknown>;
  if (!config) return sendOtherFormAfter(state, begun, args);
  return begun.then(() =>
    withCommit ? sendQuery(state, new PipelinedQuery(config, false, true)) : state.send(config),
  );
}

/** Follows the owner's transaction and its savepoints by the texts drizzle sends for them. */
function trackTransaction(state: TransactionState, text: unknown): void {
  if (typeof text !== 'string') return;
  if (text === BEGIN) state.inTransaction = true;
  else if (text === COMMIT || text === ROLLBACK) {
    state.inTransaction = false;
    state.usedSavepoint = false;
  } else if (text.startsWith('savepoint ')) state.usedSavepoint = true;
}

/** A callback-form call or a query object, sent once `begun` succeeded; given BEGIN's error otherwise. */
function sendOtherFormAfter(state: TransactionState, begun: Promise<unknown>, args: unknown[]): unknown {
  const last = args[args.length - 1];
  const query = args[0] as { submit?: unknown; handleError?: (error: unknown, connection: Connection) => void };
  const fail = (error: unknown) => {
    if (typeof last === 'function') (last as (error: unknown) => void)(error);
    else query.handleError?.(error, state.connection);
  };
  begun.then(() => state.send(...args), fail);
  // A query object is what client.query returns for one; a callback-form call returns nothing.
  return typeof query?.submit === 'function' ? query : undefined;
}

/** What the wrapper answers for the owner's BEGIN, COMMIT or ROLLBACK; undefined to send the call as it is. */
function answerOwner(state: TransactionState, text: unknown): Promise<unknown> | undefined {
  trackTransaction(state, text);
  if (text === BEGIN && !state.beginHeld && state.commitSent === undefined) {
    state.beginHeld = true;
    return Promise.resolve(EMPTY_RESULT);
  }
  if ((text === COMMIT || text === ROLLBACK) && state.beginHeld) {
    // Nothing ran: there is no transaction on the server to end.
    state.beginHeld = false;
    return Promise.resolve(EMPTY_RESULT);
  }
  const commitSent = state.commitSent;
  if (commitSent && (text === COMMIT || text === ROLLBACK)) {
    state.commitSent = undefined;
    if (text === COMMIT) return commitSent;
    // After a failure: if the statement failed, its COMMIT was skipped and the transaction is still open (and
    // aborted); if COMMIT failed, it ended the transaction. ROLLBACK is right, or a harmless warning, in both.
    return commitSent.then(
      () => state.send(ROLLBACK),
      () => state.send(ROLLBACK),
    );
  }
  // Parsed by the first transaction on the connection, so that later ones can send it with their last statement.
  if (text === COMMIT) return state.send(COMMIT_STATEMENT) as Promise<unknown>;
  return undefined;
}

/**
 * Installs held-back BEGIN and COMMIT-with-the-last-statement on `client` (a pooled node-postgres client created
 * with `pipeline: true`); every other query passes through unchanged. Call once per client, when the pool opens
 * it, after anything else that wraps its query (tracing).
 */
export function pipelineTransactions(client: pg.ClientBase): void {
  const state: TransactionState = {
    inTransaction: false,
    usedSavepoint: false,
    beginHeld: false,
    commitSent: undefined,
    send: client.query.bind(client) as QueryFn,
    connection: (client as unknown as { connection: Connection }).connection,
  };
  states.set(client, state);
  (client as unknown as { query: QueryFn }).query = (...args: unknown[]) => {
    const config = configOf(args);
    const answer = config ? answerOwner(state, config.text) : undefined;
    if (answer) return answer;
    return state.beginHeld ? sendAfterHeldBegin(state, args) : state.send(...args);
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
  state.inTransaction = false;
  state.usedSavepoint = false;
  state.beginHeld = false;
  state.commitSent = undefined;
}

const EMPTY_RESULT = { command: '', rowCount: 0, oid: 0, rows: [], fields: [] };

/**
 * Runs `config` on `client` as its transaction's last statement, with COMMIT in the same exchange once the
 * connection has COMMIT parsed; resolves with `config`'s result after COMMIT succeeded. Otherwise (another
 * client, the connection's first transaction, no transaction of drizzle's open, or inside a savepoint) it only
 * runs `config`, and the owner commits as usual.
 */
export function queryThenCommit<R>(client: pg.ClientBase, config: pg.QueryConfig): Promise<R> {
  const state = states.get(client);
  const canCommit = (known: TransactionState) =>
    known.inTransaction &&
    !known.usedSavepoint &&
    known.commitSent === undefined &&
    isParsed(known.connection, COMMIT_STATEMENT);
  if (!state || !canCommit(state)) return client.query(config) as unknown as Promise<R>;
  const result = state.beginHeld
    ? (sendAfterHeldBegin(state, [config], true) as Promise<R>)
    : (sendQuery(state, new PipelinedQuery(config, false, true)) as Promise<R>);
  // The owner's commit waits for this (answerOwner); its own failure is the caller's to see, not this copy's.
  state.commitSent = result.catch(() => {
    throw new Error('the statement sent with COMMIT failed');
  });
  state.commitSent.catch(() => {});
  return result;
}
