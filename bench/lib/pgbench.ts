/**
 * The anchor: pgbench running ../shared/perf-anchors/authorize.sql (one payment per interactive
 * transaction) in a database of its own, the way that directory's README says it was run. Absent anchor
 * files or a missing pgbench skip these rows with a message; they never fail the benchmark.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { type LatencySummary, summarizeLatencies } from './stats.js';

const run = promisify(execFile);
const PGBENCH_CANDIDATES = ['/usr/lib/postgresql/15/bin/pgbench'];
/** pgbench's own output is small; this bounds what we buffer if it goes wrong. */
const MAX_OUTPUT_BYTES = 1024 * 1024;
// Exit after the run's own -T plus this much, whatever pgbench is doing.
const PGBENCH_GRACE_MS = 60_000;
const ANCHOR_FILES = ['schema.sql', 'authorize.sql', 'reset.sql'] as const;

export interface PgbenchSetup {
  anchorsDir: string;
  pgbench: string;
}

/**
 * Where the anchor files are: `dir` when given, else `../shared/perf-anchors` from the repository root,
 * else (in a git worktree) the same path next to the main checkout. Returns a reason when unusable.
 */
export async function locatePgbench(
  repoRoot: string,
  dir: string | undefined,
): Promise<PgbenchSetup | { skipped: string }> {
  const candidates = dir ? [resolve(dir)] : anchorCandidates(repoRoot);
  const anchorsDir = candidates.find((candidate) => ANCHOR_FILES.every((file) => existsSync(join(candidate, file))));
  if (!anchorsDir) {
    return { skipped: `no pgbench anchor files (${ANCHOR_FILES.join(', ')}) in ${candidates.join(' or ')}` };
  }
  for (const pgbench of [...PGBENCH_CANDIDATES, 'pgbench']) {
    try {
      await run(pgbench, ['--version'], { maxBuffer: MAX_OUTPUT_BYTES });
      return { anchorsDir, pgbench };
    } catch {
      // not this one
    }
  }
  return { skipped: `pgbench not found (looked at ${PGBENCH_CANDIDATES.join(', ')} and PATH)` };
}

function anchorCandidates(repoRoot: string): string[] {
  const candidates = [resolve(repoRoot, '../shared/perf-anchors')];
  // A worktree's .git is a file "gitdir: <main>/.git/worktrees/<name>"; the main checkout is <main>.
  const gitFile = join(repoRoot, '.git');
  try {
    const match = /^gitdir:\s*(.+)$/m.exec(readFileSync(gitFile, 'utf8'));
    if (match)
      candidates.push(resolve(dirname(resolve(repoRoot, match[1]!.trim(), '../..')), '../shared/perf-anchors'));
  } catch {
    // .git is a directory (a plain clone) or absent: the first candidate is all there is.
  }
  return [...new Set(candidates)];
}

/** Splits a plain SQL file into statements: the anchors have no functions or quoted semicolons. */
export function splitSqlStatements(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('--'))
    .join('\n')
    .split(/;\s*$/m)
    .map((statement) => statement.trim())
    .filter((statement) => statement.length > 0);
}

export interface PgbenchRun {
  /** pgbench-open-loop: uniform at a fixed rate (-R), the anchor for the service's p99 at half peak. */
  scenario: 'pgbench' | 'pgbench-hot' | 'pgbench-open-loop';
  clients: number;
  tps: number;
  latencyAverageMs: number | undefined;
  transactions: number;
  failedTransactions: number;
  seconds: number;
  /** Per-transaction latencies from pgbench's log (-l): open-loop runs only. */
  latency?: LatencySummary;
}

/** One line of pgbench's per-transaction log: the transaction's latency and when it finished. */
export interface PgbenchLogEntry {
  latencyMs: number;
  finishedAtMs: number;
}

/**
 * pgbench's per-transaction log (`-l`): one line per transaction, "client_id transaction_no time script_no
 * time_epoch time_us [schedule_lag]", `time` in microseconds, time_epoch/time_us when it finished. Under
 * --rate pgbench counts `time` from the transaction's scheduled start, as the service's open loop counts from
 * when a request was due (PostgreSQL's pgbench documentation, "Per-Transaction Logging"). Lines whose time is
 * not a number ("skipped", or "failed" after --max-tries) have no latency and are left out; the run's
 * failedTransactions counts the failed ones.
 */
export function parsePgbenchLog(logText: string): PgbenchLogEntry[] {
  const entries: PgbenchLogEntry[] = [];
  for (const line of logText.split('\n')) {
    const fields = line.split(' ').map(Number);
    const [micros, epochSeconds, epochMicros] = [fields[2], fields[4], fields[5]];
    if (fields.length < 6 || ![micros, epochSeconds, epochMicros].every(Number.isFinite)) continue;
    entries.push({ latencyMs: micros! / 1000, finishedAtMs: epochSeconds! * 1000 + epochMicros! / 1000 });
  }
  return entries;
}

/**
 * The latencies of the transactions that finished at least `warmupMs` after the first one did: pgbench has
 * no warm-up of its own, and its first transactions pay for new connections and cold caches.
 */
export function latenciesAfterWarmup(entries: PgbenchLogEntry[], warmupMs: number): Float64Array {
  const firstMs = entries.reduce((first, entry) => Math.min(first, entry.finishedAtMs), Number.POSITIVE_INFINITY);
  return Float64Array.from(
    entries.filter((entry) => entry.finishedAtMs >= firstMs + warmupMs).map((entry) => entry.latencyMs),
  );
}

