/**
 * gRPC clients, and the accounts the load runs against, created through the public API (the same way in
 * every mode, so that a remote target needs nothing but its URL).
 */
import { type Client, createClient, type Interceptor } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import pg from 'pg';
import { AccountService, AccountType } from '../../gen/payment/v1/account_pb.js';
import { PaymentService } from '../../gen/payment/v1/payment_pb.js';
import { bulkSeedFundedAccounts } from './seed-sql.js';

export const CURRENCY = 'USD';
// $1,000,000 per account. Payments are at most $100 (see load.ts), so even a payer that takes part in
// every payment of a long run at high throughput does not run dry: declines stay a signal of a bug.
const DEPOSIT_MINOR = 100_000_000n;

export interface LedgerClients {
  payments: Client<typeof PaymentService>;
  accounts: Client<typeof AccountService>;
}

/**
 * One transport per connection: connect-node keeps one HTTP/2 session per transport, so N transports
 * spread the streams over N connections.
 */
export function grpcClients(baseUrl: string, connections: number, apiKey: string | undefined): LedgerClients[] {
  // A backend's call: its API key as metadata on every request.
  const authenticate: Interceptor = (next) => (request) => {
    if (apiKey) request.header.set('x-api-key', apiKey);
    return next(request);
  };
  return Array.from({ length: connections }, () => {
    const transport = createGrpcTransport({ baseUrl, interceptors: [authenticate] });
    return { payments: createClient(PaymentService, transport), accounts: createClient(AccountService, transport) };
  });
}

export interface BenchAccounts {
  /** Payers everywhere, and payees in the uniform scenario. */
  users: string[];
  /** The one payee of the hot-payee scenario (a MERCHANT account); not among the users, so it never pays. */
  merchant: string;
}

/** Creates `count` funded user accounts and one merchant account, `concurrency` requests at a time. */
export async function createBenchAccounts(
  clients: LedgerClients,
  options: { count: number; concurrency: number; runId: string; timeoutMs: number; signal: AbortSignal },
): Promise<BenchAccounts> {
  const { runId, timeoutMs, signal } = options;
  const ids: string[] = new Array(options.count + 1);
  await forEachBounded(options.count + 1, options.concurrency, signal, async (index) => {
    const isMerchant = index === options.count;
    const { account } = await clients.accounts.createAccount(
      {
        idempotencyKey: `bench-${runId}-account-${index}`,
        ownerRef: isMerchant ? `bench:${runId}:merchant` : `bench:${runId}:user:${index}`,
        currency: CURRENCY,
        // A MERCHANT payee takes the capture-to-pending-settlement path, as a real checkout would.
        type: isMerchant ? AccountType.MERCHANT : AccountType.PERSONAL,
      },
      { timeoutMs },
    );
    if (!account) throw new Error('CreateAccount answered without an account');
    ids[index] = account.id;
    if (isMerchant) return;
    await clients.accounts.depositFunds(
      {
        idempotencyKey: `bench-${runId}-deposit-${index}`,
        accountId: account.id,
        amount: { amountMinor: DEPOSIT_MINOR, currency: CURRENCY },
      },
      { timeoutMs },
    );
  });
  return { users: ids.slice(0, options.count), merchant: ids[options.count]! };
}

/**
 * Runs work(0..count-1) with at most `concurrency` calls in flight. The first failure, or the abort signal,
 * stops the others from starting new items; running ones finish (bounded by their deadline), which is why
 * the signal is checked here rather than handed to every request.
 */
