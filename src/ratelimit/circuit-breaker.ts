/**
 * A circuit breaker with hysteresis, for the limiter's use of Redis. Pure: time comes from an injected
 * clock, and the caller reports each call's outcome.
 *
 *   closed ──(failuresToOpen consecutive failures)──▶ open ──(coolDownMs passed)──▶ half-open
 *   half-open ──(successesToClose consecutive probe successes)──▶ closed
 *   half-open ──(a probe fails)──▶ open (the cool-down starts again)
 *
 * Closed: every call goes through; a success resets the failure count, so a busy Redis that misses a
 * timeout now and then does not switch the service back and forth (the flapping one failure used to cause).
 * Open: no call goes through. Half-open: one probe at a time goes through, the rest are refused.
 */

export type BreakerState = 'closed' | 'open' | 'half-open';
/** What tryAcquire() let through: an ordinary call (closed) or the one probe (half-open). */
export type Permit = 'call' | 'probe';

export interface CircuitBreakerSettings {
  /** Consecutive failures (while closed) that open the circuit. */
  failuresToOpen: number;
  /** How long the circuit stays open before a probe is let through, in ms. */
  coolDownMs: number;
  /** Consecutive successful probes (while half-open) that close the circuit. */
  successesToClose: number;
}

export const DEFAULT_BREAKER_SETTINGS: CircuitBreakerSettings = {
  failuresToOpen: 5,
  coolDownMs: 2_000,
  successesToClose: 2,
};

export interface BreakerStats {
  state: BreakerState;
  /** State changes since start, for a metric. */
  transitions: number;
  /** Times the circuit opened since start (from closed or from half-open). */
  opened: number;
}

export interface CircuitBreakerOptions extends Partial<CircuitBreakerSettings> {
  /** Monotonic milliseconds; defaults to performance.now. */
  now?: () => number;
  /** Called once per state change, after it; `cause` is the failure that opened it, if any. */
  onStateChange?: (from: BreakerState, to: BreakerState, cause?: unknown) => void;
}

export class CircuitBreaker {
  readonly settings: CircuitBreakerSettings;
  private readonly now: () => number;
  private readonly onStateChange: NonNullable<CircuitBreakerOptions['onStateChange']>;
  private current: BreakerState = 'closed';
  private failures = 0;
  private probeSuccesses = 0;
  private probeInFlight = false;
  private openedAt = 0;
  private transitions = 0;
  private opened = 0;

  constructor(options: CircuitBreakerOptions = {}) {
    this.settings = {
      failuresToOpen: Math.max(1, options.failuresToOpen ?? DEFAULT_BREAKER_SETTINGS.failuresToOpen),
      coolDownMs: Math.max(0, options.coolDownMs ?? DEFAULT_BREAKER_SETTINGS.coolDownMs),
      successesToClose: Math.max(1, options.successesToClose ?? DEFAULT_BREAKER_SETTINGS.successesToClose),
    };
    this.now = options.now ?? (() => performance.now());
    this.onStateChange = options.onStateChange ?? (() => {});
  }

  get state(): BreakerState {
    return this.current;
  }

  stats(): BreakerStats {
    return { state: this.current, transitions: this.transitions, opened: this.opened };
  }

  /**
   * Whether a call may go to the dependency now: 'call' (closed), 'probe' (half-open; one at a time), or
   * undefined (refused). Each permit must be followed by exactly one recordSuccess() or recordFailure()
   * with it, when the call is over.
   */
  tryAcquire(): Permit | undefined {
    if (this.current === 'closed') return 'call';
    if (this.current === 'open') {
      if (this.now() - this.openedAt < this.settings.coolDownMs) return undefined;
      this.moveTo('half-open');
    }
    if (this.probeInFlight) return undefined;
    this.probeInFlight = true;
    return 'probe';
  }

  recordSuccess(permit: Permit): void {
    if (permit === 'call') {
      // A call let through while closed may finish after the circuit opened: it says nothing about now.
      if (this.current === 'closed') this.failures = 0;
      return;
    }
    this.probeInFlight = false;
    if (this.current !== 'half-open') return;
    this.probeSuccesses++;
    if (this.probeSuccesses >= this.settings.successesToClose) this.moveTo('closed');
  }

  recordFailure(permit: Permit, cause?: unknown): void {
    if (permit === 'call') {
      if (this.current !== 'closed') return;
      this.failures++;
      if (this.failures >= this.settings.failuresToOpen) this.open(cause);
      return;
    }
    this.probeInFlight = false;
    if (this.current === 'half-open') this.open(cause);
  }

  private open(cause: unknown): void {
    this.openedAt = this.now();
    this.opened++;
    this.moveTo('open', cause);
  }

  private moveTo(next: BreakerState, cause?: unknown): void {
    const previous = this.current;
    this.current = next;
    this.failures = 0;
    this.probeSuccesses = 0;
    this.transitions++;
    this.onStateChange(previous, next, cause);
  }
}
