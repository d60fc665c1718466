/**
 * Outcomes are stored with their idempotency key as jsonb and replayed from there. JSON has no bigint or
 * Date, so both are tagged on the way in and restored on the way out; the round trip is exact.
 */

import { invariant } from '../domain/assert.js';
import type { LedgerOutcome } from './commands.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const MAX_DEPTH = 8;

function encodeValue(value: unknown, depth: number): Json {
  invariant(depth <= MAX_DEPTH, 'stored outcome nests too deeply');
  if (typeof value === 'bigint') return { $bigint: value.toString() };
  if (value instanceof Date) return { $date: value.toISOString() };
  if (Array.isArray(value)) return value.map((item) => encodeValue(item, depth + 1));
  if (value !== null && typeof value === 'object') {
    const out: { [key: string]: Json } = {};
    for (const [key, item] of Object.entries(value)) out[key] = encodeValue(item, depth + 1);
    return out;
  }
  return value as Json;
}

function decodeValue(value: Json, depth: number): unknown {
  invariant(depth <= MAX_DEPTH, 'stored outcome nests too deeply');
  if (Array.isArray(value)) return value.map((item) => decodeValue(item, depth + 1));
  if (value !== null && typeof value === 'object') {
    if (typeof value.$bigint === 'string') return BigInt(value.$bigint);
    if (typeof value.$date === 'string') return new Date(value.$date);
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = decodeValue(item, depth + 1);
    return out;
  }
  return value;
}

export function encodeOutcome(outcome: LedgerOutcome): Json {
  return encodeValue(outcome, 0);
}

export function decodeOutcome(stored: unknown): LedgerOutcome {
  return decodeValue(stored as Json, 0) as LedgerOutcome;
}
