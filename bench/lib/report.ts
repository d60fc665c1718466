/** Renders the results: a table for people (or the whole report as JSON), then one line of ratios for scripts. */
import type { ProfileLine, ProfileSummary } from './cpu-profile.js';
import type { RoundResult } from './load.js';
import type { BenchOptions } from './options.js';
import type { PgbenchRun } from './pgbench.js';
import { cpuMsPerOp, RATIO_TARGETS, type Ratios, verdict } from './ratios.js';
import { tallyTotal } from './stats.js';
import type { Verification } from './verify.js';

export interface OverloadReport {
  concurrency: number;
  /** The overload round's per-request deadline (the recovery round uses --timeout-ms). */
  timeoutMs: number;
  overload: RoundResult;
  recovery: RoundResult;
  recovered: boolean;
  /** Codes meaning the server failed (INTERNAL, UNKNOWN) seen in any round, with counts. */
  serverFaults: Record<string, number>;
}

export interface BenchReport {
  options: BenchOptions;
  target: { mode: BenchOptions['mode']; url: string; serverPid: number | undefined };
  setup: { accounts: number; seconds: number; how: string };
  /** Pooled over repetitions: one per scenario and concurrency. */
  rounds: RoundResult[];
  pgbench: PgbenchRun[];
  /** Why pgbench rows are missing, when they are. */
  pgbenchSkipped: string | undefined;
  halfPeak: RoundResult | undefined;
  /** pgbench at the half-peak round's rate, with its per-transaction latencies (absent without pgbench). */
  halfPeakPgbench?: PgbenchRun | undefined;
  /** Health/Check at the half-peak round's rate: the RPC stack's own tail (absent without the health scenario). */
  halfPeakHealth?: RoundResult | undefined;
  overload: OverloadReport | undefined;
  verification: Verification | undefined;
  serverLogLines: number;
  ratios: Ratios;
  /** --cpu-prof: the server's profile over the whole run, and the directory it was written to. */
  cpuProfile?: { dir: string; summary: ProfileSummary | undefined };
}

export function renderJson(report: BenchReport): string {
  // Raw latency samples would make the document megabytes long; the summaries are there.
  return JSON.stringify(report, (key, value) => (key === 'samples' ? undefined : value));
}

/** The last line of the output: the ratios alone, on one line. */
export function renderRatiosLine(ratios: Ratios): string {
  return JSON.stringify(ratios);
}

const MB = 1024 * 1024;
const fixed = (value: number | undefined, digits = 1) => (value === undefined ? '-' : value.toFixed(digits));

function roundRow(round: RoundResult, label = round.scenario): string[] {
  const errors = tallyTotal(round.codes) - (round.codes.OK ?? 0);
  const benchMsPerOp = round.succeeded > 0 ? (round.benchCpuSeconds * 1000) / round.succeeded : undefined;
  return [
    label,
    round.loop === 'open' ? `${fixed(round.offeredPerSecond, 0)}/s` : String(round.concurrency),
    round.throughput.toFixed(1),
    String(round.succeeded),
    String(round.declined),
    String(errors),
    fixed(round.latency?.p50Ms),
    fixed(round.latency?.p99Ms),
    fixed(round.latency?.maxMs),
    fixed(cpuMsPerOp(round), 2),
    round.serverPeakRssBytes === undefined ? '-' : `${(round.serverPeakRssBytes / MB).toFixed(0)} MB`,
    fixed(benchMsPerOp, 2),
  ];
}

function pgbenchRow(run: PgbenchRun, label: string = run.scenario): string[] {
  const latency = run.latency
    ? [fixed(run.latency.p50Ms), fixed(run.latency.p99Ms), fixed(run.latency.maxMs)]
    : [`avg ${fixed(run.latencyAverageMs)}`, '-', '-'];
  return [
    label,
    String(run.clients),
    run.tps.toFixed(1),
    String(run.transactions),
    '-',
    String(run.failedTransactions),
  ].concat(latency, ['-', '-', '-']);
}

