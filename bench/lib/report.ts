/** Renders the results: a table for people, or one JSON document for scripts (--json). */
import type { RunResult } from './load.js';
import type { BenchOptions } from './options.js';
import { tallyTotal } from './stats.js';
import type { Verification } from './verify.js';

export interface BenchReport {
  options: BenchOptions;
  target: { mode: BenchOptions['mode']; url: string; serverPid: number | undefined };
  setup: { accounts: number; seconds: number };
  runs: RunResult[];
  verification: Verification | undefined;
  serverLogLines: number;
}

export function renderJson(report: BenchReport): string {
  return JSON.stringify(report, null, 2);
}

const MB = 1024 * 1024;
const ms = (value: number | undefined) => (value === undefined ? '-' : value.toFixed(1));
const percent = (value: number | undefined) => (value === undefined ? '-' : `${value.toFixed(0)}%`);

export function renderTable(report: BenchReport): string {
  const { options, target } = report;
  const inProcess = target.mode === 'in-process';
  const lines: string[] = [];
  lines.push(
    `AuthorizePayment over gRPC (h2c) → ${target.url} [server: ${target.mode}${
      target.serverPid ? `, pid ${target.serverPid}` : ''
    }${target.mode === 'target' ? '' : `, rate limiter: ${options.rateLimit}`}]`,
    `${report.setup.accounts} funded USD accounts + 1 merchant (setup ${report.setup.seconds.toFixed(1)} s); ` +
      `warm-up ${options.warmupMs / 1000} s, measured ${options.durationMs / 1000} s per run, ` +
      `${options.connections} connection(s); latency over all measured requests`,
  );
  if (inProcess) {
    lines.push('NOTE: in-process server: RSS and CPU are the load generator and the server together.');
  }
  lines.push('');

  const header = [
    'scenario',
    'conc',
    'payments/s',
    'completed',
    'declined',
    'errors',
    'p50 ms',
    'p90 ms',
    'p99 ms',
    'max ms',
    inProcess ? 'peak RSS' : 'srv peak RSS',
    inProcess ? 'CPU' : 'srv CPU',
    inProcess ? '' : 'bench CPU',
  ];
  const rows = report.runs.map((run) => [
    run.scenario,
    String(run.concurrency),
    run.paymentsPerSecond.toFixed(1),
    String(run.completed),
    String(run.declined),
    String(tallyTotal(run.errors)),
    ms(run.latency?.p50Ms),
    ms(run.latency?.p90Ms),
    ms(run.latency?.p99Ms),
    ms(run.latency?.maxMs),
    run.serverPeakRssBytes === undefined
      ? '-'
      : `${(run.serverPeakRssBytes / MB).toFixed(0)} MB${run.serverPeakRssPerRun ? '' : '*'}`,
    percent(run.serverCpuPercent),
    inProcess ? '' : percent(run.benchCpuPercent),
  ]);
  lines.push(...alignColumns([header, ...rows]));

  const notes: string[] = [];
  for (const run of report.runs) {
    const label = `${run.scenario} @${run.concurrency}`;
    for (const [key, count] of Object.entries(run.errors)) {
      notes.push(`${label}: ${count} × ${key}: ${run.errorSamples[key] ?? ''}`);
    }
    for (const [reason, count] of Object.entries(run.declineReasons))
      notes.push(`${label}: ${count} declined ${reason}`);
    if (run.stoppedBy !== 'duration') notes.push(`${label}: stopped early (${run.stoppedBy})`);
  }
  if (report.runs.some((run) => run.serverPeakRssBytes !== undefined && !run.serverPeakRssPerRun)) {
    notes.push('* peak RSS since the server started (the per-run reset via /proc/<pid>/clear_refs was refused)');
  }
  if (!inProcess && report.runs.some((run) => run.serverCpuPercent !== undefined)) {
    notes.push('CPU: percent of one core (100% = one core busy) over the measured window');
  }
  if (report.serverLogLines > 0) notes.push(`the server wrote ${report.serverLogLines} log lines at warn or above`);
  if (notes.length > 0) lines.push('', ...notes);

  const check = report.verification;
  if (check) {
    lines.push(
      '',
      `ledger check: clients saw ${check.clientCompleted} completed / ${check.clientDeclined} declined / ` +
        `${check.clientFailed} failed (warm-up included); database holds ${check.databaseCompleted} completed / ` +
        `${check.databaseDeclined} declined; balances sum to ${check.balanceSumMinor}`,
      check.problems.length === 0 ? 'ledger check: OK' : `ledger check: PROBLEMS: ${check.problems.join('; ')}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Left-aligns the first column, right-aligns the numbers. */
function alignColumns(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) =>
    row
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join('  ')
      .trimEnd(),
  );
}
