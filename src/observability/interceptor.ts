/**
 * One Connect interceptor observes every RPC on every protocol (gRPC over HTTP/2, gRPC-Web, Connect): the
 * HTTP layer cannot, since Node's HTTP instrumentation does not see the HTTP/2 server. Place it outermost so
 * that it sees the final status code, after errors have been mapped.
 */
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { metrics, rpcProtocolOf } from './metrics.js';

/** `payment.v1.PaymentService/AuthorizePayment`: the label every RPC metric and span uses. */
export function procedureName(typeName: string, methodName: string): string {
  return `${typeName}/${methodName}`;
}

export function observabilityInterceptor(): Interceptor {
  return (next) => async (request) => {
    const started = performance.now();
    const procedure = procedureName(request.service.typeName, request.method.name);
    const protocol = rpcProtocolOf(request.header.get('content-type'));
    try {
      const response = await next(request);
      metrics.rpcAnswered(procedure, protocol, undefined, (performance.now() - started) / 1000);
      return response;
    } catch (error) {
      const code = error instanceof ConnectError ? error.code : Code.Internal;
      metrics.rpcAnswered(procedure, protocol, code, (performance.now() - started) / 1000);
      throw error;
    }
  };
}

/** The procedure label of a request answered before Connect's router (matched route, or "unknown"). */
export function procedureOfRoute(routeUrl: string | undefined): string {
  if (routeUrl === undefined || !/^\/[\w.]+\/\w+$/.test(routeUrl)) return 'unknown';
  return routeUrl.slice(1);
}
