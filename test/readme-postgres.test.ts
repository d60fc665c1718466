/**
 * The "Against a real PostgreSQL" path of docs/configuration.md, run as written: the commands of its first block in one
 * bash, then the curl of the second against the started server. The only substitutions are what a test
 * must not share: the database name, the key directory and the port. Then SIGTERM to `npm start` stops the
 * server itself (no orphan), and bad settings are reported all at once, each naming its variable.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { ADMIN_URL } from './support/database.js';
import { waitUntil } from './support/kafka.js';
import { REPO_ROOT, serviceEnv } from './support/service-process.js';
import { within } from './support/waits.js';

const run = promisify(execFile);
const readme = readFileSync(join(REPO_ROOT, 'docs/configuration.md'), 'utf8');

/** The shell blocks of the docs/configuration.md section `heading`, in order. */
function shellBlocks(heading: string): string[] {
  const start = readme.indexOf(heading);
  const end = readme.indexOf('\n## ', start + heading.length);
  const section = readme.slice(start, end === -1 ? undefined : end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1]!);
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const database = `ledger_readme_${randomBytes(4).toString('hex')}`;
const keyDir = mkdtempSync(join(tmpdir(), 'ledger-readme-'));
afterAll(async () => {
  rmSync(keyDir, { recursive: true, force: true });
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`drop database if exists ${database} with (force)`);
  await admin.end();
});

describe('README: against a real PostgreSQL', () => {
  it('runs as written, ends with a successful call, and SIGTERM to npm start stops the server', async () => {
    const [setup, call] = shellBlocks('## Against a real PostgreSQL');
    expect(setup).toContain('npm start');
    const port = await freePort();
    const localize = (text: string) =>
      text
        .replaceAll('/ledger\n', `/${database}\n`)
        .replaceAll(' ledger\n', ` ${database}\n`)
        .replaceAll('.data/dev-keys', keyDir)
        .replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`);
    // Everything before `npm start`, then the environment it leaves, for starting the server ourselves.
    const envFile = join(keyDir, 'env');
    const before = localize(setup!.slice(0, setup!.indexOf('npm start')));
    writeFileSync(join(keyDir, 'setup.sh'), `set -euo pipefail\n${before}\nenv -0 > '${envFile}'\n`);
    const env = serviceEnv({ PORT: String(port) });
    await run('bash', [join(keyDir, 'setup.sh')], { cwd: REPO_ROOT, env, timeout: 180_000 });
    const setUpEnv = Object.fromEntries(
      readFileSync(envFile, 'utf8')
        .split('\0')
        .filter((entry) => entry.includes('='))
        .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
    );
    expect(setUpEnv.KEY).toMatch(/^plk_/);

    const npm = spawn('npm', ['start'], { cwd: REPO_ROOT, env: setUpEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    npm.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    npm.stderr.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
    try {
      await waitUntil(
        () => /payment ledger listening/.test(out) || npm.exitCode !== null,
        'the server to listen',
        120_000,
      );
      expect(out).toMatch(/payment ledger listening/);
      const serverPid = Number(/"pid":(\d+)/.exec(out)?.[1]);

      const { stdout } = await run('bash', ['-c', localize(call!)], { env: setUpEnv, timeout: 30_000 });
      expect(JSON.parse(stdout)).toMatchObject({ account: { ownerRef: 'user:alice', currency: 'USD' } });

      npm.kill('SIGTERM');
      await within(exited, 30_000, 'npm start to exit after SIGTERM');
      const alive = () => {
        try {
          process.kill(serverPid, 0);
          return true;
        } catch {
          return false;
        }
      };
      await waitUntil(() => !alive(), `server process ${serverPid} to exit`, 15_000);
      expect(out).toContain('shut down cleanly');
    } finally {
      if (npm.exitCode === null) npm.kill('SIGKILL');
    }
  });
});

describe('bad settings', () => {
  const start = (env: Record<string, string>) =>
    run(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: REPO_ROOT,
      env: serviceEnv(env),
      timeout: 60_000,
    }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );

  it('are all reported at once, each naming its variable', async () => {
    const { code, stderr } = await start({
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/postgres',
      PORT: 'eighty',
      DB_POOL_SIZE: '0',
      LOG_LEVEL: 'chatty',
      AUTH_JWKS_FILE: join(REPO_ROOT, 'package.json'),
    });
    expect(code).toBe(2);
    for (const variable of [
      'PORT',
      'DB_POOL_SIZE',
      'LOG_LEVEL',
      'AUTH_JWKS_FILE',
      'AUTH_JWT_ISSUER',
      'AUTH_JWT_AUDIENCE',
    ]) {
      expect(stderr).toContain(variable);
    }
    expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('a refused database connection makes db:migrate name DATABASE_URL, without a stack trace', async () => {
    const refused = `postgres://postgres@127.0.0.1:${await freePort()}/ledger`;
    const migrate = await run(process.execPath, ['--import', 'tsx', 'src/db/migrate-cli.ts'], {
      cwd: REPO_ROOT,
      env: serviceEnv({ DATABASE_URL: refused }),
      timeout: 60_000,
    }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(migrate.code).toBe(2);
    expect(migrate.stderr).toContain('DATABASE_URL');
    expect(migrate.stderr).toContain('refused');
    expect(migrate.stderr).not.toMatch(/\n\s+at /);
  });
});
