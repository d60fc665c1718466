/**
 * The service's contract with its clients, described once: the services served, the scopes a backend's
 * credentials can hold, and for every RPC who may call it and how the rate limiter counts it. Auth
 * (src/auth/policy.ts), the rate limiter (src/ratelimit/policy.ts), health, reflection and the RPC table of
 * docs/security.md (scripts/rpc-table.ts) are derived from it. Adding an RPC means one entry in RPCS plus its handler;
 * test/unit/contract.test.ts fails for an RPC of gen/ missing here.
 * A leaf module (it imports only generated code), so every layer may read it.
 */
import type { DescFile, DescService } from '@bufbuild/protobuf';
import { file_grpc_health_v1_health, Health } from '../gen/grpc/health/v1/health_pb.js';
import {
  file_grpc_reflection_v1_reflection,
  ServerReflection as ServerReflectionV1,
} from '../gen/grpc/reflection/v1/reflection_pb.js';
import {
  file_grpc_reflection_v1alpha_reflection,
  ServerReflection as ServerReflectionV1alpha,
} from '../gen/grpc/reflection/v1alpha/reflection_pb.js';
import { AccountService, file_payment_v1_account } from '../gen/payment/v1/account_pb.js';
import { AdminService, file_payment_v1_admin } from '../gen/payment/v1/admin_pb.js';
import { ApiKeyService, file_payment_v1_api_keys } from '../gen/payment/v1/api_keys_pb.js';
import { file_payment_v1_payment, PaymentService } from '../gen/payment/v1/payment_pb.js';
import { file_payment_v1_settlement, SettlementService } from '../gen/payment/v1/settlement_pb.js';

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

/** The ledger's own services: callers need credentials, health reports each of them by name. */
export const LEDGER_SERVICES: readonly DescService[] = [
  PaymentService,
  AccountService,
  SettlementService,
  AdminService,
  ApiKeyService,
];

/** Open to anyone: probes must work without credentials, and reflection only describes the public contract. */
export const PUBLIC_SERVICE_DESCRIPTORS: readonly DescService[] = [Health, ServerReflectionV1, ServerReflectionV1alpha];

/** Every service the server answers. */
export const SERVED_SERVICES: readonly DescService[] = [...LEDGER_SERVICES, ...PUBLIC_SERVICE_DESCRIPTORS];

/** The files reflection describes (with their dependencies): every served service's. */
export const SERVED_FILES: readonly DescFile[] = [
  file_payment_v1_payment,
  file_payment_v1_account,
  file_payment_v1_settlement,
  file_payment_v1_admin,
  file_payment_v1_api_keys,
  file_grpc_health_v1_health,
  file_grpc_reflection_v1_reflection,
  file_grpc_reflection_v1alpha_reflection,
];

/** How one RPC may be called. */
export type RpcRule =
  | {
      /** Open to anyone without credentials, and never rate-limited. */
      public: true;
    }
  | {
      public?: false;
      /** The scope a backend (API key, client certificate) needs. */
      scope: Scope;
      /**
       * Whether wallet users may call it, and on what (enforced in the application layer, which answers
       * NOT_FOUND for someone else's resource); false = backends only.
       */
      users: false | string;
      /** Moves money or creates state: drawn from the rate limiter's write bucket, else from the read bucket. */
      write: boolean;
    };

const OWN_ACCOUNTS = 'their own accounts';
const PAYEE_OWNER = "as the payee's owner";
const PAYER_OR_PAYEE = 'as payer or payee';

/**
 * Every RPC served, by `<package>.<Service>/<Method>`. A method missing here is refused by auth (closed until
 * someone decides who may call it). Entries with the same service, scope, users and write sit together: the
 * table in docs/security.md groups them in this order.
 */
export const RPCS: Readonly<Record<string, RpcRule>> = {
  'payment.v1.PaymentService/AuthorizePayment': {
    scope: 'payments:write',
    users: 'from their own accounts (to anyone)',
    write: true,
  },
  // Capture, void and refund belong to the payee's owner (a merchant) or a backend with the scope.
  'payment.v1.PaymentService/CapturePayment': { scope: 'payments:capture', users: PAYEE_OWNER, write: true },
  'payment.v1.PaymentService/VoidPayment': { scope: 'payments:capture', users: PAYEE_OWNER, write: true },
  'payment.v1.PaymentService/RefundPayment': { scope: 'payments:refund', users: PAYEE_OWNER, write: true },
  'payment.v1.PaymentService/GetPayment': { scope: 'payments:read', users: PAYER_OR_PAYEE, write: false },
  'payment.v1.PaymentService/ListRefunds': { scope: 'payments:read', users: PAYER_OR_PAYEE, write: false },
  'payment.v1.PaymentService/GetRefund': { scope: 'payments:read', users: PAYER_OR_PAYEE, write: false },
  'payment.v1.PaymentService/GetAccountBalance': { scope: 'payments:read', users: OWN_ACCOUNTS, write: false },
  // Same rule as GetAccountBalance: a user watches their own accounts.
  'payment.v1.PaymentService/WatchAccount': { scope: 'payments:read', users: OWN_ACCOUNTS, write: false },
  'payment.v1.PaymentService/ListPayments': { scope: 'payments:read', users: OWN_ACCOUNTS, write: false },
  'payment.v1.AccountService/GetAccount': { scope: 'payments:read', users: OWN_ACCOUNTS, write: false },
  'payment.v1.AccountService/ListLedgerEntries': { scope: 'payments:read', users: OWN_ACCOUNTS, write: false },
  'payment.v1.AccountService/ListAccounts': { scope: 'payments:read', users: OWN_ACCOUNTS, write: false },
  // Account creation, deposits, status changes and payouts are back-office operations.
  'payment.v1.AccountService/CreateAccount': { scope: 'accounts:admin', users: false, write: true },
  'payment.v1.AccountService/DepositFunds': { scope: 'accounts:admin', users: false, write: true },
  'payment.v1.AccountService/PayoutFunds': { scope: 'accounts:admin', users: false, write: true },
  'payment.v1.AccountService/FreezeAccount': { scope: 'accounts:admin', users: false, write: true },
  'payment.v1.AccountService/UnfreezeAccount': { scope: 'accounts:admin', users: false, write: true },
  'payment.v1.AccountService/CloseAccount': { scope: 'accounts:admin', users: false, write: true },
  'payment.v1.SettlementService/RunSettlement': { scope: 'settlements:run', users: false, write: true },
  'payment.v1.SettlementService/GetSettlement': { scope: 'payments:read', users: false, write: false },
  'payment.v1.SettlementService/ListSettlements': { scope: 'payments:read', users: false, write: false },
  'payment.v1.AdminService/CheckLedger': { scope: 'ledger:check', users: false, write: false },
  'payment.v1.ApiKeyService/CreateApiKey': { scope: 'admin:keys', users: false, write: true },
  'payment.v1.ApiKeyService/RevokeApiKey': { scope: 'admin:keys', users: false, write: true },
  'payment.v1.ApiKeyService/ListApiKeys': { scope: 'admin:keys', users: false, write: false },
  'grpc.health.v1.Health/Check': { public: true },
  'grpc.health.v1.Health/Watch': { public: true },
  'grpc.reflection.v1.ServerReflection/ServerReflectionInfo': { public: true },
  'grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo': { public: true },
};
