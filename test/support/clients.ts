/**
 * Real clients for the three protocols: Connect JSON over HTTP/1.1 (what curl speaks), gRPC-Web binary over
 * HTTP/1.1 (what the browser wallet speaks) and gRPC over HTTP/2 cleartext (what backends speak).
 */
import { type Client, createClient, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { AccountService } from '../../gen/payment/v1/account_pb.js';
import { AdminService } from '../../gen/payment/v1/admin_pb.js';
import { PaymentService } from '../../gen/payment/v1/payment_pb.js';
import { SettlementService } from '../../gen/payment/v1/settlement_pb.js';

export type ProtocolName = 'connect-json' | 'grpc-web' | 'grpc';
export const PROTOCOLS: ProtocolName[] = ['connect-json', 'grpc-web', 'grpc'];

export function transportFor(protocol: ProtocolName, baseUrl: string): Transport {
  switch (protocol) {
    case 'connect-json':
      return createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: false });
    case 'grpc-web':
      return createGrpcWebTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: true });
    case 'grpc':
      return createGrpcTransport({ baseUrl });
  }
}

export interface Clients {
  payments: Client<typeof PaymentService>;
  accounts: Client<typeof AccountService>;
  settlements: Client<typeof SettlementService>;
  admin: Client<typeof AdminService>;
}

export function clientsFor(protocol: ProtocolName, baseUrl: string): Clients {
  return clientsOver(transportFor(protocol, baseUrl));
}

export function clientsOver(transport: Transport): Clients {
  return {
    payments: createClient(PaymentService, transport),
    accounts: createClient(AccountService, transport),
    settlements: createClient(SettlementService, transport),
    admin: createClient(AdminService, transport),
  };
}
