/**
 * gRPC-Web text mode (application/grpc-web-text, the default of Google's grpc-web client): the same frames
 * as binary gRPC-Web, base64-encoded in both directions. Connect-ES serves binary gRPC-Web only, so a text
 * request is decoded into a binary one in front of it and the binary answer is encoded on the way out.
 */
import { Code, ConnectError } from '@connectrpc/connect';

const TEXT_CONTENT_TYPE = /^application\/grpc-web-text(\+proto)?$/i;
const BASE64_QUANTUM_CHARS = 4;
const BASE64_ALPHABET = /^[A-Za-z0-9+/]*={0,2}$/;

export function isGrpcWebText(contentType: string | null): boolean {
  return contentType !== null && TEXT_CONTENT_TYPE.test(contentType.trim());
}

/** The binary content type the text one stands for. */
export const BINARY_CONTENT_TYPE = 'application/grpc-web+proto';
export const TEXT_RESPONSE_CONTENT_TYPE = 'application/grpc-web-text+proto';

function decodeQuanta(text: string): Buffer {
  // Clients may send several base64 segments back to back, each with its own padding: decode per quantum.
  if (!text.includes('=')) return Buffer.from(text, 'base64');
  const parts: Buffer[] = [];
  for (let offset = 0; offset < text.length; offset += BASE64_QUANTUM_CHARS) {
    parts.push(Buffer.from(text.slice(offset, offset + BASE64_QUANTUM_CHARS), 'base64'));
  }
  return Buffer.concat(parts);
}

/** Base64 text body → binary frames; whitespace is ignored, anything else outside base64 is refused. */
export async function* decodeTextBody(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let pending = '';
  for await (const chunk of body) {
    pending += Buffer.from(chunk).toString('latin1').replace(/\s+/g, '');
    const whole = pending.length - (pending.length % BASE64_QUANTUM_CHARS);
    const text = pending.slice(0, whole);
    pending = pending.slice(whole);
    if (!BASE64_ALPHABET.test(text.replace(/=(?=.)/g, ''))) {
      throw new ConnectError('the grpc-web-text request body is not base64', Code.InvalidArgument);
    }
    if (text.length > 0) yield decodeQuanta(text);
  }
  if (pending.length > 0) {
    throw new ConnectError('the grpc-web-text request body ends inside a base64 quantum', Code.InvalidArgument);
  }
}

/**
 * Binary response body → base64, each chunk encoded (and padded) on its own, as grpc-web proxies do: a
 * streamed message reaches the client as soon as it is written, and grpc-web clients decode per quantum.
 */
export async function* encodeTextBody(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) {
    if (chunk.byteLength > 0) yield Buffer.from(Buffer.from(chunk).toString('base64'), 'latin1');
  }
}
