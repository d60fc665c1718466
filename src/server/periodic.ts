/**
 * Runs background work on an interval: never two runs at once, errors logged (the next run retries), and
 * stop() waits for a run in progress, so shutdown never cuts one in half.
 */
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
  const runNow = () => {
    if (stopped) return Promise.resolve();
    running ??= work()
      .catch((error: unknown) => logger.warn({ err: error, job: name }, `${name} failed; the next run retries`))
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
