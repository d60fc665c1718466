/** What the ledger stores and returns, in domain terms. Money is bigint minor units. */
export type AccountStatus = 'ACTIVE' | 'FROZEN' | 'CLOSED';
export type AccountType = 'PERSONAL' | 'MERCHANT';

export interface AccountRecord {
  id: string;
  ownerRef: string;
  currency: string;
  status: AccountStatus;
  type: AccountType;
  createdAt: Date;
}

export interface BalanceRecord {
  accountId: string;
  currency: string;
  postedMinor: bigint;
  heldMinor: bigint;
  pendingSettlementMinor: bigint;
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

/** Money that left the ledger from an account's available balance. */
export interface PayoutRecord {
  id: string;
  accountId: string;
  amountMinor: bigint;
  currency: string;
  createdAt: Date;
}

export type PaymentStatus =
  | 'COMPLETED'
  | 'DECLINED'
  | 'AUTHORIZED'
  | 'VOIDED'
  | 'EXPIRED'
  | 'PARTIALLY_REFUNDED'
  | 'REFUNDED';

export type CaptureMode = 'AUTOMATIC' | 'MANUAL';

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
  captureMode: CaptureMode;
  /** What moved to the payee. */
  capturedMinor: bigint;
  /** Sum of completed refunds; never above capturedMinor. */
  refundedMinor: bigint;
  /** When an AUTHORIZED hold expires; null for AUTOMATIC payments. */
  expiresAt: Date | null;
  /** Captured into a merchant's pending settlement, so a settlement run must cover it. */
  awaitsSettlement: boolean;
  settlementId: string | null;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

export type RefundStatus = 'COMPLETED' | 'DECLINED';

export interface RefundRecord {
  id: string;
  paymentId: string;
  amountMinor: bigint;
  currency: string;
  status: RefundStatus;
  declineReason: DeclineReason | null;
  reason: string;
  createdAt: Date;
}

export interface SettlementRecord {
  id: string;
  accountId: string;
  currency: string;
  paymentCount: number;
  grossMinor: bigint;
  refundsMinor: bigint;
  netMinor: bigint;
  paymentIds: string[];
  createdAt: Date;
}

export type EntryDirection = 'DEBIT' | 'CREDIT';
export type BalanceBucket = 'AVAILABLE' | 'HELD' | 'PENDING_SETTLEMENT';

export interface LedgerEntryRecord {
  id: string;
  accountId: string;
  referenceId: string;
  direction: EntryDirection;
  bucket: BalanceBucket;
  amountMinor: bigint;
  currency: string;
  balanceAfterMinor: bigint;
  accountVersion: bigint;
  createdAt: Date;
}

/** One message of an account watch (WatchAccount): a snapshot, entries caught up or changed, or a heartbeat. */
export interface WatchUpdate {
  kind: 'SNAPSHOT' | 'CATCH_UP' | 'CHANGE' | 'HEARTBEAT';
  balance?: BalanceRecord;
  status?: AccountStatus;
  /** Oldest first. */
  entries: LedgerEntryRecord[];
}
