/**
 * One process per embedded data directory: the lock refuses a second opener while the first lives, is taken
 * over once its holder is gone (also after SIGKILL), and a ledger that fails its check is not served unless
 * the operator allows it.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openPglite } from '../src/db/client.js';
import { DataDirLockedError, LOCK_FILE, lockDataDir } from '../src/db/data-dir-lock.js';
import { REPO_ROOT, type ServiceProcess, serviceEnv, startServiceProcess } from './support/service-process.js';
import { within } from './support/waits.js';

const START_TIMEOUT_MS = 60_000;
const EXIT_TIMEOUT_MS = 30_000;

let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ledger-lock-'));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('the data directory lock (in-process)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ledger-lock-unit-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a second holder until the first releases', () => {
    const first = lockDataDir(dir);
    expect(() => lockDataDir(dir)).toThrow(DataDirLockedError);
    expect(() => lockDataDir(dir)).toThrow(new RegExp(`held by process ${process.pid}`));
    first.release();
    const second = lockDataDir(dir);
    second.release();
  });

  it('takes over the lock of a process that is gone, and of a pid now used by another process', async () => {
    // A pid that surely existed and has exited (spawnSync reaps it).
    const { pid } = spawnSync(process.execPath, ['-e', '']);
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid, startTicks: '1', bootId: null, host: hostname() }));
    lockDataDir(dir).release();
    // Our own pid, but a start time that is not ours: the lock's owner is gone and the pid was reused.
    await writeFile(
      join(dir, LOCK_FILE),
      JSON.stringify({ pid: process.pid, startTicks: '1', bootId: null, host: hostname() }),
    );
    lockDataDir(dir).release();
  });

  it('of several processes started together on a stale lock, exactly one gets it', async () => {
    const { pid } = spawnSync(process.execPath, ['-e', '']);
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid, startTicks: '1', bootId: null, host: hostname() }));
    // Each contender tries once, reports, and holds what it got until the parent closes its stdin.
    const contender = `
      import { lockDataDir } from './src/db/data-dir-lock.ts';
      let result = 'locked';
      try { lockDataDir(${JSON.stringify(dir)}); } catch (error) { result = error.name; }
      process.stdout.write(result + '\\n');
      process.stdin.resume();
      process.stdin.on('end', () => process.exit(0));`;
    const children = Array.from({ length: 4 }, () =>
      spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', contender], { cwd: REPO_ROOT }),
    );
    try {
      const results = await Promise.all(
        children.map((child) =>
          within(
            new Promise<string>((resolve, reject) => {
              let out = '';
              child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
                out += chunk;
                if (out.includes('\n')) resolve(out.trim());
              });
              child.once('exit', (code) => reject(new Error(`contender exited with ${code} before reporting`)));
            }),
            START_TIMEOUT_MS,
            'a contender reporting',
          ),
        ),
      );
      expect(results.sort()).toEqual(['DataDirLockedError', 'DataDirLockedError', 'DataDirLockedError', 'locked']);
    } finally {
      for (const child of children) child.stdin.end();
      await Promise.all(children.map((child) => (child.exitCode === null ? once(child, 'exit') : undefined)));
    }
  }, 120_000);

  it('never takes over a lock written on another host, nor a file it did not write', async () => {
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, startTicks: '1', bootId: null, host: 'elsewhere' }));
    expect(() => lockDataDir(dir)).toThrow(/another host/);
    await writeFile(join(dir, LOCK_FILE), 'not a lock');
    expect(() => lockDataDir(dir)).toThrow(/not a lock this service wrote/);
    await rm(join(dir, LOCK_FILE));
  });
});

describe('servers and scripts on one embedded DATA_DIR', () => {
  const running: ServiceProcess[] = [];
  const start = (env: Record<string, string> = {}) => {
    const service = startServiceProcess({ DATA_DIR: dataDir, PORT: '0', SHUTDOWN_GRACE_MS: '1000', ...env });
    running.push(service);
    return service;
  };
  /** Listening, and done seeding the demo accounts: main.ts handles SIGTERM from then on. */
  const listening = async (service: ServiceProcess) => {
    const [, url] = await service.waitForStdout(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/, START_TIMEOUT_MS);
    await service.waitForStdout(/Demo accounts[\s\S]*--list-services \S+\n/, START_TIMEOUT_MS);
    return url!;
  };
  const exitCode = async (service: ServiceProcess) => {
    const { child } = service;
    if (child.exitCode !== null) return child.exitCode;
    const [code] = await within(once(child, 'exit'), EXIT_TIMEOUT_MS, 'exit');
    return code as number | null;
  };
  const runScript = (script: string) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', script],
        { cwd: REPO_ROOT, env: serviceEnv({ DATA_DIR: dataDir }), timeout: EXIT_TIMEOUT_MS },
        (error, _stdout, stderr) => resolve({ code: error ? ((error.code as number | undefined) ?? null) : 0, stderr }),
      );
    });

  afterEach(async () => {
    // Killed and gone, so that the next test does not find a live holder of the lock.
    for (const service of running.splice(0)) {
      service.kill();
      if (service.child.exitCode === null && service.child.signalCode === null) await once(service.child, 'exit');
    }
  });

  it('refuses a second server and the scripts while one runs; a SIGKILLed holder is recovered from', async () => {
    const holder = start();
    const url = await listening(holder);

    const second = start();
    expect(await exitCode(second)).toBe(1);
    expect(second.stderr()).toMatch(/data directory .* is in use: held by process \d+/);
    expect(second.stdout()).not.toMatch(/"url":/);

    const check = await runScript('scripts/ledger-check.ts');
    expect(check.code).toBe(2);
    expect(check.stderr).toMatch(/is in use: held by process/);
    const migrate = await runScript('src/db/migrate-cli.ts');
    expect(migrate.code).not.toBe(0);
    expect(migrate.stderr).toMatch(/is in use: held by process/);

    // The first server still serves (the refused ones touched nothing).
    expect((await fetch(`${url}/readyz`)).status).toBe(200);

    holder.child.kill('SIGKILL');
    expect(await exitCode(holder)).toBeNull();
    const successor = start();
    await listening(successor);
    expect(await successor.stop('SIGTERM', EXIT_TIMEOUT_MS)).toBe(0);
    // A clean stop leaves no lock behind, so a script may run now.
    expect((await runScript('scripts/ledger-check.ts')).code).toBe(0);
  }, 300_000);

  it('refuses to serve a ledger that fails its check, unless ALLOW_UNBALANCED_LEDGER=true', async () => {
    const database = await openPglite(dataDir);
    try {
      await database.db.execute(sql`update account_balances set posted_minor = posted_minor + 1`);
    } finally {
      await database.close();
    }

    const refused = start();
    expect(await exitCode(refused)).toBe(1);
    expect(refused.stderr()).toMatch(/ledger check failed at start-up .*balances_equal_their_entries/);
    expect(refused.stderr()).toMatch(/ALLOW_UNBALANCED_LEDGER=true/);
    expect(refused.stdout()).not.toMatch(/"url":/);

    const allowed = start({ ALLOW_UNBALANCED_LEDGER: 'true' });
    await listening(allowed);
    expect(allowed.stdout()).toMatch(/LEDGER CHECK FAILED at start-up/);
    expect(allowed.stdout()).toMatch(/SERVING A LEDGER THAT FAILS ITS CHECK/);
    expect(await allowed.stop('SIGTERM', EXIT_TIMEOUT_MS)).toBe(0);
  }, 300_000);
});
