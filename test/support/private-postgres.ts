/**
 * A PostgreSQL cluster of the test's own: initdb into a temporary directory, started with pg_ctl on a free
 * port, so that a test may stop, restart or crash it without touching the shared server on 127.0.0.1:5432.
 *
 *   const cluster = await startPrivatePostgres();
 *   const url = await cluster.createDatabase('ledger');
 *   await cluster.restart('immediate');    // crash-like: no checkpoint, recovery from WAL on start
 *   await cluster.destroy();               // stop and delete the directory (safe to call twice)
 *
 * PostgreSQL refuses to run as root; when the tests run as root, the cluster runs as the `postgres` user.
 * Every step is bounded by pg_ctl's own --timeout and a process timeout.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export const PG_BIN = process.env.PG_BIN_DIR ?? '/usr/lib/postgresql/15/bin';
// Generous: initdb and a start on a loaded 2-core machine.
const STEP_TIMEOUT_SECONDS = 90;

export type StopMode = 'smart' | 'fast' | 'immediate';

export interface PrivatePostgres {
  port: number;
  /** postgres://postgres@127.0.0.1:PORT/postgres (trust authentication). */
  url: string;
  /** The cluster's data directory. */
  dataDir: string;
  /** Creates a database and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** pg_ctl stop: `fast` ends sessions and checkpoints; `immediate` is a crash (recovery on next start). */
  stop(mode?: StopMode): Promise<void>;
  /** pg_ctl start, waiting until it accepts connections. */
  start(): Promise<void>;
  /** stop(mode) then start(): 'immediate' is a crash as far as the database is concerned. */
  restart(mode: StopMode): Promise<void>;
  /** Stops the cluster (immediately) and removes its directory; never throws. */
  destroy(): Promise<void>;
}

/** When running as root: the uid/gid of the `postgres` user, which PostgreSQL needs. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** A port nobody listens on right now (the kernel's pick for port 0, released again). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** initdb's a fresh cluster and starts it; `settings` are extra server settings (`-c name=value`). */
export async function startPrivatePostgres(settings: Record<string, string> = {}): Promise<PrivatePostgres> {
  const user = runAs();
  const root = mkdtempSync(join(tmpdir(), 'ledger-private-pg-'));
  const dataDir = join(root, 'data');
  if (user) chownSync(root, user.uid, user.gid);
  const run = (program: string, args: string[]) =>
    new Promise<string>((resolve, reject) => {
      execFile(
        join(PG_BIN, program),
        args,
        { ...user, cwd: root, timeout: (STEP_TIMEOUT_SECONDS + 5) * 1000, encoding: 'utf8' },
        (error, stdout, stderr) => {
          if (error) reject(new Error(`${program} ${args.join(' ')} failed: ${error.message}\n${stdout}${stderr}`));
          else resolve(stdout);
        },
      );
    });

  await run('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  // Small and quiet: the machine is shared. Unix sockets go to our directory, not /var/run/postgresql.
  const options = [
    `-p ${port}`,
    `-k ${root}`,
    '-c listen_addresses=127.0.0.1',
    ...Object.entries({ max_connections: '60', shared_buffers: '16MB', ...settings }).map(
      ([name, value]) => `-c ${name}=${value}`,
    ),
  ].join(' ');
  const logFile = join(root, 'postgres.log');
  const cluster: PrivatePostgres = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dataDir,
    async createDatabase(name) {
      const client = new pg.Client({ connectionString: cluster.url });
      await client.connect();
      try {
        await client.query(`create database ${name}`);
      } finally {
        await client.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    async start() {
      await run('pg_ctl', [
        'start',
        '-D',
        dataDir,
        '-w',
        '-t',
        String(STEP_TIMEOUT_SECONDS),
        '-l',
        logFile,
        '-o',
        options,
      ]);
    },
    async stop(mode = 'fast') {
      await run('pg_ctl', ['stop', '-D', dataDir, '-w', '-t', String(STEP_TIMEOUT_SECONDS), '-m', mode]);
    },
    async restart(mode) {
      await cluster.stop(mode);
      await cluster.start();
    },
    async destroy() {
      process.off('exit', stopAtExit);
      await cluster.stop('immediate').catch(() => {});
      rmSync(root, { recursive: true, force: true });
    },
  };
  // pg_ctl detaches the server: if the test process ends without destroy() (a crash, a timed-out worker),
  // stop the cluster on the way out rather than leave it running on the shared machine.
  const stopAtExit = () => {
    try {
      execFileSync(join(PG_BIN, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '10'], {
        ...user,
        stdio: 'ignore',
        timeout: 15_000,
      });
    } catch {
      // Already stopped.
    }
    rmSync(root, { recursive: true, force: true });
  };
  process.once('exit', stopAtExit);
  try {
    await cluster.start();
  } catch (error) {
    process.off('exit', stopAtExit);
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
  return cluster;
}
