/**
 * Which replica publishes. On PostgreSQL: whoever holds a session-level advisory lock on its own dedicated
 * connection (a pg.Client, never a pooled one, whose session could be handed to other work). The lock lives
 * exactly as long as that session: if the process dies or the connection breaks, PostgreSQL releases it and
 * the next standby's attempt (every OUTBOX_LEADER_RETRY_MS) wins. The leader also LISTENs on that connection
 * for the commit-time notifications of the outbox trigger, and runs the publishing queries on it, so a leader
 * whose session is gone finds out at its next query at the latest.
 *
 * On the embedded database there is one process by construction (PGlite is in-process): it always leads.
 */
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { AdvisoryLock } from '../db/advisory-locks.js';
import type { LedgerDb } from '../db/client.js';
import * as schema from '../db/schema.js';
import type { OutboxLogger } from './sink.js';

/** The outbox publisher's advisory lock key (all of the service's keys live in src/db/advisory-locks.ts). */
export const OUTBOX_LOCK_KEY = AdvisoryLock.outboxPublisher;
export const OUTBOX_CHANNEL = 'outbox';
const APPLICATION_NAME = 'ledger-outbox-publisher';
const STATEMENT_TIMEOUT_MS = 30_000;
/** Client side too: a query on a silently dead connection fails instead of waiting for TCP to give up. */
const QUERY_TIMEOUT_MS = 35_000;
/**
 * Server-side TCP keepalive for this session only: if the leader's host vanishes without closing the
 * connection, PostgreSQL notices within about idle + interval × count seconds, ends the session and so
 * releases the lock (the server's defaults can take hours).
 */
const SESSION_OPTIONS = '-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3';

export interface LeaderTerm {
  /** Where the leader runs its publishing queries. */
  db: LedgerDb;
  /** Aborted when leadership is lost (the lock's session ended). */
  signal: AbortSignal;
  /** Called on every notification that outbox rows were committed. */
  onNotify(listener: () => void): void;
  /** Gives up the lock. */
  release(): Promise<void>;
}

export interface Leadership {
  /** A term if this replica now holds the lock; undefined if another one does. */
  tryAcquire(): Promise<LeaderTerm | undefined>;
  /** Ends any term and closes the connection. */
  close(): Promise<void>;
}

export class EmbeddedLeadership implements Leadership {
  constructor(private readonly db: LedgerDb) {}

  async tryAcquire(): Promise<LeaderTerm> {
    return { db: this.db, signal: new AbortController().signal, onNotify() {}, release: async () => {} };
  }

  async close(): Promise<void> {}
}

export class PostgresLeadership implements Leadership {
  /** Kept open while standby, so retrying the lock costs one query, not a connection. */
  private client: pg.Client | undefined;
  private lost: AbortController | undefined;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly logger: OutboxLogger,
  ) {}

  async tryAcquire(): Promise<LeaderTerm | undefined> {
    if (this.closed) return undefined;
    const client = this.client ?? (await this.connect());
    const { rows } = await client.query<{ locked: boolean }>('select pg_try_advisory_lock($1) as locked', [
      OUTBOX_LOCK_KEY,
    ]);
    if (!rows[0]?.locked) return undefined;
    if (this.closed) {
      // close() ran while the lock was being taken (a shutdown that did not wait): give it straight back.
      await this.endSession();
      return undefined;
    }
    const lost = new AbortController();
    this.lost = lost;
    const listeners: (() => void)[] = [];
    client.on('notification', (message) => {
      if (message.channel === OUTBOX_CHANNEL) for (const listener of listeners) listener();
    });
    await client.query(`listen ${OUTBOX_CHANNEL}`);
    return {
      db: drizzle(client, { schema }) as unknown as LedgerDb,
      signal: lost.signal,
      onNotify: (listener) => listeners.push(listener),
      release: () => this.endSession(),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.endSession();
  }

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: this.url,
      application_name: APPLICATION_NAME,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      connectionTimeoutMillis: 5_000,
      statement_timeout: STATEMENT_TIMEOUT_MS,
      query_timeout: QUERY_TIMEOUT_MS,
      options: SESSION_OPTIONS,
    });
    // A broken connection means a lost lock: whoever leads must stop at once (another replica may take over).
    const onGone = (error?: Error) => {
      if (this.client !== client) return;
      this.client = undefined;
      if (this.lost && !this.lost.signal.aborted) {
        this.logger.warn({ err: error }, 'outbox publisher lost its database session: no longer the leader');
        this.lost.abort(error ?? new Error('connection ended'));
      }
      client.end().catch(() => {});
    };
    client.on('error', onGone);
    client.on('end', () => onGone());
    await client.connect();
    if (this.closed) {
      await client.end().catch(() => {});
      throw new Error('outbox leadership is closed');
    }
    this.client = client;
    return client;
  }

  /** Ending the session releases the advisory lock (and the LISTEN) on the server. */
  private async endSession(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.lost?.abort(new Error('released'));
    this.lost = undefined;
    if (!client) return;
    try {
      await client.end();
    } catch {
      // already gone: the server has released the lock with the session
    }
  }
}
