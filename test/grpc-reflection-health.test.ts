import { execFile } from 'node:child_process';
import type { Http2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, file_google_protobuf_timestamp } from '@bufbuild/protobuf/wkt';
import { type Client, Code, ConnectError, createClient } from '@connectrpc/connect';
import { fastifyConnectPlugin } from '@connectrpc/connect-fastify';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { fastify } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { file_grpc_health_v1_health, Health } from '../gen/grpc/health/v1/health_pb.js';
import {
  file_grpc_reflection_v1_reflection,
  type ServerReflectionResponse as ServerReflectionResponseV1,
  ServerReflection as ServerReflectionV1,
} from '../gen/grpc/reflection/v1/reflection_pb.js';
import {
  file_grpc_reflection_v1alpha_reflection,
  type ServerReflectionResponse as ServerReflectionResponseV1alpha,
  ServerReflection as ServerReflectionV1alpha,
} from '../gen/grpc/reflection/v1alpha/reflection_pb.js';
import { file_payment_v1_payment } from '../gen/payment/v1/payment_pb.js';
import { HealthStatusBoard, registerHealthService, ServingStatus } from '../src/grpc/health.js';
import { registerReflectionServices } from '../src/grpc/reflection.js';

const run = promisify(execFile);
const bufBinary = fileURLToPath(new URL('../node_modules/.bin/buf', import.meta.url));
// buf curl is a separate process that reflects before calling; allow for a cold start.
const BUF_CURL_TIMEOUT_MS = 30_000;
const PAYMENT_SERVICE = 'payment.v1.PaymentService';

type ReflectionAnswer = (ServerReflectionResponseV1 | ServerReflectionResponseV1alpha)['messageResponse'];

const board = new HealthStatusBoard();
const server = fastify({ http2: true });
const serverSessions = new Set<Http2Session>();
let baseUrl = '';
let sessionManager: Http2SessionManager;
let health: Client<typeof Health>;

async function bufCurl(...args: string[]): Promise<string> {
  const { stdout } = await run(bufBinary, ['curl', '--http2-prior-knowledge', ...args], {
    timeout: BUF_CURL_TIMEOUT_MS,
  });
  return stdout;
}

beforeAll(async () => {
  board.set(PAYMENT_SERVICE, ServingStatus.SERVING);
  await server.register(fastifyConnectPlugin, {
    routes(router) {
      registerHealthService(router, board);
      registerReflectionServices(router, [
        file_grpc_health_v1_health,
        file_grpc_reflection_v1_reflection,
        file_grpc_reflection_v1alpha_reflection,
        file_payment_v1_payment,
        file_google_protobuf_timestamp,
      ]);
    },
  });
  server.server.on('session', (session: Http2Session) => {
    serverSessions.add(session);
    session.once('close', () => serverSessions.delete(session));
  });
  await server.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
  sessionManager = new Http2SessionManager(baseUrl);
  health = createClient(Health, createGrpcTransport({ baseUrl, sessionManager }));
});

afterAll(async () => {
  board.close();
  sessionManager?.abort();
  for (const session of serverSessions) session.close();
  await server.close();
});

