/**
 * Runs background work on an interval: never two runs at once, errors logged (the next run retries), and
 * stop() waits for a run in progress, so shutdown never cuts one in half.
 */
import { metrics } from '../observability/metrics.js';

export interface PeriodicLogger {
  warn(details: object, message: string): void;
}

export interface Periodic {
  /** Runs once now (unless a run is in progress) and resolves when it is done. */
  runNow(): Promise<void>;
  stop(): Promise<void>;
}

export function startPeriodic(
  name: string,
  intervalMs: number,
  work: () => Promise<void>,
  logger: PeriodicLogger,
): Periodic {
  let running: Promise<void> | undefined;
  let stopped = false;
  // "hold sweeper" → hold_sweeper: the job label of the run metrics.
  const jobLabel = name.replace(/\W+/g, '_');
  const runNow = () => {
    if (stopped) return Promise.resolve();
    const started = performance.now();
    const done = (ok: boolean) => metrics.jobRun(jobLabel, ok, (performance.now() - started) / 1000);
    running ??= work()
      .then(
        () => done(true),
        (error: unknown) => {
          done(false);
          logger.warn({ err: error, job: name }, `${name} failed; the next run retries`);
        },
      )
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  const timer = intervalMs > 0 ? setInterval(runNow, intervalMs) : undefined;
  timer?.unref();
  return {
    runNow,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
