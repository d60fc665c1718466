/**
 * The closed loop: `concurrency` workers, each sending one AuthorizePayment and sending the next as soon as
 * the answer arrives. Load first runs unmeasured for the warm-up (JIT, connection pools, caches), then the
 * same workers carry on into the measured window without a pause, so the measured part starts warm.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import { ErrorDetailSchema } from '../../gen/payment/v1/errors_pb.js';
import { DeclineReason, PaymentStatus } from '../../gen/payment/v1/payment_pb.js';
import type { ScenarioName } from './options.js';
import { ownCpuSeconds, type ProcessProbe } from './process-stats.js';
import { type BenchAccounts, CURRENCY, type LedgerClients } from './setup.js';
import { bump, type LatencySummary, summarizeLatencies, type Tally } from './stats.js';

// Amounts from $0.01 to $100.00: varied enough to be realistic, small against the $1,000,000 deposits.
const MAX_AMOUNT_MINOR = 10_000;

export interface RunSpec {
  scenario: ScenarioName;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  maxRequests: number;
  timeoutMs: number;
  /** Makes idempotency keys unique across runs and benchmark invocations. */
  keyPrefix: string;
  clients: LedgerClients[];
  accounts: BenchAccounts;
  server: ProcessProbe | undefined;
  signal: AbortSignal;
}

export interface RunResult {
  scenario: ScenarioName;
  concurrency: number;
  measuredSeconds: number;
  /** Requests started in the measured window; every one is counted below exactly once. */
  requests: number;
  completed: number;
  declined: number;
  declineReasons: Tally;
  /** Keyed by gRPC code, plus the service's ErrorDetail reason when it sent one. */
  errors: Tally;
  /** The first message seen for each error key, to tell what went wrong without a debugger. */
  errorSamples: Record<string, string>;
  paymentsPerSecond: number;
  /** Over every measured request, failed ones included: that is what a caller waits. */
  latency: LatencySummary | undefined;
  stoppedBy: 'duration' | 'max-requests' | 'interrupted';
  serverPeakRssBytes: number | undefined;
  /** False when the peak could not be reset for this run, so it is the peak since the server started. */
  serverPeakRssPerRun: boolean;
  /** Percent of one core; 200 is both cores of a two-core machine. */
  serverCpuPercent: number | undefined;
  benchCpuPercent: number;
  /** Warm-up and measured window together; compared with what the database holds at the end. */
  allPhases: { completed: number; declined: number; failed: number };
}

type PickPair = () => [payer: string, payee: string];

function pairPicker(scenario: ScenarioName, accounts: BenchAccounts): PickPair {
  const { users, merchant } = accounts;
  const randomIndex = (below: number) => Math.floor(Math.random() * below);
  switch (scenario) {
    case 'uniform':
      return () => {
        const payer = randomIndex(users.length);
        // Drawing from the other n-1 and skipping the payer's slot keeps the payee uniform and distinct.
        let payee = randomIndex(users.length - 1);
        if (payee >= payer) payee++;
        return [users[payer]!, users[payee]!];
      };
    case 'hot-payee':
      return () => [users[randomIndex(users.length)]!, merchant];
  }
}

function errorKey(error: unknown): { key: string; message: string } {
  const connectError = ConnectError.from(error);
  // Code names as gRPC spells them (DEADLINE_EXCEEDED), which is what server logs and docs use.
  const code = Code[connectError.code].replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
  const reason = connectError.findDetails(ErrorDetailSchema)[0]?.reason;
  return { key: reason ? `${code}/${reason}` : code, message: connectError.rawMessage };
}

