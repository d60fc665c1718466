/**
 * Group commit against real PostgreSQL: a batch gives exactly the results one-by-one application would, and a
 * full queue refuses with a retryable code while the ledger stays correct.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Database, openPglite, openPostgres } from '../src/db/client.js';
import { maxPaymentMinorFor } from '../src/domain/currency.js';
import { Ledger } from '../src/ledger/apply.js';
import { CommandBatcher } from '../src/ledger/batcher.js';
import { checkLedger } from '../src/ledger/check.js';
import type { CommandResult, LedgerCommand } from '../src/ledger/commands.js';
import { createTestDatabase } from './support/database.js';

const PRINCIPAL = 'apikey:batch-test';
const MISSING_ACCOUNT = 'acct_00000000000000000000000000';

interface Books {
  /** Runs SQL against the books' database (PostgreSQL or embedded PGlite). */
  query<Row extends Record<string, unknown>>(text: string, values?: unknown[]): Promise<Row[]>;
  /** Drops what the books were kept in. */
  drop(): Promise<void>;
  database: Database;
  ledger: Ledger;
  /** Role → account id (ids are random, so two databases are compared by role). */
  accounts: Record<'payer1' | 'payer2' | 'merchant', string>;
  /** The MANUAL payment that a capture and a void race for. */
  heldPaymentId: string;
}

async function one(ledger: Ledger, command: LedgerCommand): Promise<CommandResult> {
  const [result] = await ledger.apply([command]);
  if (!result) throw new Error('no result');
  return result;
}

function outcomeOf(result: CommandResult) {
  if (!result.ok) throw result.error;
  return result.outcome;
}

const authorize = (idempotencyKey: string, payer: string, payee: string, amountMinor: bigint, manual = false) =>
  ({
    kind: 'authorizePayment',
    principal: PRINCIPAL,
    idempotencyKey,
    payerAccountId: payer,
    payeeAccountId: payee,
    amountMinor,
    currency: 'USD',
    description: '',
    captureMode: manual ? 'MANUAL' : 'AUTOMATIC',
    holdDurationMs: manual ? 3_600_000 : 0,
  }) satisfies LedgerCommand;

async function openBooks(kind: 'postgres' | 'pglite') {
  if (kind === 'postgres') {
    const test = await createTestDatabase();
    const database = openPostgres({ url: test.url, poolSize: 4 });
    return { database, query: test.query, drop: test.drop } as const;
  }
  const dataDir = await mkdtemp(join(tmpdir(), 'ledger-batcher-'));
  const database = await openPglite(dataDir);
  const query = async <Row extends Record<string, unknown>>(text: string, values?: unknown[]) =>
    (await database.db.execute(sql.raw(values?.length ? bind(text, values) : text))) as unknown as { rows: Row[] };
  return {
    database,
    query: async <Row extends Record<string, unknown>>(text: string, values?: unknown[]) =>
      (await query<Row>(text, values)).rows,
    drop: () => rm(dataDir, { recursive: true, force: true }),
  } as const;
}

/** Inlines $1… for the few test queries on PGlite (test-made ids only, quoted). */
function bind(text: string, values: unknown[]): string {
  return text.replace(/\$(\d+)/g, (_, index: string) => `'${String(values[Number(index) - 1]).replaceAll("'", "''")}'`);
}

/** The same state in every database: two funded payers, a merchant, one held payment, one used key. */
async function seededBooks(kind: 'postgres' | 'pglite' = 'postgres'): Promise<Books> {
  const { database, query, drop } = await openBooks(kind);
  await database.migrate();
  const ledger = new Ledger(database.db, {
    idempotencyRetentionMs: 3_600_000,
    maxPaymentMinor: maxPaymentMinorFor(1_000_000n),
  });
  const open = async (label: string, type: 'PERSONAL' | 'MERCHANT') => {
    const outcome = outcomeOf(
      await one(ledger, {
        kind: 'createAccount',
        principal: PRINCIPAL,
        idempotencyKey: `open-${label}`,
        ownerRef: `owner:${label}`,
        currency: 'USD',
        type,
      }),
    );
    if (outcome.kind !== 'account') throw new Error('expected an account');
    return outcome.account.id;
  };
  const accounts = {
    payer1: await open('payer1', 'PERSONAL'),
    payer2: await open('payer2', 'PERSONAL'),
    merchant: await open('merchant', 'MERCHANT'),
  };
  for (const [role, amountMinor] of [
    ['payer1', 100n],
    ['payer2', 500n],
  ] as const) {
    outcomeOf(
      await one(ledger, {
        kind: 'deposit',
        principal: PRINCIPAL,
        idempotencyKey: `fund-${role}`,
        accountId: accounts[role],
        amountMinor,
        currency: 'USD',
      }),
    );
  }
  const held = outcomeOf(await one(ledger, authorize('held', accounts.payer2, accounts.merchant, 50n, true)));
  if (held.kind !== 'payment') throw new Error('expected a payment');
  outcomeOf(await one(ledger, authorize('used-key', accounts.payer2, accounts.merchant, 10n)));
  return { query, drop, database, ledger, accounts, heldPaymentId: held.payment.id };
}

