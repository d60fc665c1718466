/**
 * Page tokens are opaque to clients (base64url) but carry the listing they belong to (its scope, e.g. the
 * account), so a token from one listing cannot be replayed against another.
 */
import { invalidArgument } from '../domain/errors.js';

const TOKEN_VERSION = 'v1';
const MAX_TOKEN_LENGTH = 300;

export function encodePageToken(scope: string, position: string): string {
  return Buffer.from(`${TOKEN_VERSION}|${scope}|${position}`).toString('base64url');
}

/** The position after which the next page starts, or undefined for the first page. */
export function decodePageToken(token: string, scope: string, positionPattern: RegExp): string | undefined {
  if (token === '') return undefined;
  const invalid = invalidArgument('page_token', 'PAGE_TOKEN_INVALID', 'page_token is not a token from this listing');
  if (token.length > MAX_TOKEN_LENGTH) throw invalid;
  const parts = Buffer.from(token, 'base64url').toString('utf8').split('|');
  if (parts.length !== 3 || parts[0] !== TOKEN_VERSION || parts[1] !== scope || !positionPattern.test(parts[2]!)) {
    throw invalid;
  }
  return parts[2];
}
