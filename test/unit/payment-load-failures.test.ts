/** The load helpers tell a client-side socket failure (retryable) from a code the server sent. */
import { Code, ConnectError } from '@connectrpc/connect';
import { expect, it } from 'vitest';
import { failureOf, RETRY_CODES } from '../support/payment-load.js';

it('counts a client-side EPIPE, which connect-node reports as INTERNAL, as a transport failure', () => {
  const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32, syscall: 'write' });
  const failure = failureOf(new ConnectError('write EPIPE', Code.Internal, undefined, undefined, epipe));
  expect(RETRY_CODES.has(failure.code)).toBe(true);
  expect(failure.message).toContain('EPIPE');
});

it('keeps an INTERNAL the server sent as INTERNAL', () => {
  expect(failureOf(new ConnectError('internal error', Code.Internal))).toEqual({
    code: 'Internal',
    message: 'internal error',
  });
});