/** Replay, decline, NOT_FOUND, two payments that together overdraw payer1, and a capture racing a void. */
function theList(books: Books): LedgerCommand[] {
  const { payer1, payer2, merchant } = books.accounts;
  const paymentId = books.heldPaymentId;
  return [
    authorize('used-key', payer2, merchant, 10n),
    authorize('too-much', payer2, merchant, 10_000n),
    authorize('to-nobody', payer1, MISSING_ACCOUNT, 5n),
    authorize('first-70', payer1, merchant, 70n),
    authorize('second-70', payer1, merchant, 70n),
    { kind: 'capturePayment', principal: PRINCIPAL, idempotencyKey: 'capture', paymentId, amount: null },
    { kind: 'voidPayment', principal: PRINCIPAL, idempotencyKey: 'void', paymentId },
  ];
}

/** What a client sees of a result, without the ids that differ between databases. */
function comparable(result: CommandResult) {
  if (!result.ok) return { ok: false, kind: result.error.kind, reason: result.error.reason };
  const outcome = result.outcome;
  if (outcome.kind !== 'payment') return { ok: true, kind: outcome.kind };
  const { status, declineReason, amountMinor, capturedMinor } = outcome.payment;
  return {
    ok: true,
    replayed: result.replayed,
    status,
    declineReason,
    amountMinor: String(amountMinor),
    capturedMinor: String(capturedMinor),
  };
}

async function finalState(books: Books) {
  const balances: Record<string, string> = {};
  for (const [role, id] of Object.entries(books.accounts)) {
    const [row] = await books.query<{ posted: string; held: string; pending: string }>(
      'select posted_minor::text as posted, held_minor::text as held, pending_settlement_minor::text as pending from account_balances where account_id = $1',
      [id],
    );
    balances[role] = `${row?.posted}/${row?.held}/${row?.pending}`;
  }
  const [counts] = await books.query<{ entries: string; payments: string; keys: string }>(
    `select (select count(*) from ledger_entries)::text as entries, (select count(*) from payments)::text as payments,
            (select count(*) from idempotency_keys)::text as keys`,
  );
  return { balances, counts };
}

describe.each(['postgres', 'pglite'] as const)(
  'on %s, a batch gives exactly the results one-by-one application would',
  (kind) => {
    let oneByOne: Books;
    let batched: Books;
    beforeAll(async () => {
      [oneByOne, batched] = await Promise.all([seededBooks(kind), seededBooks(kind)]);
    });
    afterAll(async () => {
      for (const books of [oneByOne, batched]) {
        await books?.database.close();
        await books?.drop();
      }
    });

    it('replay, decline, NOT_FOUND, overdraw by two, capture racing void', async () => {
      const sequential: CommandResult[] = [];
      for (const command of theList(oneByOne)) sequential.push(await one(oneByOne.ledger, command));

      const list = theList(batched);
      // A count-triggered batch of exactly the list; the long wait means no timer can split it.
      const batcher = new CommandBatcher(batched.ledger, {
        maxBatchSize: list.length,
        maxWaitMs: 600_000,
        maxQueueLength: list.length,
        maxBatchesInFlight: 1,
        retryAfterMs: 100,
      });
      // One call per command, as concurrent requests would arrive.
      const results = await Promise.all(list.map(async (command) => (await batcher.apply([command]))[0]!));
      expect(batcher.batches).toBe(1);
      expect(batcher.batchedCommands).toBe(list.length);

      expect(results.map(comparable)).toEqual(sequential.map(comparable));
      // The list really exercises what it claims to.
      expect(results.map(comparable)).toMatchObject([
        { ok: true, replayed: true },
        { ok: true, status: 'DECLINED' },
        { ok: false, kind: 'not_found' },
        { ok: true, status: 'COMPLETED' },
        { ok: true, status: 'DECLINED' },
        { ok: true, status: 'COMPLETED', capturedMinor: '50' },
        { ok: false, kind: 'failed_precondition' },
      ]);
      expect(await finalState(batched)).toEqual(await finalState(oneByOne));
      expect((await checkLedger(batched.database.db)).passed).toBe(true);
    });
  },
);

