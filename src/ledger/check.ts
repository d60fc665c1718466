/**
 * The ledger check: verifies the books straight from the database, read-only. Used by `npm run
 * ledger:check`, AdminService.CheckLedger and the tests. Each check lists at most MAX_VIOLATIONS findings.
 */
import { sql } from 'drizzle-orm';
import type { LedgerDb } from '../db/client.js';
import { throwIfPastDeadline } from '../domain/errors.js';

export interface LedgerCheckResult {
  name: string;
  passed: boolean;
  scope: string;
  violations: string[];
}

export interface LedgerCheckReport {
  passed: boolean;
  checks: LedgerCheckResult[];
}

const MAX_VIOLATIONS = 20;

// Signed amount of an entry for a credit-normal balance.
const SIGNED = `case e.direction when 'CREDIT' then e.amount_minor else -e.amount_minor end`;

async function rows<Row>(db: LedgerDb, query: string): Promise<Row[]> {
  const result = (await db.execute(sql.raw(query))) as unknown as { rows: Row[] };
  return result.rows;
}

async function count(db: LedgerDb, query: string): Promise<string> {
  const [row] = await rows<{ n: string }>(db, query);
  return row?.n ?? '0';
}

async function entriesSumToZero(db: LedgerDb): Promise<LedgerCheckResult> {
  const found = await rows<{ currency: string; total: string }>(
    db,
    `select e.currency, sum(${SIGNED})::text as total from ledger_entries e group by e.currency
     having sum(${SIGNED}) <> 0 limit ${MAX_VIOLATIONS}`,
  );
  return {
    name: 'entries_sum_to_zero_per_currency',
    passed: found.length === 0,
    scope: `${await count(db, 'select count(distinct currency)::text as n from ledger_entries')} currencies`,
    violations: found.map((row) => `entries in ${row.currency} sum to ${row.total}, not 0`),
  };
}

async function balancesEqualEntries(db: LedgerDb): Promise<LedgerCheckResult> {
  const found = await rows<{ account_id: string; stored: string; summed: string }>(
    db,
    `with sums as (
       select e.account_id,
              sum(${SIGNED}) as posted,
              sum(${SIGNED}) filter (where e.bucket = 'HELD') as held,
              sum(${SIGNED}) filter (where e.bucket = 'PENDING_SETTLEMENT') as pending
       from ledger_entries e group by e.account_id)
     select b.account_id,
            concat_ws('/', b.posted_minor, b.held_minor, b.pending_settlement_minor) as stored,
            concat_ws('/', coalesce(s.posted, 0), coalesce(s.held, 0), coalesce(s.pending, 0)) as summed
     from account_balances b left join sums s on s.account_id = b.account_id
     where b.posted_minor <> coalesce(s.posted, 0) or b.held_minor <> coalesce(s.held, 0)
        or b.pending_settlement_minor <> coalesce(s.pending, 0)
     limit ${MAX_VIOLATIONS}`,
  );
  return {
    name: 'balances_equal_their_entries',
    passed: found.length === 0,
    scope: `${await count(db, 'select count(*)::text as n from account_balances')} accounts (posted/held/pending)`,
    violations: found.map((row) => `${row.account_id} stores ${row.stored} but its entries sum to ${row.summed}`),
  };
}

async function noNegativeCustomerBalance(db: LedgerDb): Promise<LedgerCheckResult> {
  const found = await rows<{ account_id: string; available: string; held: string; pending: string }>(
    db,
    `select b.account_id, (b.posted_minor - b.held_minor - b.pending_settlement_minor)::text as available,
            b.held_minor::text as held, b.pending_settlement_minor::text as pending
     from account_balances b join accounts a on a.id = b.account_id
     where a.kind = 'USER' and (b.posted_minor - b.held_minor - b.pending_settlement_minor < 0
                                or b.held_minor < 0 or b.pending_settlement_minor < 0)
     limit ${MAX_VIOLATIONS}`,
  );
  return {
    name: 'no_negative_customer_balance',
    passed: found.length === 0,
    scope: `${await count(db, "select count(*)::text as n from accounts where kind = 'USER'")} customer accounts`,
    violations: found.map(
      (row) => `${row.account_id} has available ${row.available}, held ${row.held}, pending ${row.pending}`,
    ),
  };
}

/**
 * What a payment's entries (and its refunds' entries) must add up to, by status. A = amount, C = captured,
 * R = completed refunds: an open hold is payer AVAILABLE −A / HELD +A; a released hold nets to zero; a
 * captured payment nets payer −C+R, payee +C−R, with nothing left held.
 */