async function forEachBounded(
  count: number,
  concurrency: number,
  signal: AbortSignal,
  work: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && !signal.aborted && next < count) {
      const index = next++;
      try {
        await work(index);
      } catch (error) {
        failure ??= new Error(`setup of account ${index} failed: ${error instanceof Error ? error.message : error}`, {
          cause: error,
        });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  if (failure !== undefined) throw failure;
  if (signal.aborted) throw new Error('setup interrupted');
}

/**
 * Commands per transaction when seeding through the ledger core (its own cap is MAX_COMMANDS_PER_TRANSACTION),
 * and the number of users seeded that way before bulk inserts take over.
 */
export const SEED_BATCH = 500;
/** Seeding transactions in flight at once. */
const SEED_PARALLEL = 4;

/**
 * Creates `count` funded user accounts and one merchant in a database the benchmark owns. The merchant and
 * the first SEED_BATCH users go through the ledger core (src/ledger), exactly as the API would write them
 * (which also creates the USD funding account); the rest are bulk-inserted in chunks (seed-sql.ts), because
 * through the core 100,000 accounts take minutes on a loaded machine.
 */
export async function seedBenchAccounts(
  databaseUrl: string,
  options: { count: number; runId: string; signal: AbortSignal },
): Promise<BenchAccounts> {
  const throughCore = Math.min(options.count, SEED_BATCH);
  const core = await seedThroughCore(databaseUrl, { ...options, count: throughCore });
  if (options.count === throughCore) return core;
  const bulk = await bulkSeedFundedAccounts(databaseUrl, {
    count: options.count - throughCore,
    ownerRefPrefix: `bench:${options.runId}:user:`,
    firstIndex: throughCore,
    depositMinor: DEPOSIT_MINOR,
    currency: CURRENCY,
    signal: options.signal,
  });
  await vacuumAnalyze(databaseUrl);
  return { users: [...core.users, ...bulk], merchant: core.merchant };
}

/**
 * VACUUM ANALYZE after the bulk load, as the pgbench anchor does after its own (schema.sql, reset.sql): the
 * service is then measured on tables in the state autovacuum keeps them in, not on 100,000 just-inserted rows
 * whose first touches set hint bits and whose statistics autoanalyze rewrites in the middle of the first rounds.
 */
async function vacuumAnalyze(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('vacuum analyze');
  } finally {
    await client.end();
  }
}

/**
 * `count` funded users and one merchant through the ledger core, in lists of SEED_BATCH commands per
 * transaction: the same rows, entries and events as the API writes.
 */
async function seedThroughCore(
  databaseUrl: string,
  options: { count: number; runId: string; signal: AbortSignal },
): Promise<BenchAccounts> {
  const [{ openPostgres }, { Ledger }] = await Promise.all([
    import('../../src/db/client.js'),
    import('../../src/ledger/apply.js'),
  ]);
  const connection = openPostgres({ url: databaseUrl, poolSize: SEED_PARALLEL });
  try {
    const ledger = new Ledger(connection.db, {
      idempotencyRetentionMs: 24 * 60 * 60 * 1000,
      maxPaymentMinor: () => DEPOSIT_MINOR,
    });
    const principal = `bench-seed:${options.runId}`;
    const total = options.count + 1;
    const ids: string[] = new Array(total);
    const batches = Math.ceil(total / SEED_BATCH);
    await forEachBounded(batches, SEED_PARALLEL, options.signal, async (batch) => {
      const indexes = Array.from(
        { length: Math.min(SEED_BATCH, total - batch * SEED_BATCH) },
        (_, i) => batch * SEED_BATCH + i,
      );
      const created = await ledger.apply(
        indexes.map((index) => ({
          kind: 'createAccount' as const,
          principal,
          idempotencyKey: `account-${index}`,
          ownerRef:
            index === options.count ? `bench:${options.runId}:merchant` : `bench:${options.runId}:user:${index}`,
          currency: CURRENCY,
          // A MERCHANT payee takes the capture-to-pending-settlement path, as a real checkout would.
          type: index === options.count ? ('MERCHANT' as const) : ('PERSONAL' as const),
        })),
      );
      created.forEach((result, i) => {
        if (!result.ok || result.outcome.kind !== 'account') throw new Error(`creating account ${indexes[i]} failed`);
        ids[indexes[i]!] = result.outcome.account.id;
      });
      const users = indexes.filter((index) => index < options.count);
      const deposited = await ledger.apply(
        users.map((index) => ({
          kind: 'deposit' as const,
          principal,
          idempotencyKey: `deposit-${index}`,
          accountId: ids[index]!,
          amountMinor: DEPOSIT_MINOR,
          currency: CURRENCY,
        })),
      );
      if (deposited.some((result) => !result.ok)) throw new Error(`a deposit in batch ${batch} failed`);
    });
    return { users: ids.slice(0, options.count), merchant: ids[options.count]! };
  } finally {
    await connection.close();
  }
}
