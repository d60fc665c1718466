/**
 * The request an asynchronous call chain is serving: its id, the request's own logger (which carries the
 * request id, principal and procedure on every line) and what the ledger records as an event's origin.
 * Set by the observability interceptor around each RPC; undefined in background jobs.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { currentTraceparent } from './tracing.js';

/** The subset of a pino logger the code uses. */
export interface RequestLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
  child(bindings: Record<string, unknown>): RequestLogger;
}

export interface RequestContext {
  /** The x-request-id the client sent, or the one the server made up. */
  requestId: string;
  log: RequestLogger;
}

/** Where a ledger command came from, recorded with the outbox events it causes. */
export interface CommandOrigin {
  /** The request id: the events' correlation id. */
  requestId?: string | undefined;
  /** W3C traceparent of the span that issued the command: sent as the Kafka record's traceparent. */
  traceparent?: string | undefined;
}

const storage = new AsyncLocalStorage<RequestContext>();

export function runInRequest<T>(request: RequestContext, work: () => T): T {
  return storage.run(request, work);
}

export function currentRequest(): RequestContext | undefined {
  return storage.getStore();
}

/** The origin of a command issued now: the current request and span, where there are any. */
export function commandOrigin(): CommandOrigin {
  return { requestId: storage.getStore()?.requestId, traceparent: currentTraceparent() };
}
