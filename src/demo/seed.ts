/**
 * Demo data for the embedded default: a few accounts with balances, created through the application layer
 * like any request. An owner that already has a demo account keeps it (found by owner reference, not by
 * idempotency key, which expires after a day), so restarts never create more.
 */
import { randomUUID } from 'node:crypto';
import type { PaymentsApp } from '../app/payments-app.js';
import { createApiKey, listApiKeys, revokeApiKey } from '../auth/api-keys.js';
import { type Caller, SCOPES } from '../auth/caller.js';
import { type DevKeyPair, signDevToken } from '../auth/dev-keys.js';
import type { LedgerDb } from '../db/client.js';
import type { AccountRecord, AccountType } from '../domain/records.js';
import { findAccountByOwner } from '../ledger/queries.js';
import { commandOrigin } from '../observability/request-context.js';

/** Seeding acts as a backend holding every scope. */
const DEMO_SEEDER: Caller = { kind: 'backend', principal: 'system:demo-seed', scopes: new Set(SCOPES) };
const CURRENCY = 'USD';

export interface DemoAccount {
  name: string;
  account: AccountRecord;
}

/** Credentials the banner prints: a token per demo user (their JWT subject is their owner_ref) and a backend key. */
export interface DemoCredentials {
  tokens: Map<string, string>;
  adminApiKey: string;
}

const DEMO_ADMIN_KEY_NAME = 'demo-admin';

/** Signs a token per demo user and replaces the demo backend key (older ones are revoked, not piled up). */
export async function demoCredentials(db: LedgerDb, pair: DevKeyPair, demo: DemoAccount[]): Promise<DemoCredentials> {
  const tokens = new Map<string, string>();
  for (const { name, account } of demo) tokens.set(name, await signDevToken(pair, account.ownerRef));
  for (const key of await listApiKeys(db)) {
    if (key.name === DEMO_ADMIN_KEY_NAME && !key.revokedAt) await revokeApiKey(db, key.id);
  }
  const { key } = await createApiKey(db, DEMO_ADMIN_KEY_NAME, [...SCOPES]);
  return { tokens, adminApiKey: key };
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
  const { value: account } = await app.createAccount(DEMO_SEEDER, {
    idempotencyKey: `demo-account-${randomUUID()}`,
    ownerRef: owner.ownerRef,
    currency: CURRENCY,
    type: owner.type,
    origin: commandOrigin(),
  });
  if (owner.depositMinor > 0n) {
    await app.deposit(DEMO_SEEDER, {
      idempotencyKey: `demo-deposit-${randomUUID()}`,
      accountId: account.id,
      amount: { amountMinor: owner.depositMinor, currency: CURRENCY },
      origin: commandOrigin(),
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

export async function demoBanner(
  baseUrl: string,
  app: PaymentsApp,
  demo: DemoAccount[],
  credentials: DemoCredentials | undefined,
  /** With TLS: the certificate file, passed as --cacert so that a self-signed certificate verifies. */
  tlsCertFile?: string,
): Promise<string> {
  const aliceToken = credentials?.tokens.get('alice') ?? '<token>';
  const auth = `-H 'Authorization: Bearer ${aliceToken}'`;
  const cacert = tlsCertFile ? `--cacert ${JSON.stringify(tlsCertFile)} ` : '';
  const json = `${cacert}-H 'Content-Type: application/json' -H 'Connect-Protocol-Version: 1' ${auth}`;
  // Cleartext HTTP/2 needs prior knowledge; over TLS, ALPN negotiates h2.
  const grpcFlags = tlsCertFile ? cacert.trim() : '--http2-prior-knowledge';
  const grpcOver = tlsCertFile ? 'HTTP/2 over TLS' : 'HTTP/2 cleartext';
  const lines: string[] = [];
  for (const { name, account } of demo) {
    const balance = await app.getBalance(DEMO_SEEDER, account.id);
    lines.push(`  ${name.padEnd(12)} ${account.id}   available ${dollars(balance.availableMinor)} (${account.type})`);
  }
  const [alice, bob] = demo;
  return `
Demo accounts (${CURRENCY}):
${lines.join('\n')}

Development credentials (embedded mode only; tokens last 24 h, a new set is printed at each start):
${[...(credentials?.tokens ?? new Map<string, string>())].map(([name, token]) => `  ${name.padEnd(12)} Authorization: Bearer ${token}`).join('\n')}
  backend key  x-api-key: ${credentials?.adminApiKey ?? '<npm run apikey -- create …>'}   (every scope)

Browser wallet (signs in as the demo user; see docs/wallet.md):
${[...(credentials?.tokens ?? new Map<string, string>())].map(([name, token]) => `  ${name.padEnd(12)} ${baseUrl}/wallet/#token=${token}`).join('\n')}

Pay 12.50 from alice to bob as alice (Connect JSON over HTTP/1.1):
  curl -s ${json} \\
    ${baseUrl}/payment.v1.PaymentService/AuthorizePayment \\
    -d '{"idempotencyKey":"'$(date +%s%N)'","payerAccountId":"${alice?.account.id}","payeeAccountId":"${bob?.account.id}","amount":{"amountMinor":"1250","currency":"USD"},"description":"lunch"}'

Read alice's balance:
  curl -s ${json} ${baseUrl}/payment.v1.PaymentService/GetAccountBalance -d '{"accountId":"${alice?.account.id}"}'

Native gRPC with buf curl (${grpcOver}):
  npx buf curl ${grpcFlags} --protocol grpc ${auth} ${baseUrl}/payment.v1.PaymentService/GetAccountBalance -d '{"accountId":"${alice?.account.id}"}'
  npx buf curl ${grpcFlags} --list-services ${baseUrl}
`;
}
