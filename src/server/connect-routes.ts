/**
 * Serves the Connect router's methods from Fastify, like @connectrpc/connect-fastify's plugin, with what
 * real clients need in front of and behind each handler (see src/server/*.ts for each part):
 *
 * - every request body is checked before Connect reads it, so undecodable input is INVALID_ARGUMENT
 *   (request-checks.ts);
 * - gzip, br and deflate are accepted, with corrupt data refused as INVALID_ARGUMENT (compression.ts), and
 *   gRPC and gRPC-Web answers advertise them in grpc-accept-encoding in the headers, where grpc-js reads it;
 * - gRPC-Web text mode is translated to and from binary gRPC-Web (grpc-web-text.ts);
 * - grpc-message trailers are percent-encoded as the gRPC spec says (early-answer.ts).
 */
import type { DescMessage } from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ConnectRouterOptions,
  type ContextValues,
  createConnectRouter,
} from '@connectrpc/connect';
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from '@connectrpc/connect/protocol';
import { trailerFlag, trailerParse, trailerSerialize } from '@connectrpc/connect/protocol-grpc-web';
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from '@connectrpc/connect-node';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { answerEarly, respecGrpcMessage } from '../api/early-answer.js';
import { ACCEPTED_COMPRESSIONS, ACCEPTED_ENCODINGS } from './compression.js';
import {
  BINARY_CONTENT_TYPE,
  decodeTextBody,
  encodeTextBody,
  isGrpcWebText,
  TEXT_RESPONSE_CONTENT_TYPE,
} from './grpc-web-text.js';
import { unsupportedContentType } from './protocol-errors.js';
import { type BodyCheck, checkedBody } from './request-checks.js';

export interface ConnectRoutesOptions extends Omit<ConnectRouterOptions, 'acceptCompression'> {
  routes: (router: ConnectRouter) => void;
  contextValues?: (request: FastifyRequest) => ContextValues;
  /** The request body limit; also bounds each message after decompression. */
  readMaxBytes: number;
}

/** Every content type a Connect, gRPC or gRPC-Web client sends; Fastify must hand such bodies over unread. */
export const PROTOCOL_CONTENT_TYPES = [
  /^application\/grpc(-web(-text)?)?(\+(proto|json))?(;.*)?$/i,
  /^application\/connect\+(proto|json)(;.*)?$/i,
  /^application\/proto$/i,
];

interface BodyFormat {
  binary: boolean;
  enveloped: boolean;
  encodingHeader: string;
}

function bodyFormatOf(contentType: string): BodyFormat | undefined {
  const type = contentType.toLowerCase().split(';', 1)[0]!.trim();
  const grpc = /^application\/grpc(-web)?(\+(proto|json))?$/.exec(type);
  if (grpc) return { binary: grpc[3] !== 'json', enveloped: true, encodingHeader: 'grpc-encoding' };
  const stream = /^application\/connect\+(proto|json)$/.exec(type);
  if (stream) return { binary: stream[1] === 'proto', enveloped: true, encodingHeader: 'connect-content-encoding' };
  if (type === 'application/proto') return { binary: true, enveloped: false, encodingHeader: 'content-encoding' };
  return undefined;
}

function isByteStream(body: UniversalServerRequest['body']): body is AsyncIterable<Uint8Array> {
  return typeof body === 'object' && body !== null && Symbol.asyncIterator in body;
}

/** The request as Connect should see it: text mode decoded, the body checked as it is read. */
function conformingRequest(
  request: UniversalServerRequest,
  method: { input: DescMessage; methodKind: string },
  readMaxBytes: number,
) {
  let { header, body } = request;
  const text = isGrpcWebText(header.get('content-type'));
  if (text && isByteStream(body)) {
    header = new Headers(header);
    header.set('content-type', BINARY_CONTENT_TYPE);
    header.delete('content-length');
    body = decodeTextBody(body);
  }
  const format = request.method === 'POST' ? bodyFormatOf(header.get('content-type') ?? '') : undefined;
  if (format !== undefined && isByteStream(body)) {
    const check: BodyCheck = {
      input: method.input,
      singleMessage: method.methodKind === 'unary' || method.methodKind === 'server_streaming',
      binary: format.binary,
      enveloped: format.enveloped,
      encoding: header.get(format.encodingHeader),
      accepted: ACCEPTED_COMPRESSIONS,
      readMaxBytes,
    };
    body = checkedBody(body, check);
  }
  return { request: Object.assign({}, request, { header, body }), text };
}

async function* fixingTrailerAfter(body: AsyncIterable<Uint8Array>, trailer: Headers): AsyncGenerator<Uint8Array> {
  try {
    yield* body;
  } finally {
    // The handler fills the trailer while its body is read; it is written after the body ends.
    respecGrpcMessage(trailer);
  }
}

const COMPRESSED_FLAG = 0b0000_0001;

/**
 * gRPC-Web sends its trailers as the body's last frame ("name: value" lines); Connect joins frames one per
 * chunk, so an uncompressed trailer frame is a whole chunk whose grpc-message can be re-encoded.
 */
