/**
 * Which caller may call which RPC: one table. A backend needs the listed scope; a wallet user may call only
 * the methods marked for users, and then only on their own resources (checked in the application layer,
 * which answers NOT_FOUND for someone else's). A method missing from the table is refused: new RPCs are
 * closed until someone decides who may call them.
 */
import type { Scope } from './caller.js';

export interface MethodRule {
  scope: Scope;
  /** Wallet users may call it on their own resources. */
  users: boolean;
}

export const METHOD_RULES: Readonly<Record<string, MethodRule>> = {
  'payment.v1.PaymentService/AuthorizePayment': { scope: 'payments:write', users: true },
  // Capture, void and refund belong to the payee's owner (a merchant) or a backend with the scope.
  'payment.v1.PaymentService/CapturePayment': { scope: 'payments:capture', users: true },
  'payment.v1.PaymentService/VoidPayment': { scope: 'payments:capture', users: true },
  'payment.v1.PaymentService/RefundPayment': { scope: 'payments:refund', users: true },
  'payment.v1.PaymentService/GetPayment': { scope: 'payments:read', users: true },
  'payment.v1.PaymentService/GetAccountBalance': { scope: 'payments:read', users: true },
  'payment.v1.AccountService/CreateAccount': { scope: 'accounts:admin', users: false },
  'payment.v1.AccountService/GetAccount': { scope: 'payments:read', users: true },
  'payment.v1.AccountService/DepositFunds': { scope: 'accounts:admin', users: false },
  'payment.v1.AccountService/ListLedgerEntries': { scope: 'payments:read', users: true },
  // Same rule as GetAccountBalance: a user watches their own accounts.
  'payment.v1.PaymentService/WatchAccount': { scope: 'payments:read', users: true },
  'payment.v1.PaymentService/ListPayments': { scope: 'payments:read', users: true },
  'payment.v1.PaymentService/GetRefund': { scope: 'payments:read', users: true },
  'payment.v1.PaymentService/ListRefunds': { scope: 'payments:read', users: true },
  'payment.v1.AccountService/ListAccounts': { scope: 'payments:read', users: true },
  // Status changes and payouts are back-office operations, like account creation and deposits.
  'payment.v1.AccountService/FreezeAccount': { scope: 'accounts:admin', users: false },
  'payment.v1.AccountService/UnfreezeAccount': { scope: 'accounts:admin', users: false },
  'payment.v1.AccountService/CloseAccount': { scope: 'accounts:admin', users: false },
  'payment.v1.AccountService/PayoutFunds': { scope: 'accounts:admin', users: false },
  'payment.v1.SettlementService/RunSettlement': { scope: 'settlements:run', users: false },
  'payment.v1.SettlementService/GetSettlement': { scope: 'payments:read', users: false },
  'payment.v1.SettlementService/ListSettlements': { scope: 'payments:read', users: false },
  'payment.v1.AdminService/CheckLedger': { scope: 'ledger:check', users: false },
  'payment.v1.ApiKeyService/CreateApiKey': { scope: 'admin:keys', users: false },
  'payment.v1.ApiKeyService/ListApiKeys': { scope: 'admin:keys', users: false },
  'payment.v1.ApiKeyService/RevokeApiKey': { scope: 'admin:keys', users: false },
};

/** Open to anyone: probes must work without credentials, and reflection only describes the public contract. */
export const PUBLIC_SERVICES: ReadonlySet<string> = new Set([
  'grpc.health.v1.Health',
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
]);
