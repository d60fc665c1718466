/**
 * Demo data for the embedded default: a few accounts with balances, created through the same application
 * layer as any request and under fixed idempotency keys, so every start after the first replays the same
 * accounts instead of creating more.
 */
import type { PaymentsApp } from '../app/payments-app.js';
import type { AccountRecord, AccountType } from '../domain/records.js';

const DEMO_PRINCIPAL = 'demo-seed';

export interface DemoAccounts {
  alice: AccountRecord;
  bob: AccountRecord;
  merchant: AccountRecord;
}

async function openFunded(
  app: PaymentsApp,
  name: string,
  depositMinor: bigint,
  type: AccountType = 'PERSONAL',
): Promise<AccountRecord> {
  const account = await app.createAccount(DEMO_PRINCIPAL, {
    idempotencyKey: `demo-account-${name}`,
    ownerRef: `${type === 'MERCHANT' ? 'merchant' : 'user'}:${name}`,
    currency: 'USD',
    type,
  });
  if (depositMinor > 0n) {
    await app.deposit(DEMO_PRINCIPAL, {
      idempotencyKey: `demo-deposit-${name}`,
      accountId: account.value.id,
      amount: { amountMinor: depositMinor, currency: 'USD' },
    });
  }
  return account.value;
}

export async function seedDemoAccounts(app: PaymentsApp): Promise<DemoAccounts> {
  return {
    alice: await openFunded(app, 'alice', 100_000n),
    bob: await openFunded(app, 'bob', 5_000n),
    merchant: await openFunded(app, 'coffee-shop', 0n, 'MERCHANT'),
  };
}

export function demoBanner(baseUrl: string, demo: DemoAccounts): string {
  const json = "-H 'Content-Type: application/json' -H 'Connect-Protocol-Version: 1'";
  const grpcAddress = baseUrl;
  return `
Demo accounts (USD):
  alice        ${demo.alice.id}   balance 1000.00
  bob          ${demo.bob.id}   balance 50.00
  coffee-shop  ${demo.merchant.id}   balance 0.00

Pay 12.50 from alice to bob (Connect JSON over HTTP/1.1):
  curl -s ${json} \\
    ${baseUrl}/payment.v1.PaymentService/AuthorizePayment \\
    -d '{"idempotencyKey":"'$(date +%s%N)'","payerAccountId":"${demo.alice.id}","payeeAccountId":"${demo.bob.id}","amount":{"amountMinor":"1250","currency":"USD"},"description":"lunch"}'

Read alice's balance:
  curl -s ${json} ${baseUrl}/payment.v1.PaymentService/GetAccountBalance -d '{"accountId":"${demo.alice.id}"}'

Native gRPC with buf curl (HTTP/2 cleartext):
  npx buf curl --http2-prior-knowledge --protocol grpc ${grpcAddress}/payment.v1.PaymentService/GetAccountBalance -d '{"accountId":"${demo.alice.id}"}'
  npx buf curl --http2-prior-knowledge --list-services ${grpcAddress}
`;
}
