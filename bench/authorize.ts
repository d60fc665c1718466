/**
 * Closed-loop load generator for PaymentService.AuthorizePayment over native gRPC: `npm run bench -- --help`.
 * Starts (or targets) a server, creates funded accounts through the API, runs each scenario at each
 * concurrency, checks the ledger afterwards and prints the figures. Progress goes to stderr, so stdout holds
 * only the table or the JSON.
 */
import { randomBytes } from 'node:crypto';
import { ConnectError } from '@connectrpc/connect';
import { type RunResult, runClosedLoop } from './lib/load.js';
import { type BenchOptions, parseOptions, USAGE, UsageError } from './lib/options.js';
import { type BenchReport, renderJson, renderTable } from './lib/report.js';
import { startTarget, type Target } from './lib/server.js';
import { createBenchAccounts, grpcClients } from './lib/setup.js';
import { tallyTotal } from './lib/stats.js';
import { type Verification, verifyLedger } from './lib/verify.js';

const EXIT_USAGE = 2;
const EXIT_INTERRUPTED = 130;

function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

function runLine(run: RunResult): string {
  const latency = run.latency ? `p50 ${run.latency.p50Ms.toFixed(1)} ms, p99 ${run.latency.p99Ms.toFixed(1)} ms` : '';
  const errors = tallyTotal(run.errors);
  return `  ${run.paymentsPerSecond.toFixed(1)} payments/s, ${latency}${errors > 0 ? `, ${errors} errors` : ''}`;
}

async function benchmark(options: BenchOptions, target: Target, signal: AbortSignal): Promise<BenchReport> {
  const clients = grpcClients(target.url, options.connections, target.apiKey);
  // Unique per invocation, so that running twice against one --target never replays an earlier key.
  const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;

  progress(`creating and funding ${options.accounts} accounts (+1 merchant)…`);
  const setupStart = performance.now();
  const accounts = await createBenchAccounts(clients[0]!, {
    count: options.accounts,
    concurrency: options.setupConcurrency,
    runId,
    timeoutMs: options.timeoutMs,
    signal,
  });
  const setupSeconds = (performance.now() - setupStart) / 1000;

  const runs: RunResult[] = [];
  for (const scenario of options.scenarios) {
    for (const concurrency of options.concurrencies) {
      if (signal.aborted) break;
      progress(
        `${scenario} @ ${concurrency} in flight: ${options.warmupMs / 1000} s warm-up + ${options.durationMs / 1000} s…`,
      );
      const run = await runClosedLoop({
        scenario,
        concurrency,
        warmupMs: options.warmupMs,
        durationMs: options.durationMs,
        maxRequests: options.maxRequests,
        timeoutMs: options.timeoutMs,
        keyPrefix: `bench-${runId}-${scenario}-${concurrency}`,
        clients,
        accounts,
        server: target.probe,
        signal,
      });
      runs.push(run);
      progress(runLine(run));
    }
  }

  let verification: Verification | undefined;
  if (target.database && runs.length > 0) {
    progress('checking the ledger…');
    const sum = (pick: (run: RunResult) => number) => runs.reduce((total, run) => total + pick(run), 0);
    verification = await verifyLedger(target.database.url, {
      completed: sum((run) => run.allPhases.completed),
      declined: sum((run) => run.allPhases.declined),
      failed: sum((run) => run.allPhases.failed),
    });
  }

  return {
    options,
    target: { mode: target.mode, url: target.url, serverPid: target.probe?.pid },
    setup: { accounts: options.accounts, seconds: setupSeconds },
    runs,
    verification,
    serverLogLines: target.logLines(),
  };
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

  progress(options.mode === 'target' ? `targeting ${options.targetUrl}` : `starting the server (${options.mode})…`);
  const target = await startTarget(options);
  let report: BenchReport;
  try {
    report = await benchmark(options, target, interrupt.signal);
  } finally {
    if (options.mode !== 'target') progress('stopping the server and dropping its database…');
    await target.stop();
  }
  process.stdout.write(options.json ? `${renderJson(report)}\n` : renderTable(report));
  if (interrupt.signal.aborted) return EXIT_INTERRUPTED;
  return report.verification && report.verification.problems.length > 0 ? 1 : 0;
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
