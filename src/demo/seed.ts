/**
 * Demo data for the embedded default: a few accounts with balances, created through the application layer
 * like any request. An owner that already has a demo account keeps it (found by owner reference, not by
 * idempotency key, which expires after a day), so restarts never create more.
 */
import { randomUUID } from 'node:crypto';
import type { PaymentsApp } from '../app/payments-app.js';
import type { LedgerDb } from '../db/client.js';
import type { AccountRecord, AccountType } from '../domain/records.js';
import { findAccountByOwner } from '../ledger/queries.js';

const DEMO_PRINCIPAL = 'demo-seed';
const CURRENCY = 'USD';

export interface DemoAccount {
  name: string;
  account: AccountRecord;
}

const DEMO_OWNERS: { name: string; ownerRef: string; type: AccountType; depositMinor: bigint }[] = [
  { name: 'alice', ownerRef: 'user:alice', type: 'PERSONAL', depositMinor: 100_000n },
  { name: 'bob', ownerRef: 'user:bob', type: 'PERSONAL', depositMinor: 5_000n },
  { name: 'coffee-shop', ownerRef: 'user:coffee-shop', type: 'MERCHANT', depositMinor: 0n },
];

async function demoAccount(
  db: LedgerDb,
  app: PaymentsApp,
  owner: (typeof DEMO_OWNERS)[number],
): Promise<AccountRecord> {
  const existing = await findAccountByOwner(db, owner.ownerRef, CURRENCY);
  if (existing) return existing;
  const { value: account } = await app.createAccount(DEMO_PRINCIPAL, {
    idempotencyKey: `demo-account-${randomUUID()}`,
    ownerRef: owner.ownerRef,
    currency: CURRENCY,
    type: owner.type,
  });
  if (owner.depositMinor > 0n) {
    await app.deposit(DEMO_PRINCIPAL, {
      idempotencyKey: `demo-deposit-${randomUUID()}`,
      accountId: account.id,
      amount: { amountMinor: owner.depositMinor, currency: CURRENCY },
    });
  }
  return account;
}

export async function seedDemoAccounts(db: LedgerDb, app: PaymentsApp): Promise<DemoAccount[]> {
  const seeded: DemoAccount[] = [];
  for (const owner of DEMO_OWNERS) seeded.push({ name: owner.name, account: await demoAccount(db, app, owner) });
  return seeded;
}

function dollars(minor: bigint): string {
  const sign = minor < 0n ? '-' : '';
  const absolute = minor < 0n ? -minor : minor;
  return `${sign}${absolute / 100n}.${(absolute % 100n).toString().padStart(2, '0')}`;
}

export async function demoBanner(baseUrl: string, app: PaymentsApp, demo: DemoAccount[]): Promise<string> {
  const json = "-H 'Content-Type: application/json' -H 'Connect-Protocol-Version: 1'";
  const lines: string[] = [];
  for (const { name, account } of demo) {
    const balance = await app.getBalance(account.id);
    lines.push(`  ${name.padEnd(12)} ${account.id}   available ${dollars(balance.availableMinor)} (${account.type})`);
  }
  const [alice, bob] = demo;
  return `
Demo accounts (${CURRENCY}):
${lines.join('\n')}

Pay 12.50 from alice to bob (Connect JSON over HTTP/1.1):
  curl -s ${json} \\
    ${baseUrl}/payment.v1.PaymentService/AuthorizePayment \\
    -d '{"idempotencyKey":"'$(date +%s%N)'","payerAccountId":"${alice?.account.id}","payeeAccountId":"${bob?.account.id}","amount":{"amountMinor":"1250","currency":"USD"},"description":"lunch"}'

Read alice's balance:
  curl -s ${json} ${baseUrl}/payment.v1.PaymentService/GetAccountBalance -d '{"accountId":"${alice?.account.id}"}'

Native gRPC with buf curl (HTTP/2 cleartext):
  npx buf curl --http2-prior-knowledge --protocol grpc ${baseUrl}/payment.v1.PaymentService/GetAccountBalance -d '{"accountId":"${alice?.account.id}"}'
  npx buf curl --http2-prior-knowledge --list-services ${baseUrl}
`;
}
