/**
 * The benchmark: `npm run bench -- --help`. Starts (or targets) a server, seeds funded accounts, then in one
 * run interleaves rounds of AuthorizePayment (uniform, hot payee), grpc.health.v1.Health/Check and the
 * pgbench anchor, runs an open-loop round at half the peak, an overload round and a recovery round, checks
 * the ledger and prints the figures with the ratios issue 9 sets targets for. Progress goes to stderr, so
 * stdout holds only the table (or JSON) and, last, one line of JSON with the ratios.
 */
import { randomBytes } from 'node:crypto';
import { ConnectError } from '@connectrpc/connect';
import { ADMIN_URL } from '../test/support/database.js';
import { readServerProfile, summarizeCpuProfile } from './lib/cpu-profile.js';
import { GrpcH2Client } from './lib/h2-client.js';
import {
  authorizeWorkload,
  healthWorkload,
  hotPayeePair,
  poolRounds,
  type RoundResult,
  type RoundSpec,
  runRound,
  uniformPair,
  type Workload,
} from './lib/load.js';
import {
  type BenchOptions,
  OVERLOAD_FACTOR,
  parseOptions,
  type ScenarioName,
  USAGE,
  UsageError,
} from './lib/options.js';
import { locatePgbench, PgbenchDatabase, type PgbenchRun } from './lib/pgbench.js';
import { computeRatios, isServerFault } from './lib/ratios.js';
import { type BenchReport, type OverloadReport, renderJson, renderRatiosLine, renderTable } from './lib/report.js';
import { REPO_ROOT, startTarget, type Target } from './lib/server.js';
import {
  type BenchAccounts,
  CURRENCY,
  createBenchAccounts,
  grpcClients,
  SEED_BATCH,
  seedBenchAccounts,
} from './lib/setup.js';
import { tallyTotal } from './lib/stats.js';
import { type Verification, verifyLedger } from './lib/verify.js';

const EXIT_USAGE = 2;
const EXIT_INTERRUPTED = 130;
/** The ratios compare scenarios at this many in flight when it was run (the issue's reference point). */
const REFERENCE_CONCURRENCY = 16;
/** After overload the server has recovered when under this share of the normal round's requests failed. */
const RECOVERY_MAX_ERROR_SHARE = 0.01;
const OVERLOAD_MIN_TIMEOUT_MS = 200;

function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

function roundLine(round: RoundResult): string {
  const latency = round.latency
    ? `, p50 ${round.latency.p50Ms.toFixed(1)} ms, p99 ${round.latency.p99Ms.toFixed(1)} ms`
    : '';
  const errors = tallyTotal(round.codes) - (round.codes.OK ?? 0);
  return `  ${round.throughput.toFixed(1)} ops/s${latency}${errors > 0 ? `, ${errors} errors` : ''}`;
}

interface Pgbench {
  database: PgbenchDatabase | undefined;
  skipped: string | undefined;
  runs: number;
}

async function preparePgbench(options: BenchOptions): Promise<Pgbench> {
  if (!options.scenarios.some((scenario) => scenario.startsWith('pgbench'))) {
    return { database: undefined, skipped: 'not among --scenarios', runs: 0 };
  }
  const located = await locatePgbench(REPO_ROOT, options.anchorsDir);
  if ('skipped' in located) {
    progress(`pgbench rows skipped: ${located.skipped}`);
    return { database: undefined, skipped: located.skipped, runs: 0 };
  }
  progress(`loading the pgbench anchor schema from ${located.anchorsDir} into a database of its own…`);
  return { database: await PgbenchDatabase.create(located, ADMIN_URL), skipped: undefined, runs: 0 };
}

async function seed(
  options: BenchOptions,
  target: Target,
  runId: string,
  signal: AbortSignal,
): Promise<{ accounts: BenchAccounts; how: BenchReport['setup']['how'] }> {
  if (target.database) {
    const how = options.accounts > SEED_BATCH ? `ledger core (${SEED_BATCH}) + bulk SQL` : 'ledger core';
    return { accounts: await seedBenchAccounts(target.database.url, { count: options.accounts, runId, signal }), how };
  }
  const clients = grpcClients(target.url, 1, target.apiKey)[0]!;
  const accounts = await createBenchAccounts(clients, {
    count: options.accounts,
    concurrency: options.setupConcurrency,
    runId,
    timeoutMs: options.timeoutMs,
    signal,
  });
  return { accounts, how: 'api' };
}

interface Context {
  options: BenchOptions;
  target: Target;
  client: GrpcH2Client;
  workloads: Record<'uniform' | 'hot-payee' | 'health', Workload>;
  signal: AbortSignal;
  /** Every round run, unpooled, for the ledger check and the fault scan. */
  all: RoundResult[];
}