async function* fixingTrailerFrames(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) {
    const flags = chunk[0] ?? 0;
    const length = chunk.byteLength >= 5 ? Buffer.from(chunk.buffer, chunk.byteOffset + 1, 4).readUInt32BE(0) : -1;
    if ((flags & trailerFlag) === 0 || (flags & COMPRESSED_FLAG) !== 0 || length !== chunk.byteLength - 5) {
      yield chunk;
      continue;
    }
    const data = trailerSerialize(respecGrpcMessage(trailerParse(chunk.subarray(5))));
    const header = Buffer.alloc(5);
    header[0] = flags;
    header.writeUInt32BE(data.byteLength, 1);
    yield Buffer.concat([header, data]);
  }
}

function conformingResponse(response: UniversalServerResponse, text: boolean): UniversalServerResponse {
  const contentType = response.header?.get('content-type') ?? '';
  if (!contentType.startsWith('application/grpc')) return response;
  const header = new Headers(response.header);
  if (!header.has('grpc-accept-encoding')) header.set('grpc-accept-encoding', ACCEPTED_ENCODINGS);
  let body = response.body;
  if (response.trailer && body) body = fixingTrailerAfter(body, response.trailer);
  if (contentType.startsWith('application/grpc-web') && body) body = fixingTrailerFrames(body);
  if (text) {
    header.set('content-type', TEXT_RESPONSE_CONTENT_TYPE);
    if (body) body = encodeTextBody(body);
  }
  return Object.assign({}, response, body ? { header, body } : { header });
}

function connectRoutesPlugin(instance: FastifyInstance, options: ConnectRoutesOptions, done: () => void): void {
  const router = createConnectRouter(Object.assign({}, options, { acceptCompression: [...ACCEPTED_COMPRESSIONS] }));
  options.routes(router);
  // Scoped to this plugin: the bodies of its routes are read by Connect, not Fastify. Exact names first:
  // they win over patterns, and replace Fastify's own JSON parser here only.
  const exactTypes = ['application/json', 'application/connect+json', 'application/grpc', 'application/grpc-web'];
  for (const contentType of [...exactTypes, ...PROTOCOL_CONTENT_TYPES]) {
    instance.addContentTypeParser(contentType, (_request, _payload, parsed) => parsed(null, undefined));
  }
  for (const handler of router.handlers) {
    instance.all(handler.requestPath, {}, (request, reply) => serve(handler, options, request, reply));
  }
  done();
}

const HTTP_METHOD_NOT_ALLOWED = 405;

// Connect's gRPC-Web handler claims every text variant (its content-type pattern) and then answers a bare
// 415 itself: text mode is ours (grpc-web-text.ts), and only with protobuf.
const ANY_GRPC_WEB_TEXT = /^application\/grpc-web-text/i;

function servedContentType(handler: { supportedContentType(type: string): boolean }, contentType: string): boolean {
  if (ANY_GRPC_WEB_TEXT.test(contentType.trim())) return isGrpcWebText(contentType);
  return handler.supportedContentType(contentType);
}

async function serve(
  handler: UniversalHandler & {
    method: { input: DescMessage; methodKind: string };
    allowedMethods: string[];
    supportedContentType(type: string): boolean;
  },
  options: ConnectRoutesOptions,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  if (!handler.allowedMethods.includes(request.method)) {
    // Connect would answer a bare 405 (GET serves only methods marked side-effect free; none is).
    reply.header('allow', handler.allowedMethods.join(', '));
    const error = new ConnectError(
      `HTTP ${request.method} is not served for this method: use ${handler.allowedMethods.join(' or ')}`,
      Code.Unimplemented,
    );
    answerEarly(request, reply, error, { httpStatus: HTTP_METHOD_NOT_ALLOWED });
    return;
  }
  const contentType = request.headers['content-type'];
  if (request.method === 'POST' && !(contentType && servedContentType(handler, contentType))) {
    // Connect would answer a bare 415 that no client can read as a status.
    const { error, httpStatus } = unsupportedContentType(contentType, handler.method.methodKind !== 'unary');
    answerEarly(request, reply, error, { httpStatus });
    return;
  }
  try {
    const universal = universalRequestFromNodeRequest(
      request.raw,
      reply.raw,
      request.body as undefined,
      options.contextValues?.(request),
    );
    const conforming = conformingRequest(universal, handler.method, options.readMaxBytes);
    const response = conformingResponse(await handler(conforming.request), conforming.text);
    // Fastify keeps headers set by hooks (CORS, request id, rate limit) on the reply; Connect writes to the
    // raw response, so copy them across first.
    for (const [name, value] of Object.entries(reply.getHeaders())) {
      if (value !== undefined) reply.raw.setHeader(name, value);
    }
    await universalResponseToNodeResponse(response, reply.raw);
  } catch (error) {
    // The client went away or the response could not be written: nobody is left to answer.
    if (ConnectError.from(error).code === Code.Aborted) return;
    request.log.warn({ err: error }, 'writing the response failed');
  }
}

/** Registers every method of the router built by `options.routes` (see the module comment). */
export async function registerConnectRoutes(fastify: FastifyInstance, options: ConnectRoutesOptions): Promise<void> {
  await fastify.register(connectRoutesPlugin, options);
  // Outside the plugin too: a protocol request for a path no route serves reaches the not-found handler
  // (UNIMPLEMENTED) instead of failing body parsing first.
  for (const contentType of PROTOCOL_CONTENT_TYPES) {
    fastify.addContentTypeParser(contentType, (_request, _payload, parsed) => parsed(null, undefined));
  }
}
