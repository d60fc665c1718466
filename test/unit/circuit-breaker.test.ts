/** The Redis circuit breaker's state machine, on an injected clock. */
import { describe, expect, it } from 'vitest';
import { type BreakerState, CircuitBreaker } from '../../src/ratelimit/circuit-breaker.js';

function breaker(settings = { failuresToOpen: 3, coolDownMs: 1_000, successesToClose: 2 }) {
  const clock = { now: 0 };
  const changes: string[] = [];
  const subject = new CircuitBreaker({
    ...settings,
    now: () => clock.now,
    onStateChange: (from: BreakerState, to: BreakerState) => changes.push(`${from}->${to}`),
  });
  /** One call through the breaker that fails or succeeds; false if it was not let through. */
  const call = (outcome: 'ok' | 'fail'): boolean => {
    const permit = subject.tryAcquire();
    if (permit === undefined) return false;
    if (outcome === 'ok') subject.recordSuccess(permit);
    else subject.recordFailure(permit, new Error('timeout'));
    return true;
  };
  return { subject, clock, changes, call };
}

describe('the circuit breaker', () => {
  it('stays closed while failures are not consecutive', () => {
    const { subject, changes, call } = breaker();
    for (let round = 0; round < 10; round++) {
      call('fail');
      call('fail');
      call('ok');
    }
    expect(subject.state).toBe('closed');
    expect(changes).toEqual([]);
  });

  it('opens after N consecutive failures and lets nothing through during the cool-down', () => {
    const { subject, clock, changes, call } = breaker();
    call('fail');
    call('fail');
    expect(subject.state).toBe('closed');
    call('fail');
    expect(subject.state).toBe('open');
    clock.now = 999;
    expect(call('ok')).toBe(false);
    expect(changes).toEqual(['closed->open']);
  });

  it('after the cool-down admits one probe at a time, and closes after enough successful probes', () => {
    const { subject, clock, changes, call } = breaker();
    for (let index = 0; index < 3; index++) call('fail');
    clock.now = 1_000;
    const probe = subject.tryAcquire();
    expect(probe).toBe('probe');
    expect(subject.state).toBe('half-open');
    expect(subject.tryAcquire()).toBeUndefined();
    subject.recordSuccess(probe!);
    expect(subject.state).toBe('half-open');
    expect(call('ok')).toBe(true);
    expect(subject.state).toBe('closed');
    expect(changes).toEqual(['closed->open', 'open->half-open', 'half-open->closed']);
    expect(subject.stats()).toEqual({ state: 'closed', transitions: 3, opened: 1 });
  });

  it('reopens when a probe fails, with a fresh cool-down', () => {
    const { subject, clock, changes, call } = breaker();
    for (let index = 0; index < 3; index++) call('fail');
    clock.now = 1_500;
    expect(call('fail')).toBe(true);
    expect(subject.state).toBe('open');
    clock.now = 2_499;
    expect(call('ok')).toBe(false);
    clock.now = 2_500;
    expect(call('ok')).toBe(true);
    expect(changes).toEqual(['closed->open', 'open->half-open', 'half-open->open', 'open->half-open']);
    expect(subject.stats().opened).toBe(2);
  });

  it('ignores the late outcome of a call let through before the circuit opened', () => {
    const { subject, clock, call } = breaker({ failuresToOpen: 1, coolDownMs: 1_000, successesToClose: 1 });
    const late = subject.tryAcquire();
    call('fail');
    expect(subject.state).toBe('open');
    subject.recordSuccess(late!);
    expect(subject.state).toBe('open');
    clock.now = 1_000;
    const probe = subject.tryAcquire();
    subject.recordFailure(late!);
    expect(subject.state).toBe('half-open');
    subject.recordSuccess(probe!);
    expect(subject.state).toBe('closed');
  });
});
