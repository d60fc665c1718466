/**
 * The wallet's listings: a user's accounts, an account's payments, a payment's refunds, and one refund.
 * The same ownership rules as the single reads in payments-app.ts: someone else's account, payment or refund
 * answers NOT_FOUND exactly as a missing one would. Pages are keyset cursors (src/ledger/list-queries.ts)
 * wrapped in page tokens bound to the listing and its filters.
 */
import { createHash } from 'node:crypto';
import type { Caller } from '../auth/caller.js';
import type { LedgerDb } from '../db/client.js';
import { DomainError, invalidArgument, notFound, throwIfPastDeadline } from '../domain/errors.js';
import type { AccountRecord, PaymentRecord, PaymentStatus, RefundRecord } from '../domain/records.js';
import {
  type Cursor,
  findRefund,
  type Keyed,
  listAccountsOfOwner,
  listPaymentsOfAccount,
  listRefundsOfPayment,
  type PaymentFilter,
} from '../ledger/list-queries.js';
import { decodePageToken, encodePageToken } from './page-token.js';
import type { PaymentsApp } from './payments-app.js';
import { isWellFormedId, MAX_OWNER_REF_LENGTH, pageSizeOf, requireText } from './validation.js';

export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

const CURSOR_POSITION = /^\d{1,20}:[a-z]{2,4}_[0-9a-hjkmnp-tv-z]{26}$/;
export const MAX_STATUS_FILTERS = 7;
/** 9999-12-31T23:59:59.999999Z in microseconds: no row of ours is later, and PostgreSQL takes any time up to it. */
const MAX_CURSOR_MICROS = 253_402_300_799_999_999n;

/** 9999-12-31T23:59:59.999Z: the last millisecond a time filter is compared at. */
const LAST_QUERY_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** A forged position with a time PostgreSQL cannot hold is refused like any other bad token. */
function cursorInBounds(position: string): boolean {
  return BigInt(position.slice(0, position.indexOf(':'))) <= MAX_CURSOR_MICROS;
}

function cursorOf(position: string | undefined): Cursor | undefined {
  if (position === undefined) return undefined;
  const [micros, id] = position.split(':') as [string, string];
  return { createdAtMicros: BigInt(micros), id };
}

/** Reads stop between queries, and answer nothing late, once the caller's deadline (`signal`) has passed. */
function stopIfPastDeadline(signal: AbortSignal | undefined): void {
  throwIfPastDeadline(signal, 'retry with a longer deadline');
}

/** One extra row tells whether another page exists without a count query. */
function pageOf<T>(rows: Keyed<T>[], pageSize: number, scope: string): Page<T> {
  const items = rows.slice(0, pageSize);
  const last = items[items.length - 1];
  const nextPageToken =
    rows.length > pageSize && last ? encodePageToken(scope, `${last.cursor.createdAtMicros}:${last.cursor.id}`) : '';
  return { items: items.map((item) => item.row), nextPageToken };
}

/** A short digest of a listing's filters: a token from one filter cannot be replayed with another. */
function digest(parts: string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('base64url').slice(0, 16);
}

export class WalletReads {
  constructor(
    private readonly db: LedgerDb,
    private readonly app: PaymentsApp,
  ) {}

  /** A user lists their own accounts (owner_ref empty or theirs); a backend must name the owner. */
  async listAccounts(
    caller: Caller,
    input: { ownerRef: string; pageSize: number; pageToken: string },
    signal?: AbortSignal,
  ): Promise<Page<AccountRecord>> {
    const pageSize = pageSizeOf(input.pageSize);
    const ownerRef =
      caller.kind === 'user' && input.ownerRef === ''
        ? caller.userId
        : requireText('owner_ref', input.ownerRef, MAX_OWNER_REF_LENGTH, true);
    const scope = `acct:${digest([ownerRef])}`;
    const cursor = cursorOf(decodePageToken(input.pageToken, scope, CURSOR_POSITION, cursorInBounds));
    // Another owner is someone else's data: NOT_FOUND, like any of their accounts would be.
    if (caller.kind === 'user' && ownerRef !== caller.userId) throw notFound('owner', ownerRef, 'owner_ref');
    stopIfPastDeadline(signal);
    const rows = await listAccountsOfOwner(this.db, ownerRef, pageSize + 1, cursor);
    stopIfPastDeadline(signal);
    return pageOf(rows, pageSize, scope);
  }

