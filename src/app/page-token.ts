/**
 * Page tokens are opaque to clients (base64url) but carry the listing they belong to (its scope, e.g. the
 * account), so a token from one listing cannot be replayed against another.
 */
import { invalidArgument } from '../domain/errors.js';

const TOKEN_VERSION = 'v1';
const MAX_TOKEN_LENGTH = 300;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

export function encodePageToken(scope: string, position: string): string {
  return Buffer.from(`${TOKEN_VERSION}|${scope}|${position}`).toString('base64url');
}

/**
 * The position after which the next page starts, or undefined for the first page. A token is checked whole
 * before use: its encoding, version, scope, and a position that `positionPattern` matches and `inBounds`
 * accepts (e.g. a version that fits the column it is compared with). Anything else is INVALID_ARGUMENT
 * PAGE_TOKEN_INVALID, whatever the token holds; nothing of it is echoed.
 */
export function decodePageToken(
  token: string,
  scope: string,
  positionPattern: RegExp,
  inBounds: (position: string) => boolean = () => true,
): string | undefined {
  if (token === '') return undefined;
  const invalid = invalidArgument('page_token', 'PAGE_TOKEN_INVALID', 'page_token is not a token from this listing');
  if (token.length > MAX_TOKEN_LENGTH || !BASE64URL.test(token)) throw invalid;
  const parts = Buffer.from(token, 'base64url').toString('utf8').split('|');
  const position = parts[2];
  if (parts.length !== 3 || parts[0] !== TOKEN_VERSION || parts[1] !== scope || position === undefined) throw invalid;
  if (!positionPattern.test(position) || !inBounds(position)) throw invalid;
  return position;
}

/** A position that is a positive int64 (an account version): what a token of ours can hold. */
export function isPositiveInt64(position: string): boolean {
  return /^[1-9][0-9]{0,18}$/.test(position) && BigInt(position) <= 2n ** 63n - 1n;
}
