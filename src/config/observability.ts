/** Settings for metrics, tracing and logs. */
import { ConfigError, type Env, readBool, readInt, readUrl, reportConfigError } from './env.js';

export interface ObservabilityConfig {
  metrics: {
    /** Serve Prometheus metrics on GET /metrics. */
    enabled: boolean;
    /** A separate port for /metrics (0 = any free port); undefined = on the service's own port. */
    port: number | undefined;
  };
  tracing: {
    /** OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces; undefined = tracing off. */
    otlpEndpoint: string | undefined;
    serviceName: string;
  };
  /** One info line per request: procedure, code, duration, principal, replayed. */
  accessLog: boolean;
}

export function readObservability(env: Env, embedded: boolean): ObservabilityConfig {
  const rawPort = env.METRICS_PORT;
  const enabled = readBool(env, 'METRICS_ENABLED', embedded);
  const port = rawPort === undefined || rawPort === '' ? undefined : readInt(env, 'METRICS_PORT', 0, 0, 65535);
  // A port for metrics that are off would be a listener someone expects and never gets.
  if (port !== undefined && !enabled) {
    reportConfigError(new ConfigError('METRICS_PORT', 'needs METRICS_ENABLED=true (metrics are off)'));
  }
  return {
    metrics: { enabled, port },
    tracing: {
      otlpEndpoint: readUrl(
        env,
        'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
        ['http:', 'https:'],
        'http://host:4318/v1/traces',
      ),
      serviceName: env.OTEL_SERVICE_NAME || 'payment-ledger',
    },
    accessLog: readBool(env, 'ACCESS_LOG', false),
  };
}
