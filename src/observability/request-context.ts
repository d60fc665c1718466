/**
 * What a request hands down its call chain, explicitly rather than through AsyncLocalStorage: on Node 20 an
 * AsyncLocalStorage installs promise hooks for every promise in the process, which cost ~8% of the server's
 * CPU per request (measured with the benchmark, docs/benchmark.md). The RPC's logger travels in Connect's
 * context values (src/api/observe.ts); a ledger command carries its CommandOrigin, which handlers give the
 * app with the call's deadline (CallOptions). Only tracing, when on, keeps an AsyncLocalStorage: OpenTelemetry's
 * context manager, which makes the server span current for currentTraceparent.
 */
import { currentTraceparent } from './tracing.js';

/** The subset of a pino logger the code uses. */
export interface RequestLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
  child(bindings: Record<string, unknown>): RequestLogger;
}

/** Where a ledger command came from, recorded with the outbox events it causes. */
export interface CommandOrigin {
  /** The request id: the events' correlation id. */
  requestId?: string | undefined;
  /** W3C traceparent of the span that issued the command: sent as the Kafka record's traceparent. */
  traceparent?: string | undefined;
}

/**
 * The origin of a command issued now: `requestId` (the x-request-id of the request issuing it; undefined or
 * empty for a background job) and the current span, when tracing records one.
 */
export function commandOrigin(requestId?: string): CommandOrigin {
  return { requestId: requestId || undefined, traceparent: currentTraceparent() };
}
