/**
 * One Connect interceptor observes every RPC on every protocol (gRPC over HTTP/2, gRPC-Web, Connect): the
 * HTTP layer cannot, since Node's HTTP instrumentation does not see the HTTP/2 server. Per RPC it
 *   - opens a server span, child of the caller's `traceparent` if it sent one;
 *   - puts the request's logger (request id, principal, procedure on every line) in the call's context values
 *     (rpcLogKey), for the error mapping and anything else that logs for the request;
 *   - counts and times it by procedure, protocol and code, and writes the access log line if enabled.
 * Place it outermost so that it sees the final status code, after errors have been mapped. Requests
 * answered early by hooks never reach it; answerEarly reports those through rpcAnswered.
 */
import { Code, ConnectError, type ContextValues, createContextKey, type Interceptor } from '@connectrpc/connect';
import { codeLabel, metrics, type RpcProtocol, rpcProtocolOf } from '../observability/metrics.js';
import { type CommandOrigin, commandOrigin, type RequestLogger } from '../observability/request-context.js';
import { contextFromHeaders, SpanKind, SpanStatusCode, tracer } from '../observability/tracing.js';
import { endedBy } from './call-signal.js';
import { IDEMPOTENT_REPLAYED_HEADER } from './headers.js';

/** What the HTTP layer knows about a request, handed to the interceptor through Connect's context values. */
export interface HttpRequestInfo {
  id: string;
  log: RequestLogger;
  /** The authenticated principal, if any. */
  principal: string | undefined;
}

const NO_REQUEST: HttpRequestInfo = {
  id: '',
  log: { info() {}, warn() {}, error() {}, child: () => NO_REQUEST.log },
  principal: undefined,
};
export const httpRequestKey = createContextKey<HttpRequestInfo>(NO_REQUEST, { description: 'HTTP request' });

/** Adds the Fastify request's id, logger and principal to a request's context values. */
export function withHttpRequest(
  values: ContextValues,
  request: { id: string; log: RequestLogger; principal?: string | undefined },
): ContextValues {
  return values.set(httpRequestKey, { id: request.id, log: request.log, principal: request.principal });
}

/** The RPC's own logger (request id, principal and procedure on every line); undefined outside an RPC. */
export const rpcLogKey = createContextKey<RequestLogger | undefined>(undefined, { description: 'RPC logger' });

/** The origin a ledger command issued by this call records with its events: the request id and span. */
export function originOf(values: ContextValues): CommandOrigin {
  return commandOrigin(values.get(httpRequestKey).id);
}

let accessLog = false;

/** `payment.v1.PaymentService/AuthorizePayment`: the label every RPC metric, span and log line uses. */
export function procedureName(typeName: string, methodName: string): string {
  return `${typeName}/${methodName}`;
}

/** The procedure label of a request answered before Connect's router (matched route, or "unknown"). */
export function procedureOfRoute(routeUrl: string | undefined): string {
  if (routeUrl === undefined || !/^\/[\w.]+\/\w+$/.test(routeUrl)) return 'unknown';
  return routeUrl.slice(1);
}

export interface AnsweredRpc {
  procedure: string;
  protocol: RpcProtocol;
  /** undefined = OK. */
  code: Code | undefined;
  durationSeconds: number;
  log: RequestLogger;
  principal: string | undefined;
  replayed: boolean;
}

/** Records an answered RPC: metrics, and the access log line when ACCESS_LOG is on. */
export function rpcAnswered(rpc: AnsweredRpc): void {
  metrics.rpcAnswered(rpc.procedure, rpc.protocol, rpc.code, rpc.durationSeconds);
  if (!accessLog) return;
  rpc.log.info(
    {
      procedure: rpc.procedure,
      protocol: rpc.protocol,
      code: codeLabel(rpc.code),
      durationMs: Math.round(rpc.durationSeconds * 1e4) / 10,
      principal: rpc.principal ?? 'anonymous',
      replayed: rpc.replayed,
    },
    'rpc',
  );
}

/**
 * A child logger made on first use: most requests log nothing, and making a pino child for each was ~1.5% of the
 * server's CPU per request.
 */
