/**
 * Who is calling, once authenticated. Wallet users (a JWT's subject) act on the accounts they own; backends
 * (an API key or a client certificate) act on any account within the scopes they hold.
 */
import type { Scope } from '../contract.js';

export { isScope, SCOPES, type Scope } from '../contract.js';

/** The principal of a request without credentials (public endpoints, or one about to be refused). */
export const ANONYMOUS_PRINCIPAL = 'anonymous';

export type Caller =
  | {
      kind: 'user';
      /** Idempotency keys and rate limits are per principal. */
      principal: string;
      /** The JWT subject; a user owns the accounts whose owner_ref equals it. */
      userId: string;
    }
  | {
      kind: 'backend';
      principal: string;
      scopes: ReadonlySet<Scope>;
    };

/** Owner constraint for ledger commands and reads: a user is limited to their own accounts, a backend is not. */
export function ownerConstraintOf(caller: Caller): string | undefined {
  return caller.kind === 'user' ? caller.userId : undefined;
}
