/**
 * The prepared write path writes only some kinds of effect; a list with any other kind must take the general
 * path (writes.ts), or that effect would be planned, answered and never stored. Every field of Effects that
 * is not known to the prepared path is tried, so a field added later fails here until it is considered.
 */
import { describe, expect, it } from 'vitest';
import { type Effects, emptyEffects } from '../../src/ledger/state.js';
import { preparedCanWrite } from '../../src/ledger/writes-prepared.js';

// What writes-prepared.ts writes itself.
const PREPARED_KINDS = new Set(['newPayments', 'changedPayments', 'entries', 'events', 'touchedAccountIds']);

function withOne(effects: Effects, field: keyof Effects): Effects {
  const value = effects[field];
  if (value instanceof Map) value.set('x', {} as never);
  else if (value instanceof Set) value.add('x');
  else (value as unknown[]).push({});
  return effects;
}

describe('preparedCanWrite', () => {
  it('takes an empty list and the kinds it writes', () => {
    expect(preparedCanWrite(emptyEffects())).toBe(true);
    for (const field of PREPARED_KINDS)
      expect(preparedCanWrite(withOne(emptyEffects(), field as keyof Effects))).toBe(true);
  });

  it('refuses every other kind of effect, so that it is written by the general path', () => {
    const others = Object.keys(emptyEffects()).filter((field) => !PREPARED_KINDS.has(field)) as (keyof Effects)[];
    expect(others.length).toBeGreaterThan(0);
    for (const field of others) expect(preparedCanWrite(withOne(emptyEffects(), field)), field).toBe(false);
  });
});
