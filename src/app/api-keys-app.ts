/**
 * Managing backends' API keys while the server runs (ApiKeyService): validation here, storage and the
 * cross-replica revocation in auth/api-keys.ts.
 */
import { type ApiKeyInfo, createApiKey, listApiKeys, revokeApiKey } from '../auth/api-keys.js';
import { isScope, SCOPES, type Scope } from '../auth/caller.js';
import type { LedgerDb } from '../db/client.js';
import { invalidArgument, notFound } from '../domain/errors.js';
import { requireText } from './validation.js';

const MAX_NAME_LENGTH = 100;
/** ListApiKeys answers at most this many keys. */
export const MAX_LISTED_API_KEYS = 1000;
const KEY_ID_PATTERN = /^[0-9a-f]{16}$/;

export class ApiKeysApp {
  constructor(private readonly db: LedgerDb) {}

  /** A new key; `key` is the secret, returned only here. INVALID_ARGUMENT for a bad name or scope. */
  async create(input: {
    name: string;
    scopes: string[];
    signal?: AbortSignal;
  }): Promise<{ info: ApiKeyInfo; key: string }> {
    const name = requireText('name', input.name.trim(), MAX_NAME_LENGTH, true);
    if (input.scopes.length === 0) throw invalidArgument('scopes', 'FIELD_REQUIRED', 'scopes is required');
    const unknown = input.scopes.filter((scope) => !isScope(scope));
    if (unknown.length > 0) {
      const shown = unknown.slice(0, 3).map((scope) => JSON.stringify(scope.slice(0, 40)));
      throw invalidArgument(
        'scopes',
        'SCOPE_UNKNOWN',
        `unknown scopes ${shown.join(', ')}; known: ${SCOPES.join(', ')}`,
      );
    }
    const scopes = [...new Set(input.scopes)] as Scope[];
    const { id, key } = await createApiKey(this.db, name, scopes, input.signal);
    return { info: { id, name, scopes, createdAt: new Date(), revokedAt: null }, key };
  }

  list(): Promise<ApiKeyInfo[]> {
    return listApiKeys(this.db, MAX_LISTED_API_KEYS);
  }

  /** Revokes an active key at once on every replica; NOT_FOUND if there is no such active key. */
  async revoke(id: string, signal?: AbortSignal): Promise<void> {
    if (!KEY_ID_PATTERN.test(id)) throw invalidArgument('id', 'FIELD_INVALID', 'id must be 16 hex characters');
    if (!(await revokeApiKey(this.db, id, signal))) throw notFound('api_key', id, 'id');
  }
}
