/** Small helpers to set up accounts and money through the public API, the way a client would. */
import { randomUUID } from 'node:crypto';
import type { Clients } from './clients.js';

export const key = (label = 'k') => `${label}-${randomUUID()}`;

export async function openAccount(clients: Clients, currency = 'USD', ownerRef = 'user:test'): Promise<string> {
  const { account } = await clients.accounts.createAccount({ idempotencyKey: key('open'), ownerRef, currency });
  if (!account) throw new Error('CreateAccount returned no account');
  return account.id;
}

export async function deposit(clients: Clients, accountId: string, amountMinor: bigint, currency = 'USD') {
  await clients.accounts.depositFunds({
    idempotencyKey: key('deposit'),
    accountId,
    amount: { amountMinor, currency },
  });
}

export async function fundedAccount(clients: Clients, amountMinor: bigint, currency = 'USD'): Promise<string> {
  const id = await openAccount(clients, currency);
  if (amountMinor > 0n) await deposit(clients, id, amountMinor, currency);
  return id;
}

export async function availableOf(clients: Clients, accountId: string): Promise<bigint> {
  const { balance } = await clients.payments.getAccountBalance({ accountId });
  return balance?.available?.amountMinor ?? -1n;
}
