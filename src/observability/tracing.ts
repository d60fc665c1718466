/**
 * OpenTelemetry tracing. Off unless OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set: the instrumentation below
 * always calls the OpenTelemetry API, which does nothing (and costs next to nothing) until a tracer provider
 * is installed. Installed, spans go to the OTLP/HTTP endpoint in batches; the W3C `traceparent` is read from
 * incoming requests and written into outgoing Kafka records.
 *
 * Spans: one server span per RPC on every protocol (observability interceptor), a `ledger.transaction` span
 * per ledger transaction (ledger/apply.ts) and a `db.query` span per PostgreSQL query (db/client.ts).
 */
import {
  type Context,
  context,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  NodeTracerProvider,
  SimpleSpanProcessor,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-node';

export { SpanKind, SpanStatusCode };

const TRACER_NAME = 'payment-ledger';

/** The tracer every span comes from; a no-op one until tracing is installed. */
export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

export interface TracingSetup {
  serviceName: string;
  /** OTLP/HTTP traces URL; spans are batched to it. */
  otlpEndpoint?: string;
  /** For tests: spans go straight to this exporter (e.g. the SDK's InMemorySpanExporter). */
  exporter?: SpanExporter;
}

export interface InstalledTracing {
  /** Sends what is buffered and stops. */
  shutdown(): Promise<void>;
}

let installed: NodeTracerProvider | undefined;

/**
 * Installs the process-wide tracer provider, W3C trace-context propagation and the AsyncLocalStorage context
 * manager. Idempotent: a second call (e.g. a second service in one test process) keeps the first provider.
 */
export function installTracing(setup: TracingSetup): InstalledTracing {
  if (!installed) {
    const spanProcessors = [];
    if (setup.exporter) spanProcessors.push(new SimpleSpanProcessor(setup.exporter));
    if (setup.otlpEndpoint)
      spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: setup.otlpEndpoint })));
    installed = new NodeTracerProvider({
      resource: resourceFromAttributes({ 'service.name': setup.serviceName }),
      spanProcessors,
    });
    installed.register();
  }
  const provider = installed;
  return { shutdown: () => provider.forceFlush() };
}

/** The context a request's headers carry (`traceparent`, `tracestate`), as the parent of its server span. */
export function contextFromHeaders(headers: Headers): Context {
  return propagation.extract(context.active(), headers, {
    get: (carrier, key) => carrier.get(key) ?? undefined,
    keys: (carrier) => [...carrier.keys()],
  });
}

/** The W3C traceparent of the active span, or undefined when no span is recording. */
export function currentTraceparent(): string | undefined {
  if (!trace.getActiveSpan()?.isRecording()) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent;
}

/** Adds an event (e.g. a retry) to the active span, if one is recording. */
export function spanEvent(name: string, attributes: Record<string, string | number>): void {
  trace.getActiveSpan()?.addEvent(name, attributes);
}

/** Runs `work` in a new active span, ending it with an error status if `work` throws. */
export async function inSpan<T>(
  name: string,
  attributes: Record<string, string | number | boolean>,
  work: (span: Span) => Promise<T>,
): Promise<T> {
  return tracer().startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await work(span);
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.name : 'error' });
      throw error;
    } finally {
      span.end();
    }
  });
}
