/** Latency percentiles over a run's recorded samples, and small tallies. */

export interface LatencySummary {
  samples: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

/**
 * Exact percentiles by sorting (nearest-rank): with at most a few million samples a sort takes well under a
 * second, and no histogram bucketing error creeps into the tail. Sorts `samples` in place.
 */
export function summarizeLatencies(samples: Float64Array): LatencySummary | undefined {
  const count = samples.length;
  if (count === 0) return undefined;
  samples.sort();
  let sum = 0;
  for (let i = 0; i < count; i++) sum += samples[i]!;
  const at = (percentile: number) => samples[Math.max(0, Math.ceil((percentile / 100) * count) - 1)]!;
  return {
    samples: count,
    meanMs: sum / count,
    p50Ms: at(50),
    p90Ms: at(90),
    p99Ms: at(99),
    maxMs: samples[count - 1]!,
  };
}

export type Tally = Record<string, number>;

export function bump(tally: Tally, key: string): void {
  tally[key] = (tally[key] ?? 0) + 1;
}

export function tallyTotal(tally: Tally): number {
  let total = 0;
  for (const value of Object.values(tally)) total += value;
  return total;
}
