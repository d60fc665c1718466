/** Connect handlers for SettlementService and AdminService: thin, like handlers.ts. */
import type { ConnectRouter } from '@connectrpc/connect';
import { AdminService } from '../../gen/payment/v1/admin_pb.js';
import { SettlementService } from '../../gen/payment/v1/settlement_pb.js';
import type { SettlementsApp } from '../app/settlements-app.js';
import { toSettlement } from '../wire/messages.js';
import { serveStrictly } from './strict-input.js';

export function registerOperatorServices(router: ConnectRouter, app: SettlementsApp): void {
  serveStrictly(router, SettlementService, {
    async runSettlement(request, context) {
      return { settlements: (await app.runSettlement(request.accountId, context.signal)).map(toSettlement) };
    },
    async getSettlement(request) {
      return { settlement: toSettlement(await app.getSettlement(request.settlementId)) };
    },
    async listSettlements(request) {
      const page = await app.listSettlements({
        accountId: request.accountId,
        pageSize: request.pageSize,
        pageToken: request.pageToken,
      });
      return { settlements: page.settlements.map(toSettlement), nextPageToken: page.nextPageToken };
    },
  });

  serveStrictly(router, AdminService, {
    async checkLedger(_request, context) {
      const report = await app.checkLedger(context.signal);
      return { passed: report.passed, checks: report.checks };
    },
  });
}
