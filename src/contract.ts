/**
 * The service's contract with its clients, described once: the scopes a backend's credentials can hold.
 * A leaf module (it imports only generated code), so auth, the rate limiter, config and the server can all
 * read it without importing each other.
 */

/** Scopes a backend (API key or client certificate) can be granted; wallet users hold none. */
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
