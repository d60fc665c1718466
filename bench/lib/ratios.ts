/**
 * The figures issue 9 sets targets for, computed from one run's pooled rounds. Pure: unit-tested in
 * test/unit/bench-stats.test.ts. A ratio whose inputs were not measured (scenario skipped, nothing
 * succeeded, no /proc) is null, never 0 or Infinity, so a script can tell "not measured" from "bad".
 */

/** What the ratios need from a pooled round of one scenario at the reference concurrency. */
export interface ScenarioFigures {
  /** Successful operations per second. */
  throughput: number;
  succeeded: number;
  serverCpuSeconds: number | undefined;
}

export interface RatioInputs {
  uniform: ScenarioFigures | undefined;
  hotPayee: ScenarioFigures | undefined;
  health: ScenarioFigures | undefined;
  /** pgbench uniform (hot=0) transactions per second at the same number of clients. */
  pgbenchTps: number | undefined;
  /** p99 of the open-loop round at half the peak payments/s. */
  p99HalfPeakMs: number | undefined;
  peakRssBytes: number | undefined;
}

export interface Ratios {
  authorizeOverHealth: number | null;
  hotOverUniform: number | null;
  serviceOverPgbench: number | null;
  cpuPerPaymentOverHealth: number | null;
  p99HalfPeakMs: number | null;
  peakRssMb: number | null;
}

/** Targets from issue 9, for the table; `atMost` ones are better when lower. */
export const RATIO_TARGETS: Record<keyof Ratios, { target: number; atMost: boolean; label: string }> = {
  authorizeOverHealth: { target: 0.6, atMost: false, label: 'AuthorizePayment ÷ Health/Check throughput' },
  hotOverUniform: { target: 0.9, atMost: false, label: 'hot payee ÷ uniform throughput' },
  serviceOverPgbench: { target: 1.0, atMost: false, label: 'service ÷ pgbench one-payment-per-transaction' },
  cpuPerPaymentOverHealth: { target: 2, atMost: true, label: 'server CPU per payment ÷ per health check' },
  p99HalfPeakMs: { target: 10, atMost: true, label: 'p99 at half of peak throughput (ms)' },
  peakRssMb: { target: 250, atMost: true, label: 'server peak RSS (MB)' },
};

function ratio(numerator: number | undefined, denominator: number | undefined): number | null {
  if (numerator === undefined || denominator === undefined) return null;
  if (!Number.isFinite(numerator) || !Number.isFinite(denominator) || denominator <= 0) return null;
  return round(numerator / denominator);
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** Server CPU milliseconds per successful operation; undefined when either is unknown or nothing succeeded. */
export function cpuMsPerOp(figures: ScenarioFigures | undefined): number | undefined {
  if (!figures || figures.serverCpuSeconds === undefined || figures.succeeded === 0) return undefined;
  return (figures.serverCpuSeconds * 1000) / figures.succeeded;
}

export function computeRatios(inputs: RatioInputs): Ratios {
  const { uniform, hotPayee, health } = inputs;
  return {
    authorizeOverHealth: ratio(uniform?.throughput, health?.throughput),
    hotOverUniform: ratio(hotPayee?.throughput, uniform?.throughput),
    serviceOverPgbench: ratio(uniform?.throughput, inputs.pgbenchTps),
    cpuPerPaymentOverHealth: ratio(cpuMsPerOp(uniform), cpuMsPerOp(health)),
    p99HalfPeakMs: inputs.p99HalfPeakMs === undefined ? null : round(inputs.p99HalfPeakMs),
    peakRssMb: inputs.peakRssBytes === undefined ? null : round(inputs.peakRssBytes / (1024 * 1024)),
  };
}

/** "met", "missed" or "-" (not measured) against the target. */
export function verdict(name: keyof Ratios, value: number | null): string {
  if (value === null) return '-';
  const { target, atMost } = RATIO_TARGETS[name];
  return (atMost ? value <= target : value >= target) ? 'met' : 'missed';
}

/**
 * Codes that mean the server failed rather than refused: INTERNAL and UNKNOWN, including those inferred from
 * a broken answer (INTERNAL/BAD_FRAME, UNKNOWN/HTTP_500, UNKNOWN/NO_GRPC_STATUS). Any of them fails the run.
 */
export function isServerFault(code: string): boolean {
  const base = code.split('/')[0];
  return base === 'INTERNAL' || base === 'UNKNOWN';
}
