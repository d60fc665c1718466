/**
 * The edge where request bytes become request messages, made strict. protobuf-es reads leniently: an int64
 * given as a JSON number beyond 2^53 silently loses its last digits, an int64 string is read with BigInt
 * ("0x10" is 16, " 10" is 10), and an enum number that the enum does not define is kept as is (JSON and
 * binary alike). Here, before any handler runs:
 *   - a Connect/gRPC JSON body must be valid UTF-8; every JSON number must be an exact integer (|n| ≤ 2^53−1);
 *     every 64-bit integer field given as a string must be a canonical decimal integer in range
 *     (strictJsonOptionsFor, used as the method's JSON decoder);
 *   - every decoded request, in any wire format, names only defined enum values and carries strings that
 *     pass the one string rule of src/app/validation.ts (strictInputInterceptor).
 * Anything else is INVALID_ARGUMENT naming the field; nothing reaches the application.
 */
import { type DescField, type DescMessage, type DescService, type Message, ScalarType } from '@bufbuild/protobuf';
import { type ReflectMessage, reflect } from '@bufbuild/protobuf/reflect';
import type { ConnectRouter, Interceptor, ServiceImpl } from '@connectrpc/connect';
import { checkRequestString } from '../app/validation.js';
import { DomainError, echoed, invalidArgument } from '../domain/errors.js';
import { toConnectError } from './errors.js';

/** What Connect JSON reads and writes: unknown fields refused; zeros and default enums written out. */
export const JSON_OPTIONS = { ignoreUnknownFields: false, alwaysEmitImplicit: true } as const;

// Requests are flat; this only bounds a hostile nesting of known message fields.
const MAX_DEPTH = 16;
const DECIMAL_INTEGER = /^-?(0|[1-9][0-9]*)$/;
// google.protobuf.Duration in JSON: seconds (at most 12 digits, past any bound we accept), optional fraction.
const DURATION_JSON = /^-?[0-9]{1,12}(\.[0-9]{1,9})?s$/;
const INT64_RANGE = { min: -(2n ** 63n), max: 2n ** 63n - 1n };
const UINT64_RANGE = { min: 0n, max: 2n ** 64n - 1n };
const INT32_RANGE = { min: -(2n ** 31n), max: 2n ** 31n - 1n };
const UINT32_RANGE = { min: 0n, max: 2n ** 32n - 1n };
const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

function integerRange(scalar: ScalarType): { min: bigint; max: bigint } | undefined {
  switch (scalar) {
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return INT64_RANGE;
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return UINT64_RANGE;
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return INT32_RANGE;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return UINT32_RANGE;
    default:
      return undefined;
  }
}

function refuse(path: string, message: string): never {
  throw invalidArgument(path, 'FIELD_INVALID', message);
}

/** An integer field's JSON value read strictly: a safe-integer number or a canonical decimal string, in range. */
function checkJsonInteger(path: string, value: unknown, range: { min: bigint; max: bigint }): void {
  let exact: bigint;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      refuse(path, `${path} must be an integer; write values beyond 2^53 as a decimal string, e.g. "1234"`);
    }
    exact = BigInt(value);
  } else if (typeof value === 'string') {
    if (!DECIMAL_INTEGER.test(value) || value.length > 21) {
      refuse(path, `${path} must be a decimal integer without sign "+", spaces, prefixes or leading zeros`);
    }
    exact = BigInt(value);
  } else {
    return; // null and other types: protobuf-es refuses them or treats null as absent.
  }
  if (exact < range.min || exact > range.max) refuse(path, `${path} is out of range`);
}

function checkJsonEnum(path: string, field: DescField & { fieldKind: 'enum' }, value: unknown): void {
  const known =
    typeof value === 'number'
      ? field.enum.values.some((v) => v.number === value)
      : typeof value === 'string'
        ? field.enum.values.some((v) => v.name === value)
        : true;
  if (!known) refuse(path, `${path} is not a value of ${field.enum.name}`);
}

function checkJsonSingle(path: string, field: DescField, value: unknown, depth: number): void {
  if (value === INEXACT_NUMBER) {
    refuse(path, `${path} must be an integer within ±(2^53−1); write larger int64 values as strings, e.g. "1234"`);
  }
  const kind = field.fieldKind === 'list' ? field.listKind : field.fieldKind;
  if (kind === 'enum' && field.enum) checkJsonEnum(path, field as DescField & { fieldKind: 'enum' }, value);
  if (kind === 'scalar' && field.scalar !== undefined) {
    const range = integerRange(field.scalar);
    if (range) checkJsonInteger(path, value, range);
    // Here too, not only after decoding: protobuf-es refuses a lone surrogate itself, without naming the field.
    if (field.scalar === ScalarType.STRING && typeof value === 'string') {
      checkRequestString(path, field.name, value);
    }
  }
  if (kind === 'message' && field.message) {
    if (field.message.typeName === 'google.protobuf.Duration') {
      if (typeof value === 'string' && !DURATION_JSON.test(value)) {
        refuse(path, `${path} must be a duration in seconds such as "3600s"`);
      }
    } else if (!field.message.typeName.startsWith('google.protobuf.')) {
      checkJsonMessage(field.message, value, `${path}.`, depth + 1);
    }
  }
}

