import { describe, expect, it } from 'vitest';
import { InvariantViolation, invariant } from '../../src/domain/assert.js';
import { DomainError } from '../../src/domain/errors.js';
import { post } from '../../src/ledger/state.js';

describe('invariant', () => {
  it('passes when the condition holds', () => {
    expect(() => invariant(1 + 1 === 2, 'arithmetic')).not.toThrow();
  });

  it('throws an InvariantViolation, never a DomainError, with a greppable message', () => {
    let thrown: unknown;
    try {
      invariant(false, 'row was not locked');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvariantViolation);
    expect(thrown).not.toBeInstanceOf(DomainError);
    expect((thrown as Error).message).toBe('invariant: row was not locked');
  });

  it('guards the ledger: a non-positive posting is a programmer error', () => {
    expect(() => post({} as never, {} as never, {} as never, 0n, 'pay_x')).toThrow(InvariantViolation);
  });
});
