/**
 * Assertions for programmer errors, kept apart from domain errors. A DomainError (domain/errors.ts) is an
 * operating error: the input or the state refuses the request, and the client gets its reason. An
 * InvariantViolation means the code is wrong (a row that was locked is missing, the ledger answered with
 * the wrong kind of outcome); it is never the client's fault, reaches clients only as INTERNAL, and its
 * message starts with "invariant:" so that it can be told apart in logs and found with grep.
 */

/** Thrown by `invariant`: the code broke one of its own rules. */
export class InvariantViolation extends Error {
  override readonly name = 'InvariantViolation';
}

/** Throws an InvariantViolation with `message` unless `condition` holds. */
export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantViolation(`invariant: ${message}`);
}