/** Walks a parsed JSON request along its schema; a key the schema does not know is refused. */
function checkJsonMessage(desc: DescMessage, json: unknown, prefix: string, depth: number): void {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return;
  if (depth > MAX_DEPTH) refuse(prefix.slice(0, -1), 'the request nests too deeply');
  for (const [key, value] of Object.entries(json)) {
    const field = desc.fields.find((f) => f.jsonName === key || f.name === key);
    // Refused here rather than by protobuf-es, whose message would repeat the whole key.
    if (!field) refuse('', `${prefix}${echoed(key)} is not a field of ${desc.typeName}`);
    if (field.fieldKind === 'map') continue;
    const path = `${prefix}${field.name}`;
    if (field.fieldKind === 'list' && Array.isArray(value)) {
      for (const item of value) checkJsonSingle(path, field, item, depth);
    } else {
      checkJsonSingle(path, field, value, depth);
    }
  }
}

// Stands in for an inexact number while the field walk runs, so that the error can name the field. A NUL
// can never be part of a valid request, so the marker cannot be mistaken for one.
const INEXACT_NUMBER = '\u0000inexact-number';

/**
 * Every number token in a JSON text must be an integer literal that a double holds exactly: JSON.parse alone
 * hides 1.0000000000000001 (reads as 1) and 1e3. Returns the text with each other number replaced by the
 * INEXACT_NUMBER marker (a JSON string), and how many were replaced. Our requests have no float fields.
 */
function markInexactNumbers(text: string): { text: string; inexact: number } {
  const end = text.length;
  let out = '';
  let copiedTo = 0;
  let inexact = 0;
  for (let i = 0; i < end; i++) {
    const char = text[i]!;
    if (char === '"') {
      // Skip the string literal, escapes included; JSON.parse has already vouched for its shape.
      for (i++; i < end && text[i] !== '"'; i++) if (text[i] === '\\') i++;
    } else if (char === '-' || (char >= '0' && char <= '9')) {
      let j = i + 1;
      while (j < end && /[-+0-9.eE]/.test(text[j]!)) j++;
      const token = text.slice(i, j);
      if (!DECIMAL_INTEGER.test(token) || !Number.isSafeInteger(Number(token))) {
        out += `${text.slice(copiedTo, i)}${JSON.stringify(INEXACT_NUMBER)}`;
        copiedTo = j;
        inexact++;
      }
      i = j - 1;
    }
  }
  return { text: inexact === 0 ? text : out + text.slice(copiedTo), inexact };
}

function decodeStrictJson(input: DescMessage, data: Uint8Array): string {
  try {
    let text: string;
    try {
      text = fatalUtf8.decode(data);
    } catch {
      refuse('', 'the request body is not valid UTF-8');
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return text; // protobuf-es answers malformed JSON with INVALID_ARGUMENT itself.
    }
    const marked = markInexactNumbers(text);
    checkJsonMessage(input, marked.inexact > 0 ? JSON.parse(marked.text) : parsed, '', 0);
    // An inexact number where the walk does not look (an unknown field) is refused all the same.
    if (marked.inexact > 0) refuse('', 'numbers in a request must be integers within ±(2^53−1)');
    return text;
  } catch (error) {
    throw error instanceof DomainError ? toConnectError(error) : error;
  }
}

/** Connect handler JSON options for one method: JSON_OPTIONS, with the strict reading of its input. */
export function strictJsonOptionsFor(input: DescMessage) {
  // Connect's JSON serialization reads the body through this decoder (serialization.ts: createJsonSerialization).
  return Object.assign({}, JSON_OPTIONS, {
    textDecoder: { decode: (data: Uint8Array) => decodeStrictJson(input, data) },
  });
}

/**
 * Registers a service method by method, each with the strict JSON reading of its own input (router.service
 * takes one set of options for all methods). Methods missing from `impl` are left unregistered.
 */
export function serveStrictly<S extends DescService>(router: ConnectRouter, service: S, impl: ServiceImpl<S>): void {
  for (const method of service.methods) {
    const handler = (impl as Record<string, unknown>)[method.localName];
    if (typeof handler !== 'function') continue;
    const options = { jsonOptions: strictJsonOptionsFor(method.input) };
    router.rpc(method as never, handler.bind(impl) as never, options);
  }
}

