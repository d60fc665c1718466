/**
 * A PostgreSQL cluster of the test's own (initdb + pg_ctl from PG_BIN_DIR, default
 * /usr/lib/postgresql/15/bin) on a free port in a temporary directory, for tests that stop, restart or
 * break the database. The shared server on 5432 is never touched. initdb refuses to run as root, so as
 * root the cluster's directory belongs to, and its programs run as, the `postgres` user.
 */
import { execFile } from 'node:child_process';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BIN_DIR = process.env.PG_BIN_DIR ?? '/usr/lib/postgresql/15/bin';
// Generous: initdb and a start on a loaded 2-core machine.
const COMMAND_TIMEOUT_MS = 120_000;

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres (trust authentication). */
  url: string;
  port: number;
  dataDir: string;
  /** pg_ctl start, waiting until it accepts connections. */
  start(): Promise<void>;
  /** pg_ctl stop: `fast` ends sessions and checkpoints; `immediate` is a crash (recovery on next start). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Stops (if running) and deletes the cluster. */
  destroy(): Promise<void>;
}

/** A port the kernel just handed out; free again once returned (a small race, acceptable in tests). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

async function postgresUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const { stdout: uid } = await run('id', ['-u', 'postgres']);
  const { stdout: gid } = await run('id', ['-g', 'postgres']);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

/**
 * initdb's a fresh cluster and starts it. `settings` are extra server settings (`-c name=value`), e.g.
 * { max_connections: '50' }.
 */
export async function startPrivatePostgres(settings: Record<string, string> = {}): Promise<PrivatePostgres> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ledger-private-pg-'));
  const user = await postgresUser();
  if (user) await chown(dataDir, user.uid, user.gid);
  const exec = (program: string, args: string[]) =>
    run(join(BIN_DIR, program), args, { timeout: COMMAND_TIMEOUT_MS, cwd: dataDir, ...(user ?? {}) });
  const port = await freePort();
  const clusterDir = join(dataDir, 'cluster');
  await exec('initdb', ['-D', clusterDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync']);
  const options = [
    `-p ${port}`,
    `-k ${dataDir}`,
    '-c listen_addresses=127.0.0.1',
    ...Object.entries(settings).map(([name, value]) => `-c ${name}=${value}`),
  ].join(' ');
  let running = false;
  const cluster: PrivatePostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dataDir: clusterDir,
    async start() {
      await exec('pg_ctl', [
        '-D',
        clusterDir,
        '-l',
        join(dataDir, 'server.log'),
        '-o',
        options,
        '-w',
        '-t',
        '90',
        'start',
      ]);
      running = true;
    },
    async stop(mode = 'fast') {
      await exec('pg_ctl', ['-D', clusterDir, '-m', mode, '-w', '-t', '90', 'stop']);
      running = false;
    },
    async destroy() {
      if (running) await cluster.stop('immediate').catch(() => {});
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await cluster.start();
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  return cluster;
}