async function round(context: Context, workload: Workload, concurrency: number, extra: Partial<RoundSpec> = {}) {
  const { options } = context;
  const result = await runRound({
    workload,
    client: context.client,
    concurrency,
    warmupMs: options.warmupMs,
    durationMs: options.durationMs,
    maxRequests: options.maxRequests,
    timeoutMs: options.timeoutMs,
    server: context.target.probe,
    signal: context.signal,
    ...extra,
  });
  context.all.push(result);
  progress(roundLine(result));
  return result;
}

/** The A B A B part: every scenario at every concurrency, `repeat` times, pooled per scenario and concurrency. */
async function interleavedRounds(
  context: Context,
  pgbench: Pgbench,
): Promise<{ pooled: RoundResult[]; pgbenchRuns: PgbenchRun[] }> {
  const { options } = context;
  const byKey = new Map<string, RoundResult[]>();
  const pgbenchByKey = new Map<string, PgbenchRun[]>();
  for (let repetition = 1; repetition <= options.repeat; repetition++) {
    for (const scenario of options.scenarios) {
      for (const concurrency of options.concurrencies) {
        if (context.signal.aborted) break;
        const key = `${scenario}@${concurrency}`;
        const isPgbench = scenario === 'pgbench' || scenario === 'pgbench-hot';
        if (isPgbench && !pgbench.database) continue;
        progress(`[${repetition}/${options.repeat}] ${scenario} @ ${concurrency} in flight…`);
        if (isPgbench) {
          const run = await pgbench.database!.run({
            hot: scenario === 'pgbench-hot',
            clients: concurrency,
            seconds: Math.max(1, Math.ceil(options.durationMs / 1000)),
            reset: pgbench.runs++ > 0,
          });
          progress(`  ${run.tps.toFixed(1)} tps, ${run.failedTransactions} failed`);
          pgbenchByKey.set(key, [...(pgbenchByKey.get(key) ?? []), run]);
          continue;
        }
        const result = await round(context, context.workloads[scenario], concurrency);
        byKey.set(key, [...(byKey.get(key) ?? []), result]);
      }
    }
  }
  const pgbenchRuns = [...pgbenchByKey.values()].map((runs) => {
    const seconds = runs.reduce((sum, run) => sum + run.seconds, 0);
    return {
      ...runs[0]!,
      tps: runs.reduce((sum, run) => sum + run.tps * run.seconds, 0) / seconds,
      latencyAverageMs: runs.every((run) => run.latencyAverageMs !== undefined)
        ? runs.reduce((sum, run) => sum + run.latencyAverageMs! * run.seconds, 0) / seconds
        : undefined,
      transactions: runs.reduce((sum, run) => sum + run.transactions, 0),
      failedTransactions: runs.reduce((sum, run) => sum + run.failedTransactions, 0),
      seconds,
    };
  });
  return { pooled: [...byKey.values()].map(poolRounds), pgbenchRuns };
}

/**
 * pgbench's one-payment transactions at the rate of the service's half-peak round, with as many clients, when
 * the anchor runs at all (pgbench among --scenarios): the p99 that PostgreSQL alone gives at that load on this
 * machine, next to the service's.
 */
async function pgbenchOpenLoop(
  context: Context,
  pgbench: Pgbench,
  clients: number,
  ratePerSecond: number,
): Promise<PgbenchRun | undefined> {
  if (!pgbench.database || !context.options.scenarios.includes('pgbench') || context.signal.aborted) return undefined;
  progress(`pgbench, open loop at ${ratePerSecond.toFixed(0)} payments/s (the same rate)…`);
  const run = await pgbench.database.run({
    hot: false,
    clients,
    seconds: Math.max(1, Math.ceil(context.options.durationMs / 1000)),
    reset: pgbench.runs++ > 0,
    ratePerSecond,
    warmupMs: context.options.warmupMs,
  });
  const ms = (value: number | undefined) => (value === undefined ? '-' : value.toFixed(1));
  progress(`  ${run.tps.toFixed(1)} tps, p50 ${ms(run.latency?.p50Ms)} ms, p99 ${ms(run.latency?.p99Ms)} ms`);
  return run;
}

/**
 * Health/Check at the rate of the half-peak round, when health is among --scenarios: the p99 the RPC stack alone
 * (HTTP/2, Fastify, Connect, GC) gives at that rate, next to the service's and PostgreSQL's.
 */
async function healthOpenLoop(context: Context, concurrency: number, ratePerSecond: number) {
  if (!context.options.scenarios.includes('health') || context.signal.aborted) return undefined;
  progress(`health, open loop at ${ratePerSecond.toFixed(0)} checks/s (the same rate)…`);
  return round(context, context.workloads.health, concurrency, { ratePerSecond });
}