async function paymentsMatchEntries(db: LedgerDb): Promise<LedgerCheckResult> {
  const found = await rows<{ id: string; status: string; detail: string }>(
    db,
    `with refs as (
       select p.id as payment_id, p.id as reference_id from payments p
       union all select r.payment_id, r.id from refunds r),
     nets as (
       select p.id,
              count(e.id) as entries,
              coalesce(sum(${SIGNED}) filter (where e.account_id = p.payer_account_id and e.bucket = 'AVAILABLE'), 0) as payer_available,
              coalesce(sum(${SIGNED}) filter (where e.account_id = p.payer_account_id and e.bucket = 'HELD'), 0) as payer_held,
              coalesce(sum(${SIGNED}) filter (where e.account_id = p.payee_account_id), 0) as payee_total,
              coalesce(sum(${SIGNED}) filter (where e.account_id not in (p.payer_account_id, p.payee_account_id)), 0) as elsewhere
       from payments p join refs on refs.payment_id = p.id
       left join ledger_entries e on e.reference_id = refs.reference_id
       group by p.id),
     refunded as (
       select payment_id, sum(amount_minor) as total from refunds where status = 'COMPLETED' group by payment_id)
     select p.id, p.status,
            concat('entries=', n.entries, ' payer_available=', n.payer_available, ' payer_held=', n.payer_held,
                   ' payee=', n.payee_total, ' captured=', p.captured_minor, ' refunded=', p.refunded_minor) as detail
     from payments p join nets n on n.id = p.id left join refunded r on r.payment_id = p.id
     where n.elsewhere <> 0
        or p.refunded_minor <> coalesce(r.total, 0)
        or not case p.status
          when 'DECLINED' then n.entries = 0 and p.captured_minor = 0
          when 'AUTHORIZED' then n.payer_available = -p.amount_minor and n.payer_held = p.amount_minor
                                 and n.payee_total = 0 and p.captured_minor = 0
          when 'VOIDED' then n.payer_available = 0 and n.payer_held = 0 and n.payee_total = 0 and p.captured_minor = 0
          when 'EXPIRED' then n.payer_available = 0 and n.payer_held = 0 and n.payee_total = 0 and p.captured_minor = 0
          else n.payer_held = 0 and n.payer_available = p.refunded_minor - p.captured_minor
               and n.payee_total = p.captured_minor - p.refunded_minor and p.captured_minor > 0
               and (p.status = 'COMPLETED') = (p.refunded_minor = 0)
               and (p.status = 'REFUNDED') = (p.refunded_minor = p.captured_minor)
        end
     limit ${MAX_VIOLATIONS}`,
  );
  return {
    name: 'payment_entries_match_status',
    passed: found.length === 0,
    scope: `${await count(db, 'select count(*)::text as n from payments')} payments`,
    violations: found.map((row) => `payment ${row.id} (${row.status}): ${row.detail}`),
  };
}

/** Each settlement covers payments whose captures add up to its gross and moved exactly its net. */
async function settlementsAddUp(db: LedgerDb): Promise<LedgerCheckResult> {
  const found = await rows<{ id: string; detail: string }>(
    db,
    `with covered as (
       select settlement_id, count(*) as payments, sum(captured_minor) as gross
       from payments where settlement_id is not null group by settlement_id),
     moved as (
       select reference_id, sum(amount_minor) as net from ledger_entries
       where direction = 'CREDIT' and bucket = 'AVAILABLE' and reference_id like 'stl\\_%' group by reference_id)
     select s.id, concat('count=', s.payment_count, '/', coalesce(c.payments, 0), ' gross=', s.gross_minor, '/',
                         coalesce(c.gross, 0), ' net=', s.net_minor, '/', coalesce(m.net, 0)) as detail
     from settlements s left join covered c on c.settlement_id = s.id left join moved m on m.reference_id = s.id
     where s.payment_count <> coalesce(c.payments, 0) or s.gross_minor <> coalesce(c.gross, 0)
        or s.net_minor <> coalesce(m.net, 0)
     limit ${MAX_VIOLATIONS}`,
  );
  return {
    name: 'settlements_add_up',
    passed: found.length === 0,
    scope: `${await count(db, 'select count(*)::text as n from settlements')} settlements`,
    violations: found.map((row) => `settlement ${row.id}: ${row.detail} (stored/actual)`),
  };
}