export function renderTable(report: BenchReport): string {
  const { options, target } = report;
  const lines: string[] = [
    `gRPC (h2c, pre-encoded frames) → ${target.url} [server: ${target.mode === 'child' ? 'child, compiled dist/' : target.mode}${
      target.serverPid ? `, pid ${target.serverPid}` : ''
    }${target.mode === 'target' ? '' : `, rate limiter: ${options.rateLimit}`}]${options.quick ? ' --quick' : ''}`,
    `${report.setup.accounts} funded USD accounts + 1 merchant (seeded through the ${report.setup.how} in ` +
      `${report.setup.seconds.toFixed(1)} s); ${options.repeat} interleaved repetition(s) of ` +
      `${options.warmupMs / 1000} s warm-up + ${options.durationMs / 1000} s per round, pooled below; ` +
      `${options.connections} HTTP/2 connection(s)`,
  ];
  if (target.mode === 'in-process') lines.push('NOTE: in-process server: its CPU and RSS include the load generator.');
  lines.push('');

  const header = ['scenario', 'conc', 'ops/s', 'ok', 'declined', 'errors', 'p50 ms', 'p99 ms', 'max ms'].concat([
    'srv CPU ms/op',
    'srv peak RSS',
    'bench CPU ms/op',
  ]);
  const rows = report.rounds.map((round) => roundRow(round));
  rows.push(...report.pgbench.map((run) => pgbenchRow(run)));
  if (report.halfPeak) rows.push(roundRow(report.halfPeak, 'uniform, open loop at half peak'));
  if (report.halfPeakPgbench) rows.push(pgbenchRow(report.halfPeakPgbench, 'pgbench, open loop at the same rate'));
  if (report.halfPeakHealth) rows.push(roundRow(report.halfPeakHealth, 'health, open loop at the same rate'));
  if (report.overload) {
    rows.push(roundRow(report.overload.overload, `uniform, overload (4x)`));
    rows.push(roundRow(report.overload.recovery, `uniform, recovery`));
  }
  lines.push(...alignColumns([header, ...rows]));

  const notes: string[] = [];
  const allRounds = [
    ...report.rounds,
    ...(report.halfPeak ? [report.halfPeak] : []),
    ...(report.halfPeakHealth ? [report.halfPeakHealth] : []),
  ];
  if (report.overload) allRounds.push(report.overload.overload, report.overload.recovery);
  for (const round of allRounds) {
    for (const [code, count] of Object.entries(round.codes)) {
      if (code !== 'OK')
        notes.push(`${round.scenario} @${round.concurrency}: ${count} × ${code}: ${round.codeSamples[code] ?? ''}`);
    }
    if (round.stoppedBy !== 'duration')
      notes.push(`${round.scenario} @${round.concurrency}: stopped early (${round.stoppedBy})`);
  }
  if (report.pgbenchSkipped) notes.push(`pgbench skipped: ${report.pgbenchSkipped}`);
  notes.push(
    'ops/s: completed payments (declines not counted) or health checks; pgbench: tps, latency average only ' +
      '(its open loop: per-transaction latencies from its log, counted from when each was due)',
  );
  notes.push('srv CPU ms/op: server process user+system CPU over the measured window ÷ successful operations');
  if (report.serverLogLines > 0) notes.push(`the server wrote ${report.serverLogLines} log lines at warn or above`);
  lines.push('', ...notes, '');

  const ratioRows = (Object.keys(RATIO_TARGETS) as (keyof Ratios)[]).map((name) => {
    const { target: goal, atMost, label } = RATIO_TARGETS[name];
    const value = report.ratios[name];
    return [label, value === null ? '-' : String(value), `${atMost ? '≤' : '≥'} ${goal}`, verdict(name, value)];
  });
  lines.push(...alignColumns([['ratio (same run)', 'value', 'target', ''], ...ratioRows]), '');

  if (report.overload) {
    const { overload, recovery, recovered, serverFaults } = report.overload;
    const codes = (round: RoundResult) =>
      Object.entries(round.codes)
        .map(([code, count]) => `${code} ${count}`)
        .join(', ');
    lines.push(
      `overload at ${overload.concurrency} in flight: ${codes(overload) || 'nothing answered'}; ` +
        `${overload.lateAnswers} answered after their ${report.overload.timeoutMs} ms deadline`,
      `recovery at ${recovery.concurrency} in flight: ${codes(recovery) || 'nothing answered'} → ` +
        (recovered ? 'recovered' : 'NOT RECOVERED'),
    );
    const faults = Object.entries(serverFaults);
    lines.push(
      faults.length === 0
        ? 'server faults (INTERNAL/UNKNOWN) in any round: none'
        : `SERVER FAULTS: ${faults.map(([code, count]) => `${count} × ${code}`).join(', ')}`,
    );
  }
  if (report.cpuProfile) lines.push(...profileLines(report.cpuProfile));
  const check = report.verification;
  if (check) {
    lines.push(
      `ledger check: clients saw ${check.clientCompleted} completed / ${check.clientDeclined} declined / ` +
        `${check.clientFailed} failed (warm-up included); database holds ${check.databaseCompleted} completed / ` +
        `${check.databaseDeclined} declined; balances sum to ${check.balanceSumMinor}`,
      check.problems.length === 0 ? 'ledger check: OK' : `ledger check: PROBLEMS: ${check.problems.join('; ')}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function profileLines({ dir, summary }: NonNullable<BenchReport['cpuProfile']>): string[] {
  if (!summary) return [`server CPU profile: none written to ${dir} (did the server exit cleanly?)`, ''];
  const table = (title: string, rows: ProfileLine[]) =>
    alignColumns([
      [title, 'self ms', 'share'],
      ...rows.map((row) => [row.name, row.selfMs.toFixed(0), `${(row.share * 100).toFixed(1)}%`]),
    ]);
  return [
    `server CPU profile over the whole run (setup included): ${summary.busyMs.toFixed(0)} ms busy, ` +
      `${summary.idleMs.toFixed(0)} ms idle; file in ${dir}`,
    ...table('by area (self time)', summary.byArea),
    ...table('by function (self time)', summary.byFunction),
    '',
  ];
}

/** Left-aligns the first column, right-aligns the rest. */
function alignColumns(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) =>
    row
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join('  ')
      .trimEnd(),
  );
}