describe('gRPC server reflection', () => {
  it.each([['grpc-v1'], ['grpc-v1alpha']])(
    'lists every served service for buf curl over %s',
    async (reflectProtocol) => {
      const listed = (await bufCurl('--reflect-protocol', reflectProtocol, '--list-services', baseUrl))
        .trim()
        .split('\n');
      expect(listed.sort()).toEqual(
        [
          'grpc.health.v1.Health',
          'grpc.reflection.v1.ServerReflection',
          'grpc.reflection.v1alpha.ServerReflection',
          PAYMENT_SERVICE,
        ].sort(),
      );
    },
    BUF_CURL_TIMEOUT_MS,
  );

  it(
    'lets buf curl resolve methods of a file that imports others',
    async () => {
      const methods = (await bufCurl('--list-methods', baseUrl)).trim().split('\n');
      expect(methods).toContain(`${PAYMENT_SERVICE}/AuthorizePayment`);
    },
    BUF_CURL_TIMEOUT_MS,
  );

  it.each([
    ['v1', ServerReflectionV1],
    ['v1alpha', ServerReflectionV1alpha],
  ] as const)('answers symbol, file and extension questions in order on one %s stream', async (_, service) => {
    const reflection = createClient(service, createGrpcTransport({ baseUrl, sessionManager }));
    async function* questions() {
      yield {
        messageRequest: { case: 'fileContainingSymbol', value: 'grpc.health.v1.HealthCheckResponse.ServingStatus' },
      } as const;
      yield { messageRequest: { case: 'fileContainingSymbol', value: 'grpc.health.v1.Health.Watch' } } as const;
      yield {
        messageRequest: { case: 'fileContainingSymbol', value: 'grpc.health.v1.HealthCheckResponse.SERVING' },
      } as const;
      yield { messageRequest: { case: 'fileByFilename', value: 'payment/v1/payment.proto' } } as const;
      yield { messageRequest: { case: 'fileContainingSymbol', value: 'no.such.Symbol' } } as const;
      yield { messageRequest: { case: 'allExtensionNumbersOfType', value: 'google.protobuf.Timestamp' } } as const;
      yield {
        messageRequest: {
          case: 'fileContainingExtension',
          value: { containingType: 'google.protobuf.Timestamp', extensionNumber: 1000 },
        },
      } as const;
    }
    const answers: ReflectionAnswer[] = [];
    for await (const response of reflection.serverReflectionInfo(questions())) answers.push(response.messageResponse);

    const fileNames = (answer: ReflectionAnswer | undefined): string[] =>
      answer?.case === 'fileDescriptorResponse'
        ? answer.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name)
        : [];
    expect(answers).toHaveLength(7);
    expect(fileNames(answers[0])).toEqual(['grpc/health/v1/health.proto']);
    expect(fileNames(answers[1])).toEqual(['grpc/health/v1/health.proto']);
    expect(fileNames(answers[2])).toEqual(['grpc/health/v1/health.proto']);
    expect(fileNames(answers[3])[0]).toBe('payment/v1/payment.proto');
    expect(fileNames(answers[3])).toEqual(
      expect.arrayContaining(['google/protobuf/timestamp.proto', 'payment/v1/money.proto']),
    );
    expect(answers[4]).toMatchObject({ case: 'errorResponse', value: { errorCode: Code.NotFound } });
    expect(answers[5]).toMatchObject({
      case: 'allExtensionNumbersResponse',
      value: { baseTypeName: 'google.protobuf.Timestamp', extensionNumber: [] },
    });
    expect(answers[6]).toMatchObject({ case: 'errorResponse', value: { errorCode: Code.NotFound } });
  });
});

describe('gRPC health checking', () => {
  it(
    'answers SERVING to buf curl',
    async () => {
      const stdout = await bufCurl('--protocol', 'grpc', '-d', '{}', `${baseUrl}/grpc.health.v1.Health/Check`);
      expect(JSON.parse(stdout)).toEqual({ status: 'SERVING' });
    },
    BUF_CURL_TIMEOUT_MS,
  );

  it('answers SERVING to a connect-node gRPC client', async () => {
    expect((await health.check({})).status).toBe(ServingStatus.SERVING);
    expect((await health.check({ service: PAYMENT_SERVICE })).status).toBe(ServingStatus.SERVING);
  });

  it('fails Check on an unknown service with NotFound', async () => {
    const failure = await health.check({ service: 'no.such.Service' }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ConnectError);
    expect((failure as ConnectError).code).toBe(Code.NotFound);
  });

  it('streams the current status, then each change', async () => {
    const service = 'test.v1.WatchedService';
    board.set(service, ServingStatus.SERVING);
    const stopWatching = new AbortController();
    const updates = health.watch({ service }, { signal: stopWatching.signal })[Symbol.asyncIterator]();
    try {
      expect((await updates.next()).value?.status).toBe(ServingStatus.SERVING);
      board.set(service, ServingStatus.NOT_SERVING);
      expect((await updates.next()).value?.status).toBe(ServingStatus.NOT_SERVING);
    } finally {
      stopWatching.abort();
    }
  });

  it('reports SERVICE_UNKNOWN to a watcher until the service appears', async () => {
    const service = 'test.v1.LateService';
    const stopWatching = new AbortController();
    const updates = health.watch({ service }, { signal: stopWatching.signal })[Symbol.asyncIterator]();
    try {
      expect((await updates.next()).value?.status).toBe(ServingStatus.SERVICE_UNKNOWN);
      board.set(service, ServingStatus.SERVING);
      expect((await updates.next()).value?.status).toBe(ServingStatus.SERVING);
    } finally {
      stopWatching.abort();
    }
  });
});

describe('HealthStatusBoard.close', () => {
  it('tells watchers NOT_SERVING, then ends their streams so shutdown is not held open', async () => {
    const closingBoard = new HealthStatusBoard();
    const updates = closingBoard.watch('', new AbortController().signal);
    expect((await updates.next()).value).toBe(ServingStatus.SERVING);
    closingBoard.close();
    expect((await updates.next()).value).toBe(ServingStatus.NOT_SERVING);
    expect((await updates.next()).done).toBe(true);
    closingBoard.set('', ServingStatus.SERVING);
    expect(closingBoard.get('')).toBe(ServingStatus.NOT_SERVING);
  });
});
