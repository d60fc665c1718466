/**
 * Checks the ledger's first law straight from the database: per currency the entries sum to zero, every
 * stored balance equals the sum of its entries, no customer account is negative, and every completed
 * payment has exactly one debit and one credit of its amount.
 */
import type { TestDatabase } from './database.js';

export async function ledgerViolations(database: TestDatabase): Promise<string[]> {
  const violations: string[] = [];
  const unbalanced = await database.query<{ currency: string; total: string }>(`
    select currency, sum(case direction when 'CREDIT' then amount_minor else -amount_minor end)::text as total
    from ledger_entries group by currency
    having sum(case direction when 'CREDIT' then amount_minor else -amount_minor end) <> 0`);
  for (const row of unbalanced) violations.push(`entries in ${row.currency} sum to ${row.total}, not 0`);

  const drifted = await database.query<{ account_id: string; posted: string; entries: string }>(`
    select b.account_id, b.posted_minor::text as posted,
           coalesce(sum(case e.direction when 'CREDIT' then e.amount_minor else -e.amount_minor end), 0)::text as entries
    from account_balances b left join ledger_entries e on e.account_id = b.account_id
    group by b.account_id, b.posted_minor
    having b.posted_minor <> coalesce(sum(case e.direction when 'CREDIT' then e.amount_minor else -e.amount_minor end), 0)`);
  for (const row of drifted)
    violations.push(`${row.account_id} posted ${row.posted} but entries sum to ${row.entries}`);

  const negative = await database.query<{ account_id: string }>(`
    select b.account_id from account_balances b join accounts a on a.id = b.account_id
    where a.kind = 'USER' and b.posted_minor - b.held_minor < 0`);
  for (const row of negative) violations.push(`${row.account_id} is negative`);

  const badPayments = await database.query<{ id: string; status: string; entries: string }>(`
    select p.id, p.status, count(e.id)::text as entries from payments p
    left join ledger_entries e on e.reference_id = p.id
    group by p.id, p.status, p.amount_minor, p.payer_account_id, p.payee_account_id
    having (p.status = 'COMPLETED' and not (
              count(e.id) = 2
              and count(*) filter (where e.direction = 'DEBIT' and e.account_id = p.payer_account_id and e.amount_minor = p.amount_minor) = 1
              and count(*) filter (where e.direction = 'CREDIT' and e.account_id = p.payee_account_id and e.amount_minor = p.amount_minor) = 1))
        or (p.status = 'DECLINED' and count(e.id) <> 0)`);
  for (const row of badPayments) violations.push(`payment ${row.id} (${row.status}) has ${row.entries} entries`);
  return violations;
}
