/**
 * API keys for backends: `plk_<id>_<secret>`. Only a SHA-256 hash of the whole key is stored (the secret is
 * 256 random bits, so a slow hash adds nothing); a presented key is looked up by its id and compared in
 * constant time. Created, listed and revoked with `npm run apikey`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import type { LedgerDb } from '../db/client.js';
import { apiKeys } from '../db/schema.js';
import { throwIfPastDeadline } from '../domain/errors.js';
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

export async function createApiKey(
  db: LedgerDb,
  name: string,
  scopes: Scope[],
  signal?: AbortSignal,
): Promise<{ id: string; key: string }> {
  const id = randomBytes(8).toString('hex');
  const key = `plk_${id}_${randomBytes(32).toString('base64url')}`;
  throwIfPastDeadline(signal);
  await db.transaction(async (tx) => {
    await tx.insert(apiKeys).values({ id, name, keyHash: hashOf(key).toString('hex'), scopes: [...new Set(scopes)] });
    // The secret is shown once, in the answer: a key whose answer the client gave up on must not exist.
    throwIfPastDeadline(signal);
  });
  return { id, key };
}

/** Every server LISTENs here and drops its cache of verified keys (ApiKeyCache) when a key is revoked. */
export const API_KEY_REVOKED_CHANNEL = 'api_key_revoked';

/**
 * Revokes a key; returns false if there was no such active key. The NOTIFY is part of the same transaction, so
 * every replica hears of the revocation exactly when it commits. The one revocation path for the CLI, the demo
 * seed and any admin RPC.
 */
export async function revokeApiKey(db: LedgerDb, id: string, signal?: AbortSignal): Promise<boolean> {
  throwIfPastDeadline(signal);
  return db.transaction(async (tx) => {
    const revoked = await tx
      .update(apiKeys)
      .set({ revokedAt: new Date() })
      .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
      .returning({ id: apiKeys.id });
    if (revoked.length === 0) return false;
    await tx.execute(sql`select pg_notify(${API_KEY_REVOKED_CHANNEL}, ${id})`);
    // Past the deadline the client is told nothing changed, so nothing may (the NOTIFY goes with the rollback).
    throwIfPastDeadline(signal);
    return true;
  });
}

/** Keys oldest first, at most `limit`. */
export async function listApiKeys(db: LedgerDb, limit = 1000): Promise<ApiKeyInfo[]> {
  const rows = await db.select().from(apiKeys).orderBy(asc(apiKeys.createdAt)).limit(limit);
  return rows.map((row) => Object.assign({}, row, { scopes: row.scopes.filter(isScope) }));
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
  return { kind: 'backend', principal: `apikey:${row.id}`, scopes: new Set(row.scopes.filter(isScope)) };
}

const MAX_CACHED_KEYS = 10_000;

/**
 * Verified API keys, believed for `ttlMs` without asking the database: saves a query on every request. Keyed by
 * the presented key's hash (the cache holds no secrets); only successful verifications are cached, so a new key
 * works at once. Revocation takes effect at once on every replica: `clear()` runs on each `api_key_revoked`
 * notification, and while the LISTEN connection is down (a notification could be missed) nothing is cached.
 */
export class ApiKeyCache {
  private readonly entries = new Map<string, { caller: Caller; expiresAtMs: number }>();
  private listening = false;
  /** Bumped by every clear(), so a verification that raced a revocation is not cached. */
  private generation = 0;

  constructor(
    private readonly db: LedgerDb,
    private readonly ttlMs: number,
    private readonly nowMs: () => number = Date.now,
  ) {}

  async verify(presented: string): Promise<Caller | undefined> {
    const cacheKey = hashOf(presented).toString('base64');
    const cached = this.entries.get(cacheKey);
    if (cached && cached.expiresAtMs > this.nowMs() && this.listening) return cached.caller;
    if (cached) this.entries.delete(cacheKey);
    const listeningBefore = this.listening;
    const generation = this.generation;
    const caller = await verifyApiKey(this.db, presented);
    // A revocation heard while the query ran may concern this very key: do not cache what was just read.
    if (caller && this.ttlMs > 0 && listeningBefore && this.listening && generation === this.generation) {
      if (this.entries.size >= MAX_CACHED_KEYS) this.entries.clear();
      this.entries.set(cacheKey, { caller, expiresAtMs: this.nowMs() + this.ttlMs });
    }
    return caller;
  }

  /** Forgets every verified key (a key was revoked somewhere). */
  clear(): void {
    this.generation++;
    this.entries.clear();
  }

  /** Whether revocations are being heard; when not, the cache is emptied and bypassed. */
  setListening(listening: boolean): void {
    this.listening = listening;
    this.clear();
  }
}
