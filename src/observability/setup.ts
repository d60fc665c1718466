/**
 * Starts what a running service needs for observability beyond the in-code instrumentation: tracing (with
 * an OTLP endpoint), the outbox gauges' source and, with METRICS_PORT, a separate /metrics listener.
 * server/start.ts calls this once, before the server listens.
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { explainListenError } from '../config/listen.js';
import type { Config } from '../config.js';
import { metrics, scrape } from './metrics.js';
import { installTracing } from './tracing.js';

export interface RunningObservability {
  /** http://host:port/metrics of the separate listener (METRICS_PORT), else undefined. */
  metricsUrl: string | undefined;
  close(): Promise<void>;
}

/**
 * The part of the outbox publisher's status the gauges read (src/outbox/publisher.ts `OutboxStatus` has it);
 * declared here so observability, which the database layer uses, does not import the outbox above it.
 */
export interface OutboxGaugeReading {
  role: string;
  unpublished: number | null;
  oldestAgeMs: number | null;
}

export async function startObservability(
  config: Config,
  outboxStatus: () => Promise<OutboxGaugeReading>,
): Promise<RunningObservability> {
  const { otlpEndpoint, serviceName } = config.observability.tracing;
  const tracing = otlpEndpoint ? installTracing({ otlpEndpoint, serviceName }) : undefined;
  const unwatch = metrics.watchOutbox(async () => {
    const { role, unpublished, oldestAgeMs } = await outboxStatus();
    return { leader: role === 'leader', unpublished, oldestAgeMs };
  });
  const { enabled, port } = config.observability.metrics;
  const server = enabled && port !== undefined ? await listenForScrapes(config.host, port) : undefined;
  let metricsUrl: string | undefined;
  if (server) {
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    metricsUrl = `http://${host}:${(server.address() as AddressInfo).port}/metrics`;
  }
  return {
    metricsUrl,
    async close() {
      unwatch();
      await tracing?.shutdown().catch(() => {});
      if (server) {
        server.closeAllConnections();
        server.close();
        await once(server, 'close');
      }
    },
  };
}

/** A plain HTTP listener that answers GET /metrics and 404 to anything else. */
async function listenForScrapes(host: string, port: number): Promise<http.Server> {
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (request.method !== 'GET' || path !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    scrape().then(
      ({ contentType, body }) => response.writeHead(200, { 'content-type': contentType }).end(body),
      () => response.writeHead(500).end(),
    );
  });
  server.listen(port, host);
  await once(server, 'listening').catch((error: unknown) => {
    throw explainListenError(error, host, port, 'METRICS_PORT');
  });
  return server;
}
