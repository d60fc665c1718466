/**
 * Request validation: malformed input is refused with INVALID_ARGUMENT before anything touches the
 * database, so a bad request records nothing.
 */
import { isKnownCurrency } from '../domain/currency.js';
import { invalidArgument } from '../domain/errors.js';
import { hasIdShape, type IdPrefix } from '../domain/ids.js';

export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
export const MAX_OWNER_REF_LENGTH = 255;
export const MAX_DESCRIPTION_LENGTH = 500;
export const MAX_REFUND_REASON_LENGTH = 500;
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

// Control characters in a key or reference are almost always a client bug (a stray newline from a shell).
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

export function requireIdempotencyKey(key: string): string {
  if (key.length === 0) {
    throw invalidArgument('idempotency_key', 'IDEMPOTENCY_KEY_MISSING', 'idempotency_key is required');
  }
  if (key.length > MAX_IDEMPOTENCY_KEY_LENGTH || CONTROL_CHARACTERS.test(key)) {
    throw invalidArgument(
      'idempotency_key',
      'IDEMPOTENCY_KEY_INVALID',
      `idempotency_key must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} printable characters`,
    );
  }
  return key;
}

export function requireText(field: string, value: string, maxLength: number, required: boolean): string {
  if (required && value.length === 0) throw invalidArgument(field, 'FIELD_REQUIRED', `${field} is required`);
  if (value.length > maxLength) {
    throw invalidArgument(field, 'FIELD_TOO_LONG', `${field} must be at most ${maxLength} characters`);
  }
  if (field !== 'description' && field !== 'reason' && CONTROL_CHARACTERS.test(value)) {
    throw invalidArgument(field, 'FIELD_INVALID', `${field} must not contain control characters`);
  }
  return value;
}

export function requireCurrency(field: string, currency: string): string {
  if (currency.length === 0) throw invalidArgument(field, 'CURRENCY_REQUIRED', `${field} is required`);
  if (!isKnownCurrency(currency)) {
    throw invalidArgument(
      field,
      'CURRENCY_UNKNOWN',
      `${field} "${currency.slice(0, 8)}" is not an ISO 4217 currency code in use (e.g. USD, EUR, JPY)`,
    );
  }
  return currency;
}

export interface MoneyInput {
  amountMinor: bigint;
  currency: string;
}

export function requirePositiveMoney(field: string, money: MoneyInput | undefined): MoneyInput {
  if (!money) throw invalidArgument(field, 'AMOUNT_REQUIRED', `${field} is required`);
  if (money.amountMinor <= 0n) {
    throw invalidArgument(
      `${field}.amount_minor`,
      'AMOUNT_NOT_POSITIVE',
      `${field}.amount_minor must be a positive number of minor units`,
    );
  }
  return { amountMinor: money.amountMinor, currency: requireCurrency(`${field}.currency`, money.currency) };
}

/** An amount a client may leave out (meaning "all of it"); when present it must be positive and known. */
export function requireOptionalPositiveMoney(field: string, money: MoneyInput | undefined): MoneyInput | null {
  return money ? requirePositiveMoney(field, money) : null;
}

/**
 * An id that is present. Returns false for an id that cannot exist (wrong shape), which callers answer with
 * NOT_FOUND without a query: an id is opaque to clients, so a malformed one is simply an unknown one.
 */
export function requireId(field: string, prefix: IdPrefix, value: string): boolean {
  if (value.length === 0) throw invalidArgument(field, 'FIELD_REQUIRED', `${field} is required`);
  return hasIdShape(prefix, value);
}

export function pageSizeOf(requested: number): number {
  if (requested < 0) throw invalidArgument('page_size', 'PAGE_SIZE_INVALID', 'page_size must not be negative');
  if (requested === 0) return DEFAULT_PAGE_SIZE;
  return Math.min(requested, MAX_PAGE_SIZE);
}
