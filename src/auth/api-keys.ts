/**
 * API keys for backends: `plk_<id>_<secret>`. Only a SHA-256 hash of the whole key is stored (the secret is
 * 256 random bits, so a slow hash adds nothing); a presented key is looked up by its id and compared in
 * constant time. Created, listed and revoked with `npm run apikey`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { and, asc, eq, isNull } from 'drizzle-orm';
import type { LedgerDb } from '../db/client.js';
import { apiKeys } from '../db/schema.js';
import { type Caller, isScope, type Scope } from './caller.js';

const KEY_PATTERN = /^plk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

function hashOf(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

export interface ApiKeyInfo {
  id: string;
  name: string;
  scopes: Scope[];
  createdAt: Date;
  revokedAt: Date | null;
}

export async function createApiKey(db: LedgerDb, name: string, scopes: Scope[]): Promise<{ id: string; key: string }> {
  const id = randomBytes(8).toString('hex');
  const key = `plk_${id}_${randomBytes(32).toString('base64url')}`;
  await db.insert(apiKeys).values({ id, name, keyHash: hashOf(key).toString('hex'), scopes: [...new Set(scopes)] });
  return { id, key };
}

/** Revokes a key; returns false if there was no such active key. */
export async function revokeApiKey(db: LedgerDb, id: string): Promise<boolean> {
  const revoked = await db
    .update(apiKeys)
    .set({ revokedAt: new Date() })
    .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
    .returning({ id: apiKeys.id });
  return revoked.length > 0;
}

/** Keys oldest first, at most `limit`. */
export async function listApiKeys(db: LedgerDb, limit = 1000): Promise<ApiKeyInfo[]> {
  const rows = await db.select().from(apiKeys).orderBy(asc(apiKeys.createdAt)).limit(limit);
  return rows.map((row) => ({ ...row, scopes: row.scopes.filter(isScope) }));
}

/** The service caller a presented key stands for, or undefined if it is malformed, unknown or revoked. */
export async function verifyApiKey(db: LedgerDb, presented: string): Promise<Caller | undefined> {
  const match = KEY_PATTERN.exec(presented);
  if (!match) return undefined;
  const [row] = await db
    .select()
    .from(apiKeys)
    .where(and(eq(apiKeys.id, match[1]!), isNull(apiKeys.revokedAt)));
  if (!row) return undefined;
  const stored = Buffer.from(row.keyHash, 'hex');
  const actual = hashOf(presented);
  if (stored.length !== actual.length || !timingSafeEqual(stored, actual)) return undefined;
  return { kind: 'service', principal: `apikey:${row.id}`, scopes: new Set(row.scopes.filter(isScope)) };
}
