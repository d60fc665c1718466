/**
 * The publisher's waiting primitives: exponential backoff with jitter, an abortable sleep, and a wake-up that
 * is never lost. Generic (no outbox knowledge), so they are tested and read on their own.
 */

/** Exponential backoff with "equal jitter": a delay in [d/2, d] where d = min(max, base · 2^(failures-1)). */
export function backoffMs(failures: number, baseMs: number, maxMs: number, random: () => number = Math.random) {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(failures - 1, 0), 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Resolves after `ms`, or as soon as `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Wake-ups that are never lost: a wake() while nobody waits makes the next wait() return at once. */
export class Waker {
  private pending = false;
  private resolveWait: (() => void) | undefined;

  wake(): void {
    if (this.resolveWait) this.resolveWait();
    else this.pending = true;
  }

  async wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.pending || signal.aborted) {
      this.pending = false;
      return;
    }
    const wakeUp = new AbortController();
    this.resolveWait = () => wakeUp.abort();
    await sleep(ms, AbortSignal.any([signal, wakeUp.signal]));
    this.resolveWait = undefined;
    this.pending = false;
  }
}
