/**
 * Just enough of the gRPC wire format for a load generator whose own CPU must stay small next to the
 * server's: requests are built by copying pre-encoded protobuf pieces (only the idempotency key and the
 * accounts vary), and responses are scanned for the one field the benchmark needs instead of decoded.
 * Pure functions, unit-tested against @bufbuild/protobuf in test/unit/bench-wire.test.ts.
 */

/** Bytes before every gRPC message: 1 compressed flag + 4 length (big-endian). */
export const FRAME_HEADER_BYTES = 5;
/** Protobuf wire types used here. */
const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

/** Wraps one serialized message in the 5-byte gRPC length prefix (uncompressed). */
export function frameMessage(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Splits a response body into its messages. Throws on a compressed or truncated frame: the benchmark asks
 * for no compression, so either is a server (or our) bug that must not be counted as a success.
 */
export function unframeMessages(body: Buffer): Buffer[] {
  const messages: Buffer[] = [];
  let offset = 0;
  while (offset < body.length) {
    if (body.length - offset < FRAME_HEADER_BYTES) throw new Error('truncated gRPC frame header');
    if (body[offset] !== 0) throw new Error('compressed gRPC frame (none was asked for)');
    const length = body.readUInt32BE(offset + 1);
    const start = offset + FRAME_HEADER_BYTES;
    if (start + length > body.length) throw new Error('truncated gRPC message');
    messages.push(body.subarray(start, start + length));
    offset = start + length;
  }
  return messages;
}

function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    length++;
  }
  return length;
}

/** Writes a non-negative integer below 2^53 as a protobuf varint; returns the offset after it. */
function writeVarint(target: Buffer, offset: number, value: number): number {
  while (value >= 0x80) {
    target[offset++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  target[offset++] = value;
  return offset;
}

/** Tag + length + bytes of a length-delimited field (string or embedded message). */
export function encodeLengthDelimited(fieldNumber: number, bytes: Uint8Array): Buffer {
  const tag = fieldNumber * 8 + WIRE_LEN;
  const out = Buffer.allocUnsafe(varintLength(tag) + varintLength(bytes.length) + bytes.length);
  let offset = writeVarint(out, 0, tag);
  offset = writeVarint(out, offset, bytes.length);
  out.set(bytes, offset);
  return out;
}

function encodeVarintField(fieldNumber: number, value: number): Buffer {
  const tag = fieldNumber * 8 + WIRE_VARINT;
  const out = Buffer.allocUnsafe(varintLength(tag) + varintLength(value));
  writeVarint(out, writeVarint(out, 0, tag), value);
  return out;
}

/**
 * AuthorizePaymentRequest (proto/payment/v1/payment.proto): 1 idempotency_key, 2 payer_account_id,
 * 3 payee_account_id, 4 amount {1 amount_minor, 2 currency}. The amount is fixed per template.
 */
export class AuthorizeRequestTemplate {
  readonly #amount: Buffer;

  constructor(amountMinor: number, currency: string) {
    if (!Number.isSafeInteger(amountMinor) || amountMinor <= 0) throw new Error(`bad amount ${amountMinor}`);
    const money = Buffer.concat([encodeVarintField(1, amountMinor), encodeLengthDelimited(2, Buffer.from(currency))]);
    this.#amount = encodeLengthDelimited(4, money);
  }

  /** The pre-encoded payer (field 2) of an account id: computed once per account, reused for every request. */
  static payerPiece(accountId: string): Buffer {
    return encodeLengthDelimited(2, Buffer.from(accountId, 'utf8'));
  }

  /** The pre-encoded payee (field 3) of an account id. */
  static payeePiece(accountId: string): Buffer {
    return encodeLengthDelimited(3, Buffer.from(accountId, 'utf8'));
  }

  /** One whole gRPC frame: the 5-byte prefix and the request, fields in number order. */
  frame(idempotencyKey: string, payerPiece: Buffer, payeePiece: Buffer): Buffer {
    const keyLength = Buffer.byteLength(idempotencyKey, 'utf8');
    const keyTagLength = 1 + varintLength(keyLength);
    const messageLength = keyTagLength + keyLength + payerPiece.length + payeePiece.length + this.#amount.length;
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + messageLength);
    frame[0] = 0;
    frame.writeUInt32BE(messageLength, 1);
    let offset = FRAME_HEADER_BYTES;
    frame[offset++] = 1 * 8 + WIRE_LEN;
    offset = writeVarint(frame, offset, keyLength);
    offset += frame.write(idempotencyKey, offset, 'utf8');
    offset += payerPiece.copy(frame, offset);
    offset += payeePiece.copy(frame, offset);
    this.#amount.copy(frame, offset);
    return frame;
  }
}

function readVarint(bytes: Uint8Array, offset: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  // At most 10 bytes in a varint; more means garbage.
  for (let i = 0; i < 10; i++) {
    const byte = bytes[offset + i];
    if (byte === undefined) throw new Error('truncated varint');
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, offset + i + 1];
    scale *= 128;
  }
  throw new Error('varint longer than 10 bytes');
}

/**
 * The value of the first varint field found by following `path` (field numbers of embedded messages, the
 * last one the varint), or 0 (proto3's default) when absent. Unknown fields are skipped by wire type.
 */
export function findVarint(message: Uint8Array, path: readonly number[]): number {
  let bytes = message;
  for (let depth = 0; depth < path.length; depth++) {
    const wanted = path[depth]!;
    const last = depth === path.length - 1;
    let offset = 0;
    let found: Uint8Array | number | undefined;
    while (offset < bytes.length && found === undefined) {
      const [tag, afterTag] = readVarint(bytes, offset);
      const fieldNumber = Math.floor(tag / 8);
      const wireType = tag % 8;
      offset = afterTag;
      if (wireType === WIRE_VARINT) {
        const [value, next] = readVarint(bytes, offset);
        if (fieldNumber === wanted && last) found = value;
        offset = next;
      } else if (wireType === WIRE_LEN) {
        const [length, start] = readVarint(bytes, offset);
        if (start + length > bytes.length) throw new Error('truncated length-delimited field');
        if (fieldNumber === wanted && !last) found = bytes.subarray(start, start + length);
        offset = start + length;
      } else if (wireType === WIRE_I64) offset += 8;
      else if (wireType === WIRE_I32) offset += 4;
      else throw new Error(`unsupported wire type ${wireType}`);
    }
    if (found === undefined) return 0;
    if (typeof found === 'number') return found;
    bytes = found;
  }
  return 0;
}

/** gRPC status codes by number, spelled as gRPC does (what server logs and docs use). */
export const GRPC_CODE_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;

/** The name of a grpc-status header value; anything unparsable or out of range is reported as such. */
export function grpcCodeName(status: string | undefined): string {
  if (status === undefined) return 'NO_GRPC_STATUS';
  const code = /^\d+$/.test(status) ? Number(status) : Number.NaN;
  return GRPC_CODE_NAMES[code] ?? `BAD_GRPC_STATUS(${status.slice(0, 20)})`;
}

/** The grpc-timeout header for a deadline: at most 8 digits, so large values go to a coarser unit. */
export function grpcTimeoutHeader(timeoutMs: number): string {
  const ms = Math.max(1, Math.ceil(timeoutMs));
  return ms < 100_000_000 ? `${ms}m` : `${Math.ceil(ms / 1000)}S`;
}
