/**
 * The operator CLIs (dev:keys, events:tail, ledger:check) given bad arguments or a bad environment print one
 * clear line, never a stack trace or a library's JSON log line with a stack, and exit non-zero: 2 for a
 * usage error (unknown flag, unexpected argument), 1 or 2 for a failure as each script documents.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/service-process.js';

const SPAWN_TIMEOUT_MS = 60_000;
const TEST_TIMEOUT_MS = 90_000;
/** Nothing listens on port 1: connections are refused at once. */
const UNREACHABLE_POSTGRES = 'postgres://ledger@127.0.0.1:1/ledger';
const UNREACHABLE_KAFKA = '127.0.0.1:1';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ledger-cli-errors-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface CliRun {
  code: number | null;
  lines: string[];
}

/** Runs scripts/<name>.ts from the repository root with only PATH, HOME and `env` set (DATA_DIR in `root`). */
function runCli(name: string, args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', `scripts/${name}.ts`, ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? root, DATA_DIR: join(root, 'data'), ...env },
      timeout: SPAWN_TIMEOUT_MS,
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, lines: output.split('\n').filter((line) => line.trim() !== '') }));
  });
}

/** The run failed with `code` and printed exactly one line matching `message`, with no stack anywhere. */
function expectOneLineFailure(run: CliRun, code: number, message: RegExp): void {
  const text = run.lines.join('\n');
  expect(text).not.toMatch(/^\s+at /m);
  expect(text).not.toContain('"stack"');
  expect(run.lines, text).toHaveLength(1);
  expect(run.lines[0]).toMatch(message);
  expect(run.code, text).toBe(code);
}

describe('dev:keys', () => {
  it(
    'a key directory that cannot be created names the path and the reason',
    async () => {
      const run = await runCli('dev-keys', ['/dev/null/x']);
      expectOneLineFailure(run, 1, /^dev:keys: .*\/dev\/null\/x.*ENOTDIR/);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a key directory that is a file names the path and the reason',
    async () => {
      const file = join(root, 'a-file');
      await writeFile(file, 'not a directory');
      const run = await runCli('dev-keys', [file]);
      expectOneLineFailure(run, 1, new RegExp(`^dev:keys: .*${file}.*(ENOTDIR|EEXIST)`));
    },
    TEST_TIMEOUT_MS,
  );

  it.each([
    ['not JSON', 'not json'],
    ['not a key pair', '{}'],
  ])(
    'a key file that is %s names the file',
    async (_kind, content) => {
      const dir = join(root, `corrupt-${content.length}`);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'dev-jwt-key.json'), content);
      const run = await runCli('dev-keys', [dir, 'alice']);
      expectOneLineFailure(run, 1, new RegExp(`^dev:keys: .*${join(dir, 'dev-jwt-key.json')}`));
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'refuses an unknown flag with a usage line and writes nothing',
    async () => {
      const dir = join(root, 'keys-unused');
      const run = await runCli('dev-keys', [dir, '--bogus']);
      expectOneLineFailure(run, 2, /--bogus.*usage: npm run -s dev:keys --/);
      expect(existsSync(dir)).toBe(false);
    },
    TEST_TIMEOUT_MS,
  );
});

describe('ledger:check', () => {
  it.each([['--bogus'], ['extra']])(
    'refuses the argument %s with a usage line',
    async (arg) => {
      const run = await runCli('ledger-check', [arg], { DATABASE_URL: UNREACHABLE_POSTGRES });
      expectOneLineFailure(run, 2, new RegExp(`${arg}.*usage: npm run -s ledger:check`));
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'an unreachable DATABASE_URL is one line naming the variable',
    async () => {
      const run = await runCli('ledger-check', [], { DATABASE_URL: UNREACHABLE_POSTGRES });
      expectOneLineFailure(run, 2, /^ledger check could not run: .*DATABASE_URL .*refused/);
    },
    TEST_TIMEOUT_MS,
  );
});

describe('events:tail', () => {
  it(
    'an unreachable broker is one line, with no kafkajs log lines',
    async () => {
      const run = await runCli('events-tail', [], { KAFKA_BROKERS: UNREACHABLE_KAFKA });
      expectOneLineFailure(run, 1, /^events:tail failed: .*ECONNREFUSED/);
    },
    TEST_TIMEOUT_MS,
  );

  it.each([
    [['--bogus'], /--bogus/],
    [['extra'], /extra/],
    [['--limit', 'x'], /--limit/],
  ])(
    'refuses %j with a usage line',
    async (args, message) => {
      const run = await runCli('events-tail', args, { KAFKA_BROKERS: UNREACHABLE_KAFKA });
      expectOneLineFailure(run, 2, new RegExp(`${message.source}.*usage: npm run -s events:tail --`));
    },
    TEST_TIMEOUT_MS,
  );
});
