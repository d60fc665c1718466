/**
 * Bulk seeding for large account counts: funded PERSONAL accounts written with a few set-based statements
 * per chunk instead of one ledger command each. The rows are what the ledger core writes for CreateAccount
 * followed by DepositFunds (accounts, balances, deposits, a DEBIT on the funding account and a CREDIT on the
 * new account with running balances and versions), without their outbox events and idempotency keys, which
 * nothing in the benchmark reads. The funding account must exist (seed one deposit through the core first).
 * The ledger check at the end of a run (verify.ts) covers these rows like any others.
 */
import pg from 'pg';
import { newId } from '../../src/domain/ids.js';
import { fundingAccountId } from '../../src/ledger/state.js';

/** Accounts per transaction: 5 arrays of this many ids per statement stay well inside a query's limits. */
const CHUNK = 5_000;

export interface BulkSeedOptions {
  count: number;
  /** owner_ref of account n is `${ownerRefPrefix}${firstIndex + n}`. */
  ownerRefPrefix: string;
  firstIndex: number;
  depositMinor: bigint;
  currency: string;
  signal: AbortSignal;
}

/** Returns the new accounts' ids, in order. Chunks run one after another: each locks the funding balance. */
export async function bulkSeedFundedAccounts(databaseUrl: string, options: BulkSeedOptions): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const ids: string[] = [];
  try {
    for (let start = 0; start < options.count; start += CHUNK) {
      if (options.signal.aborted) throw new Error('setup interrupted');
      const size = Math.min(CHUNK, options.count - start);
      ids.push(...(await seedChunk(client, options, options.firstIndex + start, size)));
    }
    return ids;
  } finally {
    await client.end();
  }
}

async function seedChunk(client: pg.Client, options: BulkSeedOptions, firstIndex: number, size: number) {
  const accountIds = Array.from({ length: size }, () => newId('acct'));
  const ownerRefs = accountIds.map((_, i) => `${options.ownerRefPrefix}${firstIndex + i}`);
  const depositIds = accountIds.map(() => newId('dep'));
  const creditIds = accountIds.map(() => newId('ent'));
  const debitIds = accountIds.map(() => newId('ent'));
  const funding = fundingAccountId(options.currency);
  const amount = options.depositMinor.toString();
  await client.query('begin');
  try {
    const locked = await client.query<{ version: string; posted: string }>(
      'select version::text as version, posted_minor::text as posted from account_balances where account_id = $1 for update',
      [funding],
    );
    const fundingRow = locked.rows[0];
    if (!fundingRow) throw new Error(`funding account ${funding} missing: seed one deposit through the core first`);
    await client.query(
      `insert into accounts (id, owner_ref, currency, status, kind, type)
       select id, owner_ref, $3, 'ACTIVE', 'USER', 'PERSONAL' from unnest($1::text[], $2::text[]) as t(id, owner_ref)`,
      [accountIds, ownerRefs, options.currency],
    );
    // Each new account: one CREDIT, so posted = available = the deposit, version 1.
    await client.query(
      `insert into account_balances (account_id, currency, posted_minor, allow_negative, version)
       select id, $2, $3::bigint, false, 1 from unnest($1::text[]) as t(id)`,
      [accountIds, options.currency, amount],
    );
    await client.query(
      `insert into deposits (id, account_id, amount_minor, currency)
       select id, account_id, $3::bigint, $4 from unnest($1::text[], $2::text[]) as t(id, account_id)`,
      [depositIds, accountIds, amount, options.currency],
    );
    // The funding account's entries continue its version sequence and running balance, as the core's would.
    await client.query(
      `insert into ledger_entries
         (id, account_id, reference_id, direction, bucket, amount_minor, currency, balance_after_minor, account_version)
       select credit_id, account_id, deposit_id, 'CREDIT', 'AVAILABLE', $6::bigint, $7, $6::bigint, 1
         from unnest($1::text[], $2::text[], $3::text[]) as t(credit_id, account_id, deposit_id)
       union all
       select debit_id, $5, deposit_id, 'DEBIT', 'AVAILABLE', $6::bigint, $7, $9::bigint - $6::bigint * n, $8::bigint + n
         from unnest($4::text[], $3::text[]) with ordinality as t(debit_id, deposit_id, n)`,
      [
        creditIds,
        accountIds,
        depositIds,
        debitIds,
        funding,
        amount,
        options.currency,
        fundingRow.version,
        fundingRow.posted,
      ],
    );
    await client.query(
      `update account_balances set posted_minor = posted_minor - $2::bigint * $3, version = version + $3,
         updated_at = now() where account_id = $1`,
      [funding, amount, size],
    );
    await client.query('commit');
  } catch (error) {
    await client.query('rollback');
    throw error;
  }
  return accountIds;
}