function lazyChild(parent: RequestLogger, bindings: Record<string, unknown>): RequestLogger {
  let child: RequestLogger | undefined;
  const log = () => {
    child ??= parent.child(bindings);
    return child;
  };
  return {
    info: (details, message) => log().info(details, message),
    warn: (details, message) => log().warn(details, message),
    error: (details, message) => log().error(details, message),
    child: (more) => log().child(more),
  };
}

function codeOf(error: unknown): Code {
  return error instanceof ConnectError ? error.code : Code.Internal;
}

/**
 * Passes a server stream's messages on and reports, once, how it ended: OK at its end (unless the call's
 * signal says it was cut short: client gone, deadline, shutdown), the code of the error
 * that ended it (the reader's own error, such as a failed write, after the inner interceptors mapped it), or
 * CANCELED when the reader stopped early (the client went away). An iterator, not a generator: a generator
 * returned before its first message would never run its `finally`.
 */
function observedStream<T>(
  messages: AsyncIterable<T>,
  signal: AbortSignal,
  answered: (code: Code | undefined) => void,
): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const inner = messages[Symbol.asyncIterator]();
      let reported = false;
      const report = (code: Code | undefined) => {
        if (!reported) answered(code);
        reported = true;
      };
      const settled = async (step: () => Promise<IteratorResult<T>>, codeIfDone: () => Code | undefined) => {
        try {
          const result = await step();
          if (result.done) report(codeIfDone());
          return result;
        } catch (error) {
          report(codeOf(error));
          throw error;
        }
      };
      return {
        // A handler that ends its stream when the call is aborted ends it normally: the signal says why.
        next: () =>
          settled(
            () => inner.next(),
            () => endedBy(signal)?.code,
          ),
        return: (value?: unknown) =>
          settled(
            () => inner.return?.(value) ?? Promise.resolve({ done: true, value: undefined }),
            () => Code.Canceled,
          ),
        throw: (error?: unknown) =>
          settled(
            () => inner.throw?.(error) ?? Promise.reject(error),
            () => codeOf(error),
          ),
      };
    },
  };
}

/** `accessLog`: one info line per RPC (ACCESS_LOG); process-wide, like the metrics registry. */
export function observabilityInterceptor(options: { accessLog: boolean }): Interceptor {
  accessLog = options.accessLog;
  return (next) => (request) => {
    const started = performance.now();
    const procedure = procedureName(request.service.typeName, request.method.name);
    const protocol = rpcProtocolOf(request.header.get('content-type'));
    const http = request.contextValues.get(httpRequestKey);
    const principal = http.principal;
    const log = lazyChild(http.log, { procedure, principal: principal ?? 'anonymous' });
    const attributes = {
      'rpc.system': protocol === 'connect' ? 'connect_rpc' : 'grpc',
      'rpc.service': request.service.typeName,
      'rpc.method': request.method.name,
      'request.id': http.id,
    };
    const parent = contextFromHeaders(request.header);
    request.contextValues.set(rpcLogKey, log);
    return tracer().startActiveSpan(procedure, { kind: SpanKind.SERVER, attributes }, parent, async (span) => {
      const answered = (code: Code | undefined, replayed: boolean) => {
        if (code !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: Code[code] });
        span.setAttribute('rpc.grpc.status_code', code ?? 0);
        span.end();
        const durationSeconds = (performance.now() - started) / 1000;
        rpcAnswered({ procedure, protocol, code, durationSeconds, log, principal, replayed });
      };
      let response: Awaited<ReturnType<typeof next>>;
      try {
        response = await next(request);
      } catch (error) {
        answered(codeOf(error), false);
        throw error;
      }
      // A server stream is answered when its last message is written, not when it starts.
      if (response.stream) {
        return Object.assign({}, response, {
          message: observedStream(response.message, request.signal, (code) => answered(code, false)),
        });
      }
      answered(undefined, response.header.get(IDEMPOTENT_REPLAYED_HEADER) === 'true');
      return response;
    });
  };
}
