/**
 * After the load, checks what the ledger recorded against what the clients were told, plus the
 * double-entry invariants. A benchmark that only counts responses would miss a server that answers fast
 * because it stopped writing correctly. Only possible when the benchmark owns the database. (No overdraft
 * check: the schema's CHECK constraint refuses one at commit, and which buckets count changes with it.)
 */
import pg from 'pg';

export interface Verification {
  /** Payments the clients saw, warm-up included; failed requests may or may not have committed. */
  clientCompleted: number;
  clientDeclined: number;
  clientFailed: number;
  databaseCompleted: number;
  databaseDeclined: number;
  /** Sum of every posted balance; double entry makes it 0 (funding accounts go negative by the deposits). */
  balanceSumMinor: string;
  /** Balances that differ from the sum of their account's entries. */
  balancesNotMatchingEntries: number;
  problems: string[];
}

/**
 * Uses a connection of its own rather than TestDatabase.query: that one's pool.end() resolves before its
 * sockets have closed, and the `drop database … with (force)` that follows then kills a still-open backend,
 * whose error event crashes the process (the pool has no 'error' listener). Client.end() waits for the close.
 */
export async function verifyLedger(
  databaseUrl: string,
  client: { completed: number; declined: number; failed: number },
): Promise<Verification> {
  const connection = new pg.Client({ connectionString: databaseUrl });
  await connection.connect();
  let result: Verification;
  try {
    result = await checkLedger(connection, client);
  } finally {
    await connection.end();
  }
  result.problems.push(...(await serviceLedgerCheck(databaseUrl)));
  return result;
}

/**
 * The service's own ledger check (src/ledger/check.ts, what `npm run ledger:check` runs): every entry sums,
 * bucket, payment and settlement invariant, over the bulk-seeded rows as well as the load's.
 */
async function serviceLedgerCheck(databaseUrl: string): Promise<string[]> {
  const [{ openPostgres }, { checkLedger: checkBooks }] = await Promise.all([
    import('../../src/db/client.js'),
    import('../../src/ledger/check.js'),
  ]);
  const database = openPostgres({ url: databaseUrl, poolSize: 1 });
  try {
    const report = await checkBooks(database.db);
    return report.checks
      .filter((check) => !check.passed)
      .map((check) => `ledger:check ${check.name}: ${check.violations.slice(0, 3).join('; ')}`);
  } finally {
    await database.close();
  }
}

async function checkLedger(
  connection: pg.Client,
  client: { completed: number; declined: number; failed: number },
): Promise<Verification> {
  const query = async <Row extends pg.QueryResultRow>(text: string) => (await connection.query<Row>(text)).rows;
  const statusRows = await query<{ status: string; count: string }>(
    'select status, count(*)::text as count from payments group by status',
  );
  const countOf = (status: string) => Number(statusRows.find((row) => row.status === status)?.count ?? 0);
  const [sumRow] = await query<{ total: string }>(
    'select coalesce(sum(posted_minor), 0)::text as total from account_balances',
  );
  const [mismatchRow] = await query<{ count: string }>(`
    select count(*)::text as count from account_balances b
    where b.posted_minor <> (
      select coalesce(sum(case when e.direction = 'CREDIT' then e.amount_minor else -e.amount_minor end), 0)
      from ledger_entries e where e.account_id = b.account_id)`);

  const result: Verification = {
    clientCompleted: client.completed,
    clientDeclined: client.declined,
    clientFailed: client.failed,
    databaseCompleted: countOf('COMPLETED'),
    databaseDeclined: countOf('DECLINED'),
    balanceSumMinor: sumRow?.total ?? '?',
    balancesNotMatchingEntries: Number(mismatchRow?.count ?? 0),
    problems: [],
  };

  // A request that failed on the client (e.g. its deadline passed) may still have committed on the server,
  // so the database may hold up to clientFailed more payments than the clients saw, never fewer.
  const recorded = result.databaseCompleted + result.databaseDeclined;
  const seen = client.completed + client.declined;
  if (result.databaseCompleted < client.completed || result.databaseDeclined < client.declined) {
    result.problems.push(`database holds fewer payments than clients were told were recorded (${recorded} < ${seen})`);
  }
  if (recorded > seen + client.failed) {
    result.problems.push(`database holds ${recorded - seen} payments nobody was told about (failed: ${client.failed})`);
  }
  if (result.balanceSumMinor !== '0') result.problems.push(`balances sum to ${result.balanceSumMinor}, not 0`);
  if (result.balancesNotMatchingEntries > 0) {
    result.problems.push(`${result.balancesNotMatchingEntries} balances differ from the sum of their entries`);
  }
  return result;
}
