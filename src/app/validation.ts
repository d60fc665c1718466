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
/** Our ids are 31 characters at most ("acct_" + 26); anything longer cannot be one and is refused unread. */
export const MAX_ID_LENGTH = 64;
export const MAX_PAGE_TOKEN_LENGTH = 300;
/** Any other string in a request (none today): still bounded. */
export const MAX_OTHER_STRING_LENGTH = 255;
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

/**
 * Free text may hold tabs and line breaks; nothing else below U+0020, no DEL. Every other string (keys,
 * references, ids, codes, tokens) holds no control character at all: there they are a client bug (a stray
 * newline from a shell), and PostgreSQL refuses NUL in any text.
 */
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;
const CONTROL_CHARACTERS_EXCEPT_LINE_BREAKS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
// A high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export interface StringRule {
  /** In UTF-16 code units (what JavaScript's length counts), so never fewer than characters. */
  maxLength: number;
  /** Free text for people (description, reason) may hold tabs and line breaks. */
  freeText: boolean;
}

const FREE_TEXT_RULES: Record<string, StringRule> = {
  description: { maxLength: MAX_DESCRIPTION_LENGTH, freeText: true },
  reason: { maxLength: MAX_REFUND_REASON_LENGTH, freeText: true },
  idempotency_key: { maxLength: MAX_IDEMPOTENCY_KEY_LENGTH, freeText: false },
  owner_ref: { maxLength: MAX_OWNER_REF_LENGTH, freeText: false },
  page_token: { maxLength: MAX_PAGE_TOKEN_LENGTH, freeText: false },
};

/** The rule for a request field by its proto name: ids (`*_id`) are short, free text may break lines. */
export function stringRuleFor(fieldName: string): StringRule {
  const rule = FREE_TEXT_RULES[fieldName];
  if (rule) return rule;
  if (fieldName === 'id' || fieldName.endsWith('_id')) return { maxLength: MAX_ID_LENGTH, freeText: false };
  return { maxLength: MAX_OTHER_STRING_LENGTH, freeText: false };
}

/**
 * The one rule for every string a request carries to storage: well-formed Unicode (no lone surrogate, which
 * cannot be stored as UTF-8), at most `rule.maxLength` long, and no control characters (free text: no control
 * characters but tab, CR and LF). `path` names the field in the error ("amount.currency"); the error never
 * repeats the value. Throws INVALID_ARGUMENT FIELD_TOO_LONG or FIELD_INVALID.
 */
export function checkString(path: string, value: string, rule: StringRule): string {
  // Length first: the other checks then scan a bounded string.
  if (value.length > rule.maxLength) {
    throw invalidArgument(path, 'FIELD_TOO_LONG', `${path} must be at most ${rule.maxLength} characters`);
  }
  if (LONE_SURROGATE.test(value)) {
    throw invalidArgument(path, 'FIELD_INVALID', `${path} must be well-formed Unicode (no lone surrogates)`);
  }
  const forbidden = rule.freeText ? CONTROL_CHARACTERS_EXCEPT_LINE_BREAKS : CONTROL_CHARACTERS;
  if (forbidden.test(value)) {
    const allowed = rule.freeText ? ' other than tab, CR and LF' : '';
    throw invalidArgument(path, 'FIELD_INVALID', `${path} must not contain control characters${allowed}`);
  }
  return value;
}

export function requireIdempotencyKey(key: string): string {
  if (key.length === 0) {
    throw invalidArgument('idempotency_key', 'IDEMPOTENCY_KEY_MISSING', 'idempotency_key is required');
  }
  try {
    return checkString('idempotency_key', key, stringRuleFor('idempotency_key'));
  } catch {
    throw invalidArgument(
      'idempotency_key',
      'IDEMPOTENCY_KEY_INVALID',
      `idempotency_key must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} printable characters`,
    );
  }
}

/**
 * Any string of a request, by its field's proto name and its path in the request: what the API edge applies
 * to every string field of every request before the application sees it (src/api/strict-input.ts).
 */
export function checkRequestString(path: string, fieldName: string, value: string): string {
  if (fieldName === 'idempotency_key' && value.length > 0) return requireIdempotencyKey(value);
  return checkString(path, value, stringRuleFor(fieldName));
}

/** A string field checked by the one rule (see checkString), and present when `required`. */
export function requireText(field: string, value: string, maxLength: number, required: boolean): string {
  if (required && value.length === 0) throw invalidArgument(field, 'FIELD_REQUIRED', `${field} is required`);
  return checkString(field, value, Object.assign({}, stringRuleFor(field), { maxLength }));
}

export function requireCurrency(field: string, currency: string): string {
  if (currency.length === 0) throw invalidArgument(field, 'CURRENCY_REQUIRED', `${field} is required`);
  if (!isKnownCurrency(currency)) {
    throw invalidArgument(
      field,
      'CURRENCY_UNKNOWN',
      `${field} is not an ISO 4217 currency code in use (e.g. USD, EUR, JPY)`,
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
 * Whether a required id has the shape of one that could exist. Throws INVALID_ARGUMENT (FIELD_REQUIRED, or
 * the field's string rule) when it is empty or too long; returns false for a present id of the wrong shape,
 * which callers answer with NOT_FOUND without a query: an id is opaque to clients, so a malformed one is
 * simply an unknown one.
 */
export function isWellFormedId(field: string, prefix: IdPrefix, value: string): boolean {
  if (value.length === 0) throw invalidArgument(field, 'FIELD_REQUIRED', `${field} is required`);
  checkString(field, value, stringRuleFor(field));
  return hasIdShape(prefix, value);
}

export function pageSizeOf(requested: number): number {
  if (requested < 0) throw invalidArgument('page_size', 'PAGE_SIZE_INVALID', 'page_size must not be negative');
  if (requested === 0) return DEFAULT_PAGE_SIZE;
  return Math.min(requested, MAX_PAGE_SIZE);
}
