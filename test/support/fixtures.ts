/** Small helpers to set up accounts and money through the public API, the way a client would. */
import { randomUUID } from 'node:crypto';
import { AccountType } from '../../gen/payment/v1/account_pb.js';
import { CaptureMode } from '../../gen/payment/v1/payment_pb.js';
import type { Clients } from './clients.js';
import { within } from './waits.js';

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

export async function merchantAccount(clients: Clients, currency = 'USD'): Promise<string> {
  const { account } = await clients.accounts.createAccount({
    idempotencyKey: key('merchant'),
    ownerRef: 'merchant:test',
    currency,
    type: AccountType.MERCHANT,
  });
  if (!account) throw new Error('CreateAccount returned no account');
  return account.id;
}

export async function balanceOf(clients: Clients, accountId: string) {
  const { balance } = await clients.payments.getAccountBalance({ accountId });
  return {
    available: balance?.available?.amountMinor ?? -1n,
    held: balance?.held?.amountMinor ?? -1n,
    pending: balance?.pendingSettlement?.amountMinor ?? -1n,
    posted: balance?.posted?.amountMinor ?? -1n,
  };
}

/** A MANUAL payment (a hold); returns the payment id. */
export async function authorizeHold(
  clients: Clients,
  payer: string,
  payee: string,
  amountMinor: bigint,
  holdSeconds?: number,
): Promise<string> {
  const { payment } = await clients.payments.authorizePayment({
    idempotencyKey: key('hold'),
    payerAccountId: payer,
    payeeAccountId: payee,
    amount: { amountMinor, currency: 'USD' },
    captureMode: CaptureMode.MANUAL,
    holdDuration: holdSeconds === undefined ? undefined : { seconds: BigInt(holdSeconds), nanos: 0 },
  });
  if (!payment) throw new Error('AuthorizePayment returned no payment');
  return payment.id;
}

/** A funded payer, an empty payee and an AuthorizePayment request between them under a fresh key. */
export async function paymentSetUp(clients: Clients, payerFundsMinor: bigint, amountMinor: bigint) {
  const payer = await fundedAccount(clients, payerFundsMinor);
  const payee = await openAccount(clients);
  const request = {
    idempotencyKey: key(),
    payerAccountId: payer,
    payeeAccountId: payee,
    amount: { amountMinor, currency: 'USD' },
  };
  return { payer, payee, request };
}

/**
 * The id of a one-second hold of `amountMinor` on `payer` (to `payee`, a new account by default), once the
 * server's clock (this host's) has passed its expiry: a condition waited for, bounded at 10 s. Needs a server
 * that allows one-second holds (HOLD_MIN_SECONDS=1) and whose sweeper does not release them first.
 */
export async function expiredHold(
  clients: Clients,
  payer: string,
  amountMinor: bigint,
  payee?: string,
): Promise<string> {
  const { payment: hold } = await clients.payments.authorizePayment({
    idempotencyKey: key(),
    payerAccountId: payer,
    payeeAccountId: payee ?? (await openAccount(clients)),
    amount: { amountMinor, currency: 'USD' },
    captureMode: CaptureMode.MANUAL,
    holdDuration: { seconds: 1n, nanos: 0 },
  });
  const expiresAtMs = Number(hold!.expireTime!.seconds) * 1000 + hold!.expireTime!.nanos / 1e6;
  await within(
    (async () => {
      while (Date.now() <= expiresAtMs + 5) await new Promise((resolve) => setTimeout(resolve, 20));
    })(),
    10_000,
    'the hold expiring',
  );
  return hold!.id;
}
