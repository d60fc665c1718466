/** Settlement runs and reads, and the ledger check: the operator-facing side of the application layer. */
import type { LedgerDb } from '../db/client.js';
import { notFound } from '../domain/errors.js';
import { hasIdShape } from '../domain/ids.js';
import type { SettlementRecord } from '../domain/records.js';
import { checkLedger, type LedgerCheckReport } from '../ledger/check.js';
import { findAccount, findSettlement, listSettlements } from '../ledger/queries.js';
import { runSettlement } from '../ledger/settlement.js';
import { decodePageToken, encodePageToken } from './page-token.js';
import { isWellFormedId, pageSizeOf } from './validation.js';

export interface SettlementsPage {
  settlements: SettlementRecord[];
  nextPageToken: string;
}

const SETTLEMENT_ID = /^stl_[0-9a-z]{26}$/;

export class SettlementsApp {
  constructor(private readonly db: LedgerDb) {}

  /**
   * Runs now, waiting for a run already in progress; returns the settlements this run made. Past `signal`
   * (the request's deadline) nothing is settled: DEADLINE_EXCEEDED.
   */
  async runSettlement(accountId: string, signal?: AbortSignal): Promise<SettlementRecord[]> {
    if (accountId !== '') await this.requireAccount(accountId);
    return (await runSettlement(this.db, { accountId: accountId || undefined, skipIfBusy: false, signal })) ?? [];
  }

  async getSettlement(settlementId: string): Promise<SettlementRecord> {
    const found = isWellFormedId('settlement_id', 'stl', settlementId)
      ? await findSettlement(this.db, settlementId)
      : undefined;
    if (!found) throw notFound('settlement', settlementId, 'settlement_id');
    return found;
  }

  async listSettlements(input: { accountId: string; pageSize: number; pageToken: string }): Promise<SettlementsPage> {
    const pageSize = pageSizeOf(input.pageSize);
    const scope = input.accountId || '*';
    const beforeId = decodePageToken(input.pageToken, scope, SETTLEMENT_ID);
    if (input.accountId !== '') await this.requireAccount(input.accountId);
    const rows = await listSettlements(this.db, input.accountId || undefined, pageSize + 1, beforeId);
    const settlements = rows.slice(0, pageSize);
    const last = settlements[settlements.length - 1];
    return { settlements, nextPageToken: rows.length > pageSize && last ? encodePageToken(scope, last.id) : '' };
  }

  /** Past `signal` (the request's deadline) the check stops between its steps: DEADLINE_EXCEEDED. */
  checkLedger(signal?: AbortSignal): Promise<LedgerCheckReport> {
    return checkLedger(this.db, signal);
  }

  private async requireAccount(accountId: string): Promise<void> {
    const account = hasIdShape('acct', accountId) ? await findAccount(this.db, accountId) : undefined;
    if (!account) throw notFound('account', accountId, 'account_id');
  }
}