  async listPayments(
    caller: Caller,
    input: {
      accountId: string;
      pageSize: number;
      pageToken: string;
      statuses: (PaymentStatus | undefined)[];
      createdFrom: Date | undefined;
      createdBefore: Date | undefined;
    },
    signal?: AbortSignal,
  ): Promise<Page<PaymentRecord>> {
    const pageSize = pageSizeOf(input.pageSize);
    const filter = paymentFilterOf(input);
    const scope = `pay:${digest([input.accountId, ...filter.statuses, String(filter.createdFrom?.getTime()), String(filter.createdBefore?.getTime())])}`;
    const cursor = cursorOf(decodePageToken(input.pageToken, scope, CURSOR_POSITION, cursorInBounds));
    await this.app.getAccount(caller, input.accountId, signal);
    stopIfPastDeadline(signal);
    const rows = await listPaymentsOfAccount(this.db, input.accountId, filter, pageSize + 1, cursor);
    stopIfPastDeadline(signal);
    return pageOf(rows, pageSize, scope);
  }

  /** A refund is visible to whoever may see its payment. */
  async getRefund(caller: Caller, refundId: string, signal?: AbortSignal): Promise<RefundRecord> {
    stopIfPastDeadline(signal);
    const refund = isWellFormedId('refund_id', 'ref', refundId) ? await findRefund(this.db, refundId) : undefined;
    if (!refund) throw notFound('refund', refundId, 'refund_id');
    try {
      await this.app.getPayment(caller, refund.paymentId, signal);
    } catch (error) {
      if (error instanceof DomainError && error.kind === 'not_found') throw notFound('refund', refundId, 'refund_id');
      throw error;
    }
    return refund;
  }

  async listRefunds(
    caller: Caller,
    input: { paymentId: string; pageSize: number; pageToken: string },
    signal?: AbortSignal,
  ): Promise<Page<RefundRecord>> {
    const pageSize = pageSizeOf(input.pageSize);
    const scope = `ref:${digest([input.paymentId])}`;
    const cursor = cursorOf(decodePageToken(input.pageToken, scope, CURSOR_POSITION, cursorInBounds));
    await this.app.getPayment(caller, input.paymentId, signal);
    stopIfPastDeadline(signal);
    const rows = await listRefundsOfPayment(this.db, input.paymentId, pageSize + 1, cursor);
    stopIfPastDeadline(signal);
    return pageOf(rows, pageSize, scope);
  }
}

function paymentFilterOf(input: {
  statuses: (PaymentStatus | undefined)[];
  createdFrom: Date | undefined;
  createdBefore: Date | undefined;
}): PaymentFilter {
  if (input.statuses.length > MAX_STATUS_FILTERS) {
    throw invalidArgument('statuses', 'TOO_MANY_STATUSES', `statuses must have at most ${MAX_STATUS_FILTERS} entries`);
  }
  const statuses: PaymentStatus[] = [];
  for (const status of input.statuses) {
    if (status === undefined) {
      throw invalidArgument('statuses', 'STATUS_UNKNOWN', 'statuses must name known payment statuses');
    }
    if (!statuses.includes(status)) statuses.push(status);
  }
  statuses.sort();
  if (input.createdFrom && input.createdBefore && input.createdFrom.getTime() >= input.createdBefore.getTime()) {
    throw invalidArgument('create_time_to', 'TIME_RANGE_EMPTY', 'create_time_to must be after create_time_from');
  }
  // A Timestamp's last millisecond rounds up to year 10000 (protobuf-es rounds nanos up), which PostgreSQL
  // cannot read; no row is that late, so such an upper bound is no bound and such a lower one is the last ms.
  const createdFrom =
    input.createdFrom && input.createdFrom.getTime() > LAST_QUERY_TIME_MS
      ? new Date(LAST_QUERY_TIME_MS)
      : input.createdFrom;
  const createdBefore =
    input.createdBefore && input.createdBefore.getTime() > LAST_QUERY_TIME_MS ? undefined : input.createdBefore;
  return { statuses, createdFrom, createdBefore };
}
