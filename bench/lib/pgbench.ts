/**
 * The anchor: pgbench running ../shared/perf-anchors/authorize.sql (one payment per interactive
 * transaction) in a database of its own, the way that directory's README says it was run. Absent anchor
 * files or a missing pgbench skip these rows with a message; they never fail the benchmark.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

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
  scenario: 'pgbench' | 'pgbench-hot';
  clients: number;
  tps: number;
  latencyAverageMs: number | undefined;
  transactions: number;
  failedTransactions: number;
  seconds: number;
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

  /** One pgbench run of authorize.sql, after reset.sql so every run starts from the same state. */
  async run(options: { hot: boolean; clients: number; seconds: number; reset: boolean }): Promise<PgbenchRun> {
    if (options.reset) await this.runFile('reset.sql');
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

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