export async function runClosedLoop(spec: RunSpec): Promise<RunResult> {
  const pick = pairPicker(spec.scenario, spec.accounts);
  const latencies = new Float64Array(spec.maxRequests);
  const result: RunResult = {
    scenario: spec.scenario,
    concurrency: spec.concurrency,
    measuredSeconds: 0,
    requests: 0,
    completed: 0,
    declined: 0,
    declineReasons: {},
    errors: {},
    errorSamples: {},
    paymentsPerSecond: 0,
    latency: undefined,
    stoppedBy: 'duration',
    serverPeakRssBytes: undefined,
    serverPeakRssPerRun: spec.server?.resetPeak() ?? false,
    serverCpuPercent: undefined,
    benchCpuPercent: 0,
    allPhases: { completed: 0, declined: 0, failed: 0 },
  };
  let recorded = 0;
  let sequence = 0;

  const startedAt = performance.now();
  const warmEndAt = startedAt + spec.warmupMs;
  const endAt = warmEndAt + spec.durationMs;

  // CPU counters are read when the measured window opens, from a timer: close enough at 10 ms resolution.
  let cpuAtWarmEnd = { server: spec.server?.cpuSeconds(), bench: ownCpuSeconds() };
  const cpuTimer = setTimeout(() => {
    cpuAtWarmEnd = { server: spec.server?.cpuSeconds(), bench: ownCpuSeconds() };
  }, spec.warmupMs);

  const worker = async (clients: LedgerClients) => {
    // Bounded three ways: the clock, the request budget (the latency buffer's size) and Ctrl-C.
    for (;;) {
      if (spec.signal.aborted) {
        result.stoppedBy = 'interrupted';
        return;
      }
      const requestStart = performance.now();
      if (requestStart >= endAt) return;
      const measured = requestStart >= warmEndAt;
      if (measured) {
        if (result.requests >= spec.maxRequests) {
          result.stoppedBy = 'max-requests';
          return;
        }
        result.requests++;
      }
      const [payerAccountId, payeeAccountId] = pick();
      let status: PaymentStatus | undefined;
      let declineReason = DeclineReason.UNSPECIFIED;
      let failure: { key: string; message: string } | undefined;
      try {
        const { payment } = await clients.payments.authorizePayment(
          {
            idempotencyKey: `${spec.keyPrefix}-${sequence++}`,
            payerAccountId,
            payeeAccountId,
            amount: { amountMinor: BigInt(1 + Math.floor(Math.random() * MAX_AMOUNT_MINOR)), currency: CURRENCY },
          },
          // Deliberately not the abort signal: on Ctrl-C in-flight requests finish (bounded by the deadline).
          { timeoutMs: spec.timeoutMs },
        );
        status = payment?.status;
        declineReason = payment?.declineReason ?? DeclineReason.UNSPECIFIED;
      } catch (error) {
        failure = errorKey(error);
      }
      const elapsedMs = performance.now() - requestStart;

      const completed = status === PaymentStatus.COMPLETED;
      const declined = status === PaymentStatus.DECLINED;
      if (!failure && !completed && !declined) {
        failure = { key: 'UNEXPECTED_STATUS', message: `payment status ${status === undefined ? 'missing' : status}` };
      }
      if (completed) result.allPhases.completed++;
      else if (declined) result.allPhases.declined++;
      else result.allPhases.failed++;
      if (!measured) continue;

      latencies[recorded++] = elapsedMs;
      if (completed) result.completed++;
      else if (declined) {
        result.declined++;
        bump(result.declineReasons, DeclineReason[declineReason] ?? String(declineReason));
      } else if (failure) {
        bump(result.errors, failure.key);
        result.errorSamples[failure.key] ??= failure.message;
      }
    }
  };

  await Promise.all(
    Array.from({ length: spec.concurrency }, (_, index) => worker(spec.clients[index % spec.clients.length]!)),
  );
  clearTimeout(cpuTimer);
  const finishedAt = performance.now();

  result.measuredSeconds = Math.max(0, finishedAt - warmEndAt) / 1000;
  if (result.measuredSeconds > 0) {
    result.paymentsPerSecond = result.completed / result.measuredSeconds;
    const serverCpuNow = spec.server?.cpuSeconds();
    if (serverCpuNow !== undefined && cpuAtWarmEnd.server !== undefined) {
      result.serverCpuPercent = ((serverCpuNow - cpuAtWarmEnd.server) / result.measuredSeconds) * 100;
    }
    result.benchCpuPercent = ((ownCpuSeconds() - cpuAtWarmEnd.bench) / result.measuredSeconds) * 100;
  }
  result.serverPeakRssBytes = spec.server?.peakRssBytes();
  result.latency = summarizeLatencies(latencies.subarray(0, recorded));
  return result;
}