function checkDecodedField(message: ReflectMessage, field: DescField, path: string, depth: number): void {
  if (field.fieldKind === 'map') return;
  if (field.fieldKind === 'list') {
    const list = message.get(field);
    for (const item of list) checkDecodedValue(field, item, path, depth);
    return;
  }
  if (field.fieldKind === 'message' && !message.isSet(field)) return;
  checkDecodedValue(field, message.get(field), path, depth);
}

function checkDecodedValue(field: DescField, value: unknown, path: string, depth: number): void {
  const kind = field.fieldKind === 'list' ? field.listKind : field.fieldKind;
  if (kind === 'enum' && field.enum && !field.enum.values.some((v) => v.number === value)) {
    refuse(path, `${path} is not a value of ${field.enum.name}`);
  }
  if (kind === 'scalar' && field.scalar === ScalarType.STRING && typeof value === 'string') {
    checkRequestString(path, field.name, value);
  }
  if (kind === 'message' && value && typeof value === 'object') {
    const typeName = field.message?.typeName;
    if (typeName === 'google.protobuf.Timestamp' || typeName === 'google.protobuf.Duration') {
      checkWellKnownTime(path, typeName, value as ReflectMessage);
    }
    checkDecodedMessage(value as ReflectMessage, `${path}.`, depth + 1);
  }
}

// The ranges google/protobuf/timestamp.proto and duration.proto define; binary protobuf carries any int64 and
// int32, which would reach Date (Invalid Date) or PostgreSQL (out of range) as an internal error.
const TIMESTAMP_SECONDS = { min: -62_135_596_800n, max: 253_402_300_799n }; // 0001-01-01 .. 9999-12-31
const DURATION_SECONDS = { min: -315_576_000_000n, max: 315_576_000_000n }; // ±10,000 years
const MAX_NANOS = 999_999_999;

/** A Timestamp or Duration within the range its definition gives, whatever wire format carried it. */
function checkWellKnownTime(path: string, typeName: string, value: ReflectMessage): void {
  const seconds = value.get(value.fields.find((f) => f.name === 'seconds')!) as bigint;
  const nanos = value.get(value.fields.find((f) => f.name === 'nanos')!) as number;
  if (typeName === 'google.protobuf.Timestamp') {
    if (seconds < TIMESTAMP_SECONDS.min || seconds > TIMESTAMP_SECONDS.max || nanos < 0 || nanos > MAX_NANOS) {
      refuse(path, `${path} must be a time from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z`);
    }
    return;
  }
  const mixedSigns = (seconds > 0n && nanos < 0) || (seconds < 0n && nanos > 0);
  if (seconds < DURATION_SECONDS.min || seconds > DURATION_SECONDS.max || Math.abs(nanos) > MAX_NANOS || mixedSigns) {
    refuse(path, `${path} must be a duration within ±10,000 years with nanos of the same sign as seconds`);
  }
}

function checkDecodedMessage(message: ReflectMessage, prefix: string, depth: number): void {
  if (depth > MAX_DEPTH) refuse(prefix.slice(0, -1), 'the request nests too deeply');
  for (const field of message.fields) checkDecodedField(message, field, `${prefix}${field.name}`, depth);
}

/**
 * Checks one decoded request message: defined enum values only, every string by the one string rule.
 * Throws a DomainError (INVALID_ARGUMENT naming the field); what strictInputInterceptor runs.
 */
export function checkDecodedRequest(desc: DescMessage, message: Message): void {
  checkDecodedMessage(reflect(desc, message as never), '', 0);
}

/**
 * Every unary request, in every wire format: enum fields hold values their enum defines (binary protobuf
 * keeps unknown numbers of open enums), and every string passes the one string rule (validation.ts).
 */
export function strictInputInterceptor(): Interceptor {
  return (next) => async (request) => {
    if (!request.stream) {
      checkDecodedRequest(request.method.input, request.message as Message);
      return next(request);
    }
    // Streaming requests (WatchAccount, Health/Watch): every message is checked as it is read, before the
    // handler sees it.
    const input = request.method.input;
    return next(
      Object.assign({}, request, { message: checkedMessages(input, request.message as AsyncIterable<Message>) }),
    );
  };
}

async function* checkedMessages(
  schema: Parameters<typeof checkDecodedRequest>[0],
  messages: AsyncIterable<Message>,
): AsyncIterable<Message> {
  for await (const message of messages) {
    checkDecodedRequest(schema, message);
    yield message;
  }
}