describe('under overload', () => {
  let books: Books;
  beforeAll(async () => {
    books = await seededBooks();
  });
  afterAll(async () => {
    await books?.database.close();
    await books?.drop();
  });

  it('a full queue refuses at once with UNAVAILABLE and a retry hint; the rest apply; the books balance', async () => {
    const batcher = new CommandBatcher(books.ledger, {
      maxBatchSize: 1,
      maxWaitMs: 0,
      maxQueueLength: 5,
      maxBatchesInFlight: 1,
      retryAfterMs: 250,
    });
    const { payer2, merchant } = books.accounts;
    // All in one turn of the event loop: one batch starts, five wait, the rest find the queue full.
    const calls = Array.from({ length: 40 }, (_, index) =>
      batcher.apply([authorize(`overload-${index}`, payer2, merchant, 1n)]).then(
        ([result]) => ({ result }),
        (error: unknown) => ({ error }),
      ),
    );
    const answers = await Promise.all(calls);
    const refused = answers.flatMap((answer) => ('error' in answer ? [answer.error] : []));
    const applied = answers.flatMap((answer) => ('result' in answer && answer.result?.ok ? [answer.result] : []));
    expect(applied).toHaveLength(6);
    expect(refused).toHaveLength(34);
    for (const error of refused) {
      expect(error).toMatchObject({ kind: 'unavailable', reason: 'LEDGER_OVERLOADED' });
      expect((error as Error).message).toMatch(/retry in about 250 ms with the same idempotency key/);
    }
    expect(batcher.refused).toBe(34);
    const [row] = await books.query<{ count: string }>(
      "select count(*)::text as count from payments where amount_minor = 1 and status = 'COMPLETED'",
    );
    expect(row?.count).toBe('6');
    expect((await checkLedger(books.database.db)).passed).toBe(true);
  });

  it('a command whose deadline passed while queued leaves the queue with DEADLINE_EXCEEDED and writes nothing', async () => {
    const batcher = new CommandBatcher(books.ledger, {
      maxBatchSize: 10,
      maxWaitMs: 600_000,
      maxQueueLength: 10,
      maxBatchesInFlight: 1,
      retryAfterMs: 100,
    });
    const { payer2, merchant } = books.accounts;
    const deadline = new AbortController();
    const waiting = batcher.apply([authorize('expires-queued', payer2, merchant, 3n)], { signal: deadline.signal });
    deadline.abort();
    const [result] = await waiting;
    expect(result).toMatchObject({ ok: false, error: { kind: 'deadline_exceeded' } });
    expect(batcher.batches).toBe(0);
    const rows = await books.query("select 1 from idempotency_keys where idempotency_key = 'expires-queued'");
    expect(rows).toHaveLength(0);
  });

  it('a poisonous command in a batch fails alone; the others commit', async () => {
    const batcher = new CommandBatcher(books.ledger, {
      maxBatchSize: 4,
      maxWaitMs: 600_000,
      maxQueueLength: 4,
      maxBatchesInFlight: 1,
      retryAfterMs: 100,
    });
    const { payer2, merchant } = books.accounts;
    // PostgreSQL refuses NUL in text: the whole transaction fails, not a domain rule.
    const poison = { ...authorize('poison', payer2, merchant, 1n), description: 'lunch\u0000' };
    const list = [authorize('fine-1', payer2, merchant, 1n), poison, authorize('fine-2', payer2, merchant, 1n)];
    list.push(authorize('fine-3', payer2, merchant, 1n));
    const answers = await Promise.all(
      list.map((command) =>
        batcher.apply([command]).then(
          ([result]) => ({ ok: result?.ok }),
          (error: unknown) => ({ thrown: error }),
        ),
      ),
    );
    expect(answers[1]).toHaveProperty('thrown');
    expect([answers[0], answers[2], answers[3]]).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    expect((await checkLedger(books.database.db)).passed).toBe(true);
  });
});

describe('a deadline that passes between planning and the write', () => {
  let books: Books;
  beforeAll(async () => {
    books = await seededBooks();
  });
  afterAll(async () => {
    await books?.database.close();
    await books?.drop();
  });

  it('drops that command from the write and plans the others again without it', async () => {
    const { payer1, merchant } = books.accounts;
    // payer1 holds 100: planned in order, the first payment takes 70 and the second declines. The first one's
    // signal reads as aborted from its third look on: the ledger looks once before the transaction, once
    // before claiming keys and once after planning, so it expires exactly between planning and the write.
    let looks = 0;
    const expiresAfterPlanning = {
      get aborted() {
        looks++;
        return looks >= 3;
      },
    } as AbortSignal;
    const results = await books.ledger.apply(
      [authorize('late-70', payer1, merchant, 70n), authorize('in-time-70', payer1, merchant, 70n)],
      { signals: [expiresAfterPlanning, undefined] },
    );
    expect(results.map(comparable)).toMatchObject([
      { ok: false, kind: 'deadline_exceeded' },
      { ok: true, status: 'COMPLETED' },
    ]);
    const keys = await books.query<{ key: string }>(
      "select idempotency_key as key from idempotency_keys where idempotency_key in ('late-70', 'in-time-70')",
    );
    expect(keys.map((row) => row.key)).toEqual(['in-time-70']);
    const [balance] = await books.query<{ posted: string }>(
      'select posted_minor::text as posted from account_balances where account_id = $1',
      [payer1],
    );
    expect(balance?.posted).toBe('30');
    expect((await checkLedger(books.database.db)).passed).toBe(true);
  });
});
