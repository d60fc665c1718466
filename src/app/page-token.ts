/**
 * Page tokens are opaque to clients (base64url) but carry the account they belong to, so a token from one
 * listing cannot be replayed against another.
 */
import { invalidArgument } from '../domain/errors.js';

const TOKEN_VERSION = 'v1';

export function encodePageToken(accountId: string, beforeVersion: bigint): string {
  return Buffer.from(`${TOKEN_VERSION}:${accountId}:${beforeVersion}`).toString('base64url');
}

export function decodePageToken(token: string, accountId: string): bigint | undefined {
  if (token === '') return undefined;
  const invalid = invalidArgument('page_token', 'PAGE_TOKEN_INVALID', 'page_token is not a token from this listing');
  if (token.length > 200) throw invalid;
  const parts = Buffer.from(token, 'base64url').toString('utf8').split(':');
  if (parts.length !== 3 || parts[0] !== TOKEN_VERSION || parts[1] !== accountId || !/^\d{1,19}$/.test(parts[2]!)) {
    throw invalid;
  }
  return BigInt(parts[2]!);
}