/** 4x the peak's concurrency, then the peak's concurrency again: the server must refuse cleanly and recover. */
async function overloadRounds(context: Context, peak: RoundResult): Promise<OverloadReport> {
  const peakConcurrency = peak.concurrency;
  const concurrency = peakConcurrency * OVERLOAD_FACTOR;
  const timeoutMs = overloadTimeoutMs(peak.latency?.p99Ms, context.options.timeoutMs);
  progress(`overload: uniform @ ${concurrency} in flight, ${timeoutMs} ms deadline…`);
  const overload = await round(context, context.workloads.uniform, concurrency, { timeoutMs });
  progress(`recovery: uniform @ ${peakConcurrency} in flight…`);
  const recovery = await round(context, context.workloads.uniform, peakConcurrency);
  const failedShare = recovery.requests > 0 ? (recovery.requests - (recovery.codes.OK ?? 0)) / recovery.requests : 1;
  return {
    concurrency,
    timeoutMs,
    overload,
    recovery,
    recovered: recovery.succeeded > 0 && failedShare < RECOVERY_MAX_ERROR_SHARE,
    serverFaults: {},
  };
}

/**
 * The overload round's deadline: twice the peak round's p99 (at least OVERLOAD_MIN_TIMEOUT_MS, at most
 * --timeout-ms), so that at 4x the concurrency some requests do run out of time and the server's deadline
 * handling under load is part of what the round shows (and of what the ledger check covers).
 */
function overloadTimeoutMs(peakP99Ms: number | undefined, timeoutMs: number): number {
  if (peakP99Ms === undefined) return timeoutMs;
  return Math.min(timeoutMs, Math.max(OVERLOAD_MIN_TIMEOUT_MS, Math.ceil(2 * peakP99Ms)));
}

function serverFaults(rounds: RoundResult[]): Record<string, number> {
  const faults: Record<string, number> = {};
  for (const result of rounds) {
    for (const [code, count] of Object.entries(result.codes)) {
      if (isServerFault(code)) faults[code] = (faults[code] ?? 0) + count;
    }
  }
  return faults;
}

async function checkLedger(context: Context): Promise<Verification | undefined> {
  const payments = context.all.filter((result) => result.scenario !== 'health');
  if (!context.target.database || payments.length === 0) return undefined;
  progress('checking the ledger…');
  const sum = (pick: (result: RoundResult) => number) => payments.reduce((total, result) => total + pick(result), 0);
  return verifyLedger(context.target.database.url, {
    completed: sum((result) => result.allPhases.completed),
    declined: sum((result) => result.allPhases.declined),
    failed: sum((result) => result.allPhases.failed),
  });
}

function pick<T extends { concurrency: number }>(items: T[], concurrency: number): T | undefined {
  return items.find((item) => item.concurrency === concurrency);
}

async function benchmark(options: BenchOptions, target: Target, signal: AbortSignal): Promise<BenchReport> {
  // Unique per invocation, so that running twice against one --target never replays an earlier key.
  const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  progress(
    `seeding ${options.accounts} funded accounts (+1 merchant)${options.scenarios.some((s) => s.startsWith('pgbench')) ? ' and the pgbench anchor' : ''}…`,
  );
  const setupStart = performance.now();
  const [{ accounts, how }, pgbench] = await Promise.all([
    seed(options, target, runId, signal),
    preparePgbench(options),
  ]);
  const setupSeconds = (performance.now() - setupStart) / 1000;
  const ids = [...accounts.users, accounts.merchant];
  const client = new GrpcH2Client(target.url, options.connections, target.apiKey);
  const context: Context = {
    options,
    target,
    client,
    signal,
    all: [],
    workloads: {
      uniform: authorizeWorkload('uniform', ids, uniformPair(accounts.users.length), `bench-${runId}-u`, CURRENCY),
      'hot-payee': authorizeWorkload(
        'hot-payee',
        ids,
        hotPayeePair(accounts.users.length, ids.length - 1),
        `bench-${runId}-h`,
        CURRENCY,
      ),
      health: healthWorkload(),
    },
  };
  try {
    const { pooled, pgbenchRuns } = await interleavedRounds(context, pgbench);
    const uniforms = pooled.filter((result) => result.scenario === 'uniform');
    const peak = uniforms.reduce<RoundResult | undefined>(
      (best, r) => (!best || r.throughput > best.throughput ? r : best),
      undefined,
    );
    let halfPeak: RoundResult | undefined;
    let halfPeakPgbench: PgbenchRun | undefined;
    let halfPeakHealth: RoundResult | undefined;
    let overload: OverloadReport | undefined;
    if (peak && peak.throughput > 0 && !signal.aborted) {
      const rate = peak.throughput / 2;
      progress(`uniform, open loop at ${rate.toFixed(0)} payments/s (half the peak)…`);
      halfPeak = await round(context, context.workloads.uniform, peak.concurrency, { ratePerSecond: rate });
      halfPeakPgbench = await pgbenchOpenLoop(context, pgbench, peak.concurrency, rate);
      halfPeakHealth = await healthOpenLoop(context, peak.concurrency, rate);
      if (options.overload && !signal.aborted) overload = await overloadRounds(context, peak);
    }
    if (overload) overload.serverFaults = serverFaults(context.all);
    const reference = options.concurrencies.includes(REFERENCE_CONCURRENCY)
      ? REFERENCE_CONCURRENCY
      : options.concurrencies[0]!;
    const byScenario = (scenario: ScenarioName) =>
      pick(
        pooled.filter((r) => r.scenario === scenario),
        reference,
      );
    const peaks = context.all.flatMap((r) => (r.serverPeakRssBytes === undefined ? [] : [r.serverPeakRssBytes]));
    const ratios = computeRatios({
      uniform: byScenario('uniform'),
      hotPayee: byScenario('hot-payee'),
      health: byScenario('health'),
      pgbenchTps: pgbenchRuns.find((run) => run.scenario === 'pgbench' && run.clients === reference)?.tps,
      p99HalfPeakMs: halfPeak?.latency?.p99Ms,
      peakRssBytes: peaks.length > 0 ? Math.max(...peaks) : undefined,
    });
    const verification = await checkLedger(context);
    return {
      options,
      target: { mode: target.mode, url: target.url, serverPid: target.probe?.pid },
      setup: { accounts: options.accounts, seconds: setupSeconds, how },
      rounds: pooled,
      pgbench: pgbenchRuns,
      pgbenchSkipped: pgbench.skipped,
      halfPeak,
      halfPeakPgbench,
      halfPeakHealth,
      overload,
      verification,
      serverLogLines: target.logLines(),
      ratios,
    };
  } finally {
    client.close();
    await pgbench.database?.drop();
  }
}

