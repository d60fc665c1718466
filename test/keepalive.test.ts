/**
 * HTTP/2 keep-alive policy (issue 12 item 6), with short configured intervals: a session with an open stream
 * is never idle however long it stays quiet; a session with none is closed after the idle timeout even while
 * the client pings; a client that pings too often is sent GOAWAY ENHANCE_YOUR_CALM. Waits are on events and
 * on counts of answered pings, each pause between pings bounded below, never on wall-clock asserts.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from '../gen/grpc/health/v1/health_pb.js';
import { frame, grpcWebFrames } from './support/raw-calls.js';
import { startTestServer, type TestServer } from './support/server.js';
import { within } from './support/waits.js';

const IDLE_TIMEOUT_MS = 300;
const MIN_PING_INTERVAL_MS = 20;
// Pings this far apart are never strikes, so a well-behaved client is never told to calm down.
const PING_GAP_MS = 100;
// Enough answered pings, each at least PING_GAP_MS after the last, to outlast several idle timeouts.
const PINGS_ACROSS_IDLE_TIMEOUTS = Math.ceil((4 * IDLE_TIMEOUT_MS) / PING_GAP_MS);
const WAIT_MS = 20_000;

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function start(): Promise<TestServer> {
  server = await startTestServer({
    HTTP2_IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
    HTTP2_MIN_PING_INTERVAL_MS: String(MIN_PING_INTERVAL_MS),
    HTTP2_MAX_PING_STRIKES: '2',
  });
  return server;
}

function connect(url: string) {
  const session = http2.connect(url);
  const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
  session.on('error', () => {});
  return { session, goaway };
}

async function ping(session: http2.ClientHttp2Session): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    session.ping((error) => (error ? reject(error) : resolve()));
  });
}

describe('HTTP/2 keep-alive', () => {
  it('keeps a session with an open Health/Watch stream across several idle timeouts of pings', async () => {
    const testServer = await start();
    const { url } = testServer;
    const { session, goaway } = connect(url);
    await once(session, 'connect');
    const watch = session.request({
      ':method': 'POST',
      ':path': '/grpc.health.v1.Health/Watch',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const chunks: Buffer[] = [];
    watch.on('data', (chunk: Buffer) => chunks.push(chunk));
    const ended = new Promise<Record<string, unknown>>((resolve) => watch.once('trailers', resolve));
    watch.end(frame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: '' }))));
    await within(once(watch, 'response'), WAIT_MS, 'the Watch response headers');

    let gotGoaway = false;
    void goaway.then(() => {
      gotGoaway = true;
    });
    for (let answered = 0; answered < PINGS_ACROSS_IDLE_TIMEOUTS; answered++) {
      await within(ping(session), WAIT_MS, `ping ${answered + 1}`);
      await sleep(PING_GAP_MS);
    }
    expect(gotGoaway).toBe(false);
    expect(watch.closed).toBe(false);

    // Still alive: shutting the server down ends the stream with a last NOT_SERVING and status OK.
    const stopping = testServer.stop();
    server = undefined;
    const trailers = await within(ended, WAIT_MS, 'the Watch trailers at shutdown');
    await stopping;
    expect(trailers['grpc-status']).toBe('0');
    expect(grpcWebFrames(Buffer.concat(chunks)).messages.length).toBeGreaterThanOrEqual(2);
    session.destroy();
  });

  it('keeps a grpc-js Health/Watch with keepalive pings alive past the idle timeout', async () => {
    const testServer = await start();
    const client = new grpc.Client(new URL(testServer.url).host, grpc.credentials.createInsecure(), {
      'grpc.keepalive_time_ms': PING_GAP_MS,
      'grpc.keepalive_permit_without_calls': 1,
    });
    try {
      const statuses: string[] = [];
      let firstStatus: () => void = () => {};
      const first = new Promise<void>((resolve) => {
        firstStatus = resolve;
      });
      const call = client.makeServerStreamRequest(
        '/grpc.health.v1.Health/Watch',
        (value: Uint8Array) => Buffer.from(value),
        (bytes: Buffer) => fromBinary(HealthCheckResponseSchema, bytes),
        toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: '' })),
      );
      call.on('data', (response: { status: HealthCheckResponse_ServingStatus }) => {
        statuses.push(HealthCheckResponse_ServingStatus[response.status]);
        firstStatus();
      });
      const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
      call.on('error', () => {});
      await within(first, WAIT_MS, 'the first Watch status');
      // grpc-js pings on its own and says nothing about it, so this is the one wait on the clock: long
      // enough for several idle timeouts to pass, during which the old server sent GOAWAY.
      let ended = false;
      void status.then(() => {
        ended = true;
      });
      await sleep(4 * IDLE_TIMEOUT_MS);
      expect(ended).toBe(false);
      // Alive until the server shuts down: a last NOT_SERVING, then status OK.
      const stopping = testServer.stop();
      server = undefined;
      const final = await within(status, WAIT_MS, 'the Watch status at shutdown');
      await stopping;
      expect(final.code).toBe(grpc.status.OK);
      expect(statuses).toEqual(['SERVING', 'NOT_SERVING']);
    } finally {
      client.close();
    }
  });

  it('closes a session with no open stream after the idle timeout, pings notwithstanding', async () => {
    const { url } = await start();
    const { session, goaway } = connect(url);
    await once(session, 'connect');
    let closed = false;
    void goaway.then(() => {
      closed = true;
    });
    // Bounded: the server must go away long before this many pings have been answered.
    for (let answered = 0; !closed && answered < 200; answered++) {
      await ping(session).catch(() => {});
      await sleep(PING_GAP_MS);
    }
    expect(await within(goaway, WAIT_MS, 'GOAWAY of an idle session')).toBe(http2.constants.NGHTTP2_NO_ERROR);
    session.destroy();
  });

  it('sends GOAWAY ENHANCE_YOUR_CALM to a client that pings too often', async () => {
    const { url } = await start();
    const { session, goaway } = connect(url);
    await once(session, 'connect');
    // Back to back: every ping after the first is a strike.
    for (let i = 0; i < 5; i++) session.ping(() => {});
    expect(await within(goaway, WAIT_MS, 'GOAWAY for too many pings')).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    session.destroy();
  });
});
