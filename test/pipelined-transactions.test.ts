/**
 * Pipelined transactions against real PostgreSQL (src/db/pipelined-transactions.ts): BEGIN travels with the
 * first statement and COMMIT with the last, and a transaction still behaves as one: all or nothing, whichever
 * statement fails, COMMIT included, and the connection is clean for the next borrower.
 */
import { sql } from 'drizzle-orm';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Database, openPostgres } from '../src/db/client.js';
import { runPrepared } from '../src/db/prepared.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

const INSERT = { name: 'pt_insert', text: 'insert into pt_rows (v) values ($1) returning txid_current()::text as tx' };
const CURRENT_TX = { name: 'pt_current_tx', text: 'select txid_current()::text as tx where $1::int is not null' };

let testDb: TestDatabase;
let database: Database;
let pool: pg.Pool;
/** Socket writes (flushes) per pool client, counted from the last reset. */
let writes = 0;

beforeAll(async () => {
  testDb = await createTestDatabase();
  await testDb.query('create table pt_rows (v int primary key)');
  await testDb.query('create table pt_deferred (v int unique deferrable initially deferred)');
  // One connection: every transaction below runs on the one the previous one left.
  database = openPostgres({ url: testDb.url, poolSize: 1 });
  pool = (database.db as unknown as { $client: pg.Pool }).$client;
  pool.on('connect', (client) => {
    const stream = (client as unknown as { connection: { stream: Record<string, unknown> } }).connection.stream;
    for (const method of ['_write', '_writev'] as const) {
      const original = stream[method] as (...args: unknown[]) => unknown;
      stream[method] = function (this: unknown, ...args: unknown[]) {
        writes++;
        return original.apply(this, args);
      };
    }
  });
});

afterAll(async () => {
  await database?.close();
  await testDb?.drop();
});

beforeEach(async () => {
  await testDb.query('truncate pt_rows, pt_deferred');
});

const rowsOf = async (table: string) =>
  (await testDb.query<{ v: number }>(`select v from ${table} order by v`)).map((row) => row.v);

describe('pipelined transactions', () => {
  it('sends BEGIN with the first statement and COMMIT with the last: two writes, one transaction', async () => {
    await database.ping(); // opens the connection and prepares nothing
    await database.db.transaction(async (tx) => {
      // Prepare both shapes on this connection first, so that the counted transaction below is the steady state.
      await runPrepared(tx, INSERT, [0]);
      await runPrepared(tx, CURRENT_TX, [0]);
    });
    writes = 0;
    const [first, last] = await database.db.transaction(async (tx) => {
      const [inserted] = await runPrepared<{ tx: string }>(tx, INSERT, [1]);
      const [current] = await runPrepared<{ tx: string }>(tx, CURRENT_TX, [1], { commit: true });
      return [inserted!.tx, current!.tx];
    });
    expect(writes).toBe(2);
    // One transaction id for both statements: the held-back BEGIN was in effect from the first one.
    expect(last).toBe(first);
    expect(await rowsOf('pt_rows')).toEqual([0, 1]);
  });

  it('a statement sent with COMMIT that fails rolls everything back, and the connection serves the next', async () => {
    await testDb.query('insert into pt_rows (v) values (7)');
    const failed = database.db.transaction(async (tx) => {
      await runPrepared(tx, INSERT, [1]);
      await runPrepared(tx, INSERT, [7], { commit: true });
    });
    await expect(failed).rejects.toMatchObject({ code: '23505' });
    expect(await rowsOf('pt_rows')).toEqual([7]);
    await database.db.transaction(async (tx) => {
      await runPrepared(tx, INSERT, [2], { commit: true });
    });
    expect(await rowsOf('pt_rows')).toEqual([2, 7]);
  });

  it('a COMMIT that fails (a deferred constraint) fails the transaction and keeps nothing', async () => {
    await testDb.query('insert into pt_deferred (v) values (1)');
    const failed = database.db.transaction(async (tx) => {
      await runPrepared(tx, INSERT, [3]);
      await tx.execute(sql`insert into pt_deferred (v) values (1)`);
      await runPrepared(tx, CURRENT_TX, [1], { commit: true });
    });
    // The write sent with COMMIT carries COMMIT's failure: it resolves only once COMMIT succeeded.
    await expect(failed).rejects.toMatchObject({ code: '23505' });
    expect(await rowsOf('pt_rows')).toEqual([]);
    expect(await rowsOf('pt_deferred')).toEqual([1]);
    await database.db.transaction(async (tx) => {
      await runPrepared(tx, INSERT, [4], { commit: true });
    });
    expect(await rowsOf('pt_rows')).toEqual([4]);
  });

  it('inside a savepoint a statement asking for COMMIT does not end the outer transaction', async () => {
    const failed = database.db.transaction(async (tx) => {
      await runPrepared(tx, INSERT, [8]);
      await tx.transaction(async (nested) => {
        await runPrepared(nested, INSERT, [9], { commit: true });
      });
      throw new Error('the outer transaction fails after its savepoint');
    });
    await expect(failed).rejects.toThrow('after its savepoint');
    expect(await rowsOf('pt_rows')).toEqual([]);
  });

  it('a held BEGIN goes out with whatever statement comes first, so ROLLBACK undoes that statement', async () => {
    const client = await pool.connect();
    try {
      await client.query('begin');
      // Unusual but accepted by node-postgres: values that are falsy rather than an array.
      await client.query('insert into pt_rows (v) values (42)', '' as unknown as unknown[]);
      await client.query('rollback');
    } finally {
      client.release();
    }
    expect(await rowsOf('pt_rows')).toEqual([]);
  });

  it('a transaction that fails before its last statement rolls back what ran', async () => {
    const failed = database.db.transaction(async (tx) => {
      await runPrepared(tx, INSERT, [5]);
      throw new Error('refused after the first statement');
    });
    await expect(failed).rejects.toThrow('refused after the first statement');
    expect(await rowsOf('pt_rows')).toEqual([]);
  });

  it('a transaction that runs nothing sends nothing, and a BEGIN held at release never reaches the next borrower', async () => {
    await database.ping();
    writes = 0;
    await database.db.transaction(async () => {});
    expect(writes).toBe(0);

    const client = await pool.connect();
    await client.query('begin');
    client.release();
    // Two statements outside any transaction: two transaction ids. A leaked BEGIN would make them one.
    const first = (await pool.query('select txid_current()::text as tx')).rows[0].tx;
    const second = (await pool.query('select txid_current()::text as tx')).rows[0].tx;
    expect(second).not.toBe(first);
  });
});