function exitCode(report: BenchReport, interrupted: boolean): number {
  if (interrupted) return EXIT_INTERRUPTED;
  const faults = serverFaults([
    ...report.rounds,
    ...(report.halfPeak ? [report.halfPeak] : []),
    ...(report.halfPeakHealth ? [report.halfPeakHealth] : []),
    ...(report.overload ? [report.overload.overload, report.overload.recovery] : []),
  ]);
  const problems = [
    ...(report.verification?.problems ?? []),
    ...Object.entries(faults).map(([code, count]) => `${count} answers ${code}`),
    ...(report.overload && !report.overload.recovered ? ['the server did not recover after the overload round'] : []),
  ];
  for (const problem of problems) progress(`FAILED: ${problem}`);
  return problems.length > 0 ? 1 : 0;
}

async function main(): Promise<number> {
  let options: BenchOptions | undefined;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`bench: ${error.message}\nRun with --help for the list of flags.\n`);
    return EXIT_USAGE;
  }
  if (!options) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }

  // First Ctrl-C: stop sending, let in-flight requests finish, stop the server and drop the database.
  const interrupt = new AbortController();
  process.on('SIGINT', () => {
    if (interrupt.signal.aborted) process.exit(EXIT_INTERRUPTED);
    progress('interrupted: finishing in-flight requests and cleaning up (Ctrl-C again to quit at once)');
    interrupt.abort();
  });

  const started = performance.now();
  progress(options.mode === 'target' ? `targeting ${options.targetUrl}` : `starting the server (${options.mode})…`);
  const target = await startTarget(options);
  let report: BenchReport;
  try {
    report = await benchmark(options, target, interrupt.signal);
  } finally {
    if (options.mode !== 'target') progress('stopping the server and dropping its database…');
    await target.stop();
  }
  if (target.cpuProfileDir) {
    const profile = readServerProfile(target.cpuProfileDir);
    report.cpuProfile = { dir: target.cpuProfileDir, summary: profile ? summarizeCpuProfile(profile) : undefined };
  }
  progress(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  process.stdout.write(options.json ? `${renderJson(report)}\n` : renderTable(report));
  process.stdout.write(`${renderRatiosLine(report.ratios)}\n`);
  return exitCode(report, interrupt.signal.aborted);
}

main().then(
  // Explicit exit: client HTTP/2 sessions (and, against --target, the server's keep-alive) would otherwise
  // hold the process open. Output to a pipe or file is written synchronously on Linux, so nothing is lost.
  (code) => process.exit(code),
  (error: unknown) => {
    // A failing request is the server's problem, and its message says which; a stack only helps for our own bugs.
    const expected = error instanceof ConnectError || (error instanceof Error && error.constructor === Error);
    const text = error instanceof Error ? (expected ? error.message : (error.stack ?? error.message)) : String(error);
    process.stderr.write(`bench: failed: ${text}\n`);
    process.exit(1);
  },
);
