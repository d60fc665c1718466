/** What the ledger stores and returns, in domain terms. Money is bigint minor units. */
export type AccountStatus = 'ACTIVE' | 'FROZEN' | 'CLOSED';

export interface AccountRecord {
  id: string;
  ownerRef: string;
  currency: string;
  status: AccountStatus;
  createdAt: Date;
}

export interface BalanceRecord {
  accountId: string;
  currency: string;
  postedMinor: bigint;
  heldMinor: bigint;
  availableMinor: bigint;
  version: bigint;
  updatedAt: Date;
}

export interface DepositRecord {
  id: string;
  accountId: string;
  amountMinor: bigint;
  currency: string;
  createdAt: Date;
}

export type PaymentStatus = 'COMPLETED' | 'DECLINED';

export type DeclineReason =
  | 'INSUFFICIENT_FUNDS'
  | 'PAYER_ACCOUNT_INACTIVE'
  | 'PAYEE_ACCOUNT_INACTIVE'
  | 'CURRENCY_MISMATCH'
  | 'AMOUNT_ABOVE_LIMIT';

export interface PaymentRecord {
  id: string;
  payerAccountId: string;
  payeeAccountId: string;
  amountMinor: bigint;
  currency: string;
  status: PaymentStatus;
  declineReason: DeclineReason | null;
  description: string;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

export type EntryDirection = 'DEBIT' | 'CREDIT';

export interface LedgerEntryRecord {
  id: string;
  accountId: string;
  referenceId: string;
  direction: EntryDirection;
  amountMinor: bigint;
  currency: string;
  balanceAfterMinor: bigint;
  accountVersion: bigint;
  createdAt: Date;
}