/** A merchant's pending settlement is exactly what its unsettled payments captured, net of their refunds. */
async function pendingMatchesUnsettled(db: LedgerDb): Promise<LedgerCheckResult> {
  const found = await rows<{ account_id: string; pending: string; unsettled: string }>(
    db,
    `with unsettled as (
       select payee_account_id as account_id, sum(captured_minor - refunded_minor) as total
       from payments where awaits_settlement and settlement_id is null group by payee_account_id)
     select b.account_id, b.pending_settlement_minor::text as pending, coalesce(u.total, 0)::text as unsettled
     from account_balances b left join unsettled u on u.account_id = b.account_id
     where b.pending_settlement_minor <> coalesce(u.total, 0)
     limit ${MAX_VIOLATIONS}`,
  );
  return {
    name: 'pending_settlement_matches_unsettled_payments',
    passed: found.length === 0,
    scope: `${await count(db, "select count(*)::text as n from accounts where type = 'MERCHANT'")} merchant accounts`,
    violations: found.map(
      (row) => `${row.account_id} pending ${row.pending} but unsettled payments net ${row.unsettled}`,
    ),
  };
}

/**
 * Deposits and payouts each post exactly one debit and one credit of their amount between the account and
 * its currency's funding account: a deposit credits the account, a payout debits its available bucket.
 */
async function transfersMatchEntries(db: LedgerDb): Promise<LedgerCheckResult> {
  const found = await rows<{ id: string; detail: string }>(
    db,
    `with transfers as (
       select id, account_id, amount_minor, currency, 1 as sign from deposits
       union all select id, account_id, amount_minor, currency, -1 from payouts),
     nets as (
       select t.id, count(e.id) as entries,
              coalesce(sum(${SIGNED}) filter (where e.account_id = t.account_id and e.bucket = 'AVAILABLE'), 0) as account_net,
              coalesce(sum(${SIGNED}) filter (where e.account_id = 'sys_funding_' || t.currency), 0) as funding_net
       from transfers t left join ledger_entries e on e.reference_id = t.id group by t.id)
     select t.id, concat('entries=', n.entries, ' account=', n.account_net, ' funding=', n.funding_net,
                         ' amount=', t.amount_minor) as detail
     from transfers t join nets n on n.id = t.id
     where n.entries <> 2 or n.account_net <> t.sign * t.amount_minor or n.funding_net <> -t.sign * t.amount_minor
     union all
     select e.reference_id, 'entries without a payout row' from ledger_entries e
     where e.reference_id like 'pout\\_%' and not exists (select 1 from payouts p where p.id = e.reference_id)
     limit ${MAX_VIOLATIONS}`,
  );
  return {
    name: 'deposits_and_payouts_match_entries',
    passed: found.length === 0,
    scope: `${await count(db, 'select ((select count(*) from deposits) + (select count(*) from payouts))::text as n')} deposits and payouts`,
    violations: found.map((row) => `${row.id}: ${row.detail}`),
  };
}

/** A closed account holds nothing: closing needs every bucket at zero and nothing moves afterwards. */
async function closedAccountsEmpty(db: LedgerDb): Promise<LedgerCheckResult> {
  const found = await rows<{ account_id: string; detail: string }>(
    db,
    `select b.account_id, concat_ws('/', b.posted_minor, b.held_minor, b.pending_settlement_minor) as detail
     from account_balances b join accounts a on a.id = b.account_id
     where a.status = 'CLOSED' and (b.posted_minor <> 0 or b.held_minor <> 0 or b.pending_settlement_minor <> 0)
     limit ${MAX_VIOLATIONS}`,
  );
  return {
    name: 'closed_accounts_empty',
    passed: found.length === 0,
    scope: `${await count(db, "select count(*)::text as n from accounts where status = 'CLOSED'")} closed accounts`,
    violations: found.map((row) => `closed account ${row.account_id} holds ${row.detail} (posted/held/pending)`),
  };
}

export async function checkLedger(db: LedgerDb, signal?: AbortSignal): Promise<LedgerCheckReport> {
  const steps = [
    entriesSumToZero,
    balancesEqualEntries,
    noNegativeCustomerBalance,
    paymentsMatchEntries,
    settlementsAddUp,
    pendingMatchesUnsettled,
    transfersMatchEntries,
    closedAccountsEmpty,
  ];
  const checks: LedgerCheckResult[] = [];
  for (const step of steps) {
    // Each check scans whole tables: past the caller's deadline (`signal`) no one waits for the rest.
    throwIfPastDeadline(signal, 'retry with a longer deadline');
    checks.push(await step(db));
  }
  throwIfPastDeadline(signal, 'retry with a longer deadline');
  return { passed: checks.every((check) => check.passed), checks };
}
