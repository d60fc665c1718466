/**
 * Checks a request body before Connect reads it, so that every undecodable request is INVALID_ARGUMENT on
 * every protocol. Connect-ES reports a protobuf parse failure and a compressed frame without an encoding as
 * INTERNAL, and reads a frame header with no data after it as "no message"; none of those is the server's
 * fault. A body that passes is handed on byte for byte, so Connect decodes exactly what was checked.
 *
 * Checked: frame boundaries (a frame cut short is refused), the frame flags (a request frame has only the
 * compressed flag: Connect-ES reads other bits per protocol, as a trailer, an end of stream or not at all, and
 * a compressed end of stream as INTERNAL), the compressed flag against the declared encoding, decompression, and (binary formats) that each message parses as the method's input type.
 * JSON bodies are left to Connect, which already answers INVALID_ARGUMENT for them. Memory is bounded by
 * `readMaxBytes` per frame (the same limit Connect applies after us).
 */
import { type DescMessage, fromBinary } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import type { Compression } from '@connectrpc/connect/protocol';

const FRAME_HEADER_BYTES = 5;
const COMPRESSED_FLAG = 0b0000_0001;

export interface BodyCheck {
  /** The method's input message type. */
  input: DescMessage;
  /** The method takes exactly one request message (unary and server-streaming methods). */
  singleMessage: boolean;
  /** Whether messages are binary protobuf (parsed here) or JSON (left to Connect). */
  binary: boolean;
  /** Enveloped (gRPC, gRPC-Web, Connect streaming) or one bare message (Connect unary). */
  enveloped: boolean;
  /** The declared message encoding (grpc-encoding, connect-content-encoding or content-encoding). */
  encoding: string | null;
  accepted: readonly Compression[];
  readMaxBytes: number;
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

function invalidFlags(flags: number): ConnectError {
  const hex = `0x${flags.toString(16).padStart(2, '0')}`;
  return invalid(`message frame flags ${hex} are not valid in a request: only 0x01 (compressed) may be set`);
}

function tooLarge(bytes: number, readMaxBytes: number): ConnectError {
  return new ConnectError(
    `message of ${bytes} bytes is larger than the limit of ${readMaxBytes}`,
    Code.ResourceExhausted,
  );
}

/** Undefined for identity; null for an encoding the server does not know (Connect refuses it itself). */
function compressionFor(check: BodyCheck): Compression | undefined | null {
  if (check.encoding === null || check.encoding === '' || check.encoding === 'identity') return undefined;
  return check.accepted.find((c) => c.name === check.encoding) ?? null;
}

async function checkMessage(check: BodyCheck, data: Uint8Array, compressed: boolean): Promise<void> {
  const compression = compressionFor(check);
  if (compression === null) return;
  if (compressed && compression === undefined) {
    throw invalid(`a message is flagged compressed but the request declares no encoding (${check.encoding ?? 'none'})`);
  }
  // JSON is parsed by Connect, which already refuses bad JSON (and bad compressed data, see compression.ts).
  if (!check.binary) return;
  const message = compression && compressed ? await compression.decompress(data, check.readMaxBytes) : data;
  try {
    fromBinary(check.input, message);
  } catch (error) {
    const reason = error instanceof Error ? error.message : 'undecodable';
    throw invalid(`the request is not a valid ${check.input.typeName} message: ${reason}`);
  }
}

/** Yields the body's frames unchanged once each is checked; throws INVALID_ARGUMENT at the first bad one. */
async function* checkedFrames(body: AsyncIterable<Uint8Array>, check: BodyCheck): AsyncGenerator<Uint8Array> {
  let buffered = Buffer.alloc(0);
  let messages = 0;
  for await (const chunk of body) {
    buffered = buffered.length === 0 ? Buffer.from(chunk) : Buffer.concat([buffered, chunk]);
    while (buffered.length >= FRAME_HEADER_BYTES) {
      const flags = buffered[0]!;
      // gRPC-Web's trailer flag (0x80) and Connect's end-of-stream flag (0x02) are for answers only.
      if ((flags & ~COMPRESSED_FLAG) !== 0) throw invalidFlags(flags);
      const length = buffered.readUInt32BE(1);
      if (length > check.readMaxBytes) throw tooLarge(length, check.readMaxBytes);
      if (buffered.length < FRAME_HEADER_BYTES + length) break;
      const frame = buffered.subarray(0, FRAME_HEADER_BYTES + length);
      buffered = buffered.subarray(FRAME_HEADER_BYTES + length);
      if (check.singleMessage && ++messages > 1) throw invalid('this method takes exactly one request message');
      await checkMessage(check, frame.subarray(FRAME_HEADER_BYTES), (flags & COMPRESSED_FLAG) !== 0);
      yield frame;
    }
  }
  if (buffered.length > 0) {
    throw invalid(`incomplete message frame: the request ended ${buffered.length} bytes into a frame`);
  }
  // Connect would call a request with no message "unimplemented"; it is a malformed request.
  if (check.singleMessage && messages === 0) throw invalid('the request has no message; this method takes one');
}

async function* checkedUnary(body: AsyncIterable<Uint8Array>, check: BodyCheck): AsyncGenerator<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.byteLength;
    if (total > check.readMaxBytes) throw tooLarge(total, check.readMaxBytes);
    chunks.push(chunk);
  }
  const message = Buffer.concat(chunks);
  await checkMessage(check, message, compressionFor(check) !== undefined);
  yield message;
}

/** The request body, checked as it is read (see the module comment). */
export function checkedBody(body: AsyncIterable<Uint8Array>, check: BodyCheck): AsyncIterable<Uint8Array> {
  return check.enveloped ? checkedFrames(body, check) : checkedUnary(body, check);
}
