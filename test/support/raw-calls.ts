/**
 * Raw requests for protocol tests: exact bytes on the wire over HTTP/2 (node:http2) or HTTP/1.1 (fetch),
 * and the gRPC frame format, so that malformed input can be sent that no client library would produce.
 */
import http2 from 'node:http2';
import { within } from './waits.js';

const CALL_TIMEOUT_MS = 15_000;

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  trailers: Record<string, string>;
  body: Buffer;
}

function flatten(headers: http2.IncomingHttpHeaders | Record<string, unknown>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) result[name] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return result;
}

/** One HTTP/2 request with prior knowledge (h2c) or over TLS when the URL says https. */
export async function h2Call(
  baseUrl: string,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
  connectOptions: http2.SecureClientSessionOptions = {},
): Promise<RawAnswer> {
  const session = http2.connect(baseUrl, connectOptions);
  session.on('error', () => {});
  try {
    return await within(
      new Promise<RawAnswer>((resolve, reject) => {
        const stream = session.request({ ':method': 'POST', ':path': path, ...headers });
        const chunks: Buffer[] = [];
        let answer: RawAnswer = { status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0) };
        stream.on('response', (responseHeaders) => {
          answer = { ...answer, status: Number(responseHeaders[':status']), headers: flatten(responseHeaders) };
        });
        stream.on('trailers', (trailers) => {
          answer.trailers = flatten(trailers);
        });
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => resolve({ ...answer, body: Buffer.concat(chunks) }));
        stream.on('error', reject);
        stream.end(body);
      }),
      CALL_TIMEOUT_MS,
      `HTTP/2 call to ${path}`,
    );
  } finally {
    session.close();
  }
}

/** A gRPC / gRPC-Web / Connect streaming frame: flags, 4-byte big-endian length, data. */
export function frame(data: Uint8Array, flags = 0): Buffer {
  const header = Buffer.alloc(5);
  header[0] = flags;
  header.writeUInt32BE(data.byteLength, 1);
  return Buffer.concat([header, data]);
}

/** Splits a gRPC-Web body into its frames; the trailer frame (flag 0x80) is parsed into name → value. */
export function grpcWebFrames(body: Buffer): { messages: Buffer[]; trailer: Record<string, string> } {
  const messages: Buffer[] = [];
  const trailer: Record<string, string> = {};
  let offset = 0;
  while (offset + 5 <= body.length) {
    const flags = body[offset]!;
    const length = body.readUInt32BE(offset + 1);
    const data = body.subarray(offset + 5, offset + 5 + length);
    offset += 5 + length;
    if ((flags & 0x80) === 0) {
      messages.push(data);
      continue;
    }
    for (const line of data.toString('utf8').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) trailer[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
  }
  return { messages, trailer };
}

/** The gRPC status of an HTTP/2 answer: from the trailers, or the headers of a trailers-only answer. */
export function grpcStatusOf(answer: RawAnswer): { code: number; message: string } {
  const source = answer.trailers['grpc-status'] !== undefined ? answer.trailers : answer.headers;
  return { code: Number(source['grpc-status']), message: decodeURIComponent(source['grpc-message'] ?? '') };
}