/** Parses pgbench's summary; undefined fields when a line is missing (a different pgbench version). */
export function parsePgbenchOutput(output: string): {
  tps: number;
  latencyAverageMs?: number;
  transactions: number;
  failed: number;
} {
  const number = (pattern: RegExp) => {
    const match = pattern.exec(output);
    return match ? Number(match[1]) : undefined;
  };
  const tps = number(/^tps = ([\d.]+)/m);
  if (tps === undefined) throw new Error(`no "tps =" line in pgbench's output:\n${output.slice(-500)}`);
  return {
    tps,
    latencyAverageMs: number(/^latency average = ([\d.]+) ms/m),
    transactions: number(/^number of transactions actually processed: (\d+)/m) ?? 0,
    failed: number(/^number of failed transactions: (\d+)/m) ?? 0,
  };
}

/** A database of its own with schema.sql loaded (100,000 funded accounts); dropped by the returned stop(). */
export class PgbenchDatabase {
  private constructor(
    private readonly setup: PgbenchSetup,
    private readonly adminUrl: string,
    private readonly url: URL,
    readonly name: string,
  ) {}

  static async create(setup: PgbenchSetup, adminUrl: string): Promise<PgbenchDatabase> {
    const name = `bench_anchor_${process.pid}_${randomBytes(3).toString('hex')}`;
    await withClient(adminUrl, (client) => client.query(`create database ${name}`));
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    const database = new PgbenchDatabase(setup, adminUrl, url, name);
    try {
      await database.runFile('schema.sql');
    } catch (error) {
      await database.drop();
      throw error;
    }
    return database;
  }

  /** Runs an anchor SQL file statement by statement (VACUUM and CHECKPOINT refuse a multi-statement query). */
  async runFile(file: (typeof ANCHOR_FILES)[number]): Promise<void> {
    const statements = splitSqlStatements(readFileSync(join(this.setup.anchorsDir, file), 'utf8'));
    await withClient(this.url.toString(), async (client) => {
      for (const statement of statements) await client.query(statement);
    });
  }

  /**
   * One pgbench run of authorize.sql, after reset.sql so every run starts from the same state. With
   * `ratePerSecond` (uniform only) it is an open loop at that many transactions per second (-R), with each
   * transaction's latency logged (-l) and summarised.
   */
  async run(options: {
    hot: boolean;
    clients: number;
    seconds: number;
    reset: boolean;
    /** An open loop at this rate; its first `warmupMs` (default 0) are run but not counted. */
    ratePerSecond?: number;
    warmupMs?: number;
  }): Promise<PgbenchRun> {
    if (options.reset) await this.runFile('reset.sql');
    const logDir = options.ratePerSecond === undefined ? undefined : mkdtempSync(join(tmpdir(), 'bench-pgbench-'));
    const warmupMs = options.warmupMs ?? 0;
    try {
      if (logDir === undefined) return await this.runPgbench(options, undefined);
      const run = await this.runPgbench({ ...options, seconds: options.seconds + Math.ceil(warmupMs / 1000) }, logDir);
      const latency = readLatencies(logDir, warmupMs);
      // The measured part, like the service's rounds (failedTransactions still counts the warm-up's too).
      const transactions = latency?.samples ?? 0;
      return {
        ...run,
        scenario: 'pgbench-open-loop',
        latency,
        tps: transactions / options.seconds,
        transactions,
        seconds: options.seconds,
      };
    } finally {
      if (logDir !== undefined) rmSync(logDir, { recursive: true, force: true });
    }
  }

  private async runPgbench(
    options: { hot: boolean; clients: number; seconds: number; ratePerSecond?: number },
    logDir: string | undefined,
  ): Promise<PgbenchRun> {
    const rateArgs =
      logDir === undefined
        ? []
        : ['-R', options.ratePerSecond!.toFixed(1), '-l', `--log-prefix=${join(logDir, 'log')}`];
    const args = [
      ...[
        '-h',
        this.url.hostname,
        '-p',
        this.url.port || '5432',
        '-U',
        decodeURIComponent(this.url.username) || 'postgres',
      ],
      ...['-n', '-M', 'prepared', '-c', String(options.clients), '-j', String(Math.min(2, options.clients))],
      ...['-T', String(options.seconds), '-D', `hot=${options.hot ? 1 : 0}`, '--max-tries=20'],
      ...rateArgs,
      ...['-f', join(this.setup.anchorsDir, 'authorize.sql'), this.name],
    ];
    const env = { ...process.env };
    if (this.url.password) env.PGPASSWORD = decodeURIComponent(this.url.password);
    const { stdout } = await run(this.setup.pgbench, args, {
      env,
      maxBuffer: MAX_OUTPUT_BYTES,
      timeout: options.seconds * 1000 + PGBENCH_GRACE_MS,
    });
    const parsed = parsePgbenchOutput(stdout);
    return {
      scenario: options.hot ? 'pgbench-hot' : 'pgbench',
      clients: options.clients,
      tps: parsed.tps,
      latencyAverageMs: parsed.latencyAverageMs,
      transactions: parsed.transactions,
      failedTransactions: parsed.failed,
      seconds: options.seconds,
    };
  }

  async drop(): Promise<void> {
    await withClient(this.adminUrl, (client) => client.query(`drop database if exists ${this.name} with (force)`));
  }
}

/** The latencies after the warm-up in every log file pgbench wrote into `logDir` (one per thread). */
function readLatencies(logDir: string, warmupMs: number): LatencySummary | undefined {
  const entries = readdirSync(logDir).flatMap((file) => parsePgbenchLog(readFileSync(join(logDir, file), 'utf8')));
  return summarizeLatencies(latenciesAfterWarmup(entries, warmupMs));
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
