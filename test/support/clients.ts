/**
 * Real clients for the three protocols: Connect JSON over HTTP/1.1 (what curl speaks), gRPC-Web binary over
 * HTTP/1.1 (what the browser wallet speaks) and gRPC over HTTP/2 cleartext (what backends speak).
 */
import { type Client, createClient, type Interceptor, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { AccountService } from '../../gen/payment/v1/account_pb.js';
import { AdminService } from '../../gen/payment/v1/admin_pb.js';
import { PaymentService } from '../../gen/payment/v1/payment_pb.js';
import { SettlementService } from '../../gen/payment/v1/settlement_pb.js';
import { type Credentials, credentialHeaders, defaultCredentialsFor } from './credentials.js';

export type ProtocolName = 'connect-json' | 'grpc-web' | 'grpc';
export const PROTOCOLS: ProtocolName[] = ['connect-json', 'grpc-web', 'grpc'];

/** Adds the credentials' headers to every call. */
export function withCredentials(credentials: Credentials): Interceptor {
  const headers = Object.entries(credentialHeaders(credentials));
  return (next) => (request) => {
    for (const [name, value] of headers) request.header.set(name, value);
    return next(request);
  };
}

/** Credentials default to the server's backend key (see credentials.ts); pass {} to send none. */
export function transportFor(
  protocol: ProtocolName,
  baseUrl: string,
  credentials: Credentials = defaultCredentialsFor(baseUrl),
): Transport {
  const interceptors = [withCredentials(credentials)];
  switch (protocol) {
    case 'connect-json':
      return createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: false, interceptors });
    case 'grpc-web':
      return createGrpcWebTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: true, interceptors });
    case 'grpc':
      return createGrpcTransport({ baseUrl, interceptors });
  }
}

export interface Clients {
  payments: Client<typeof PaymentService>;
  accounts: Client<typeof AccountService>;
  settlements: Client<typeof SettlementService>;
  admin: Client<typeof AdminService>;
}

export function clientsFor(protocol: ProtocolName, baseUrl: string, credentials?: Credentials): Clients {
  return clientsOver(transportFor(protocol, baseUrl, credentials));
}

export function clientsOver(transport: Transport): Clients {
  return {
    payments: createClient(PaymentService, transport),
    accounts: createClient(AccountService, transport),
    settlements: createClient(SettlementService, transport),
    admin: createClient(AdminService, transport),
  };
}
