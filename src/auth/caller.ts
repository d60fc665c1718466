/**
 * Who is calling, once authenticated. Wallet users (a JWT's subject) act on the accounts they own; backends
 * (an API key or a client certificate) act on any account within the scopes they hold.
 */
export const SCOPES = [
  /** AuthorizePayment on any payer's behalf. */
  'payments:write',
  /** CapturePayment and VoidPayment. */
  'payments:capture',
  /** RefundPayment. */
  'payments:refund',
  /** Every read: accounts, balances, entries, payments, settlements. */
  'payments:read',
  /** CreateAccount and DepositFunds. */
  'accounts:admin',
  /** RunSettlement. */
  'settlements:run',
  /** AdminService.CheckLedger. */
  'ledger:check',
  /** ApiKeyService: create, list and revoke backends' API keys. */
  'admin:keys',
] as const;

export type Scope = (typeof SCOPES)[number];

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

export type Caller =
  | {
      kind: 'user';
      /** Idempotency keys and rate limits are per principal. */
      principal: string;
      /** The JWT subject; a user owns the accounts whose owner_ref equals it. */
      userId: string;
    }
  | {
      kind: 'service';
      principal: string;
      scopes: ReadonlySet<Scope>;
    };

/** Owner constraint for ledger commands and reads: a user is limited to their own accounts, a service is not. */
export function ownerConstraintOf(caller: Caller): string | undefined {
  return caller.kind === 'user' ? caller.userId : undefined;
}
