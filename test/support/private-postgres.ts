/**
 * A PostgreSQL cluster of a test's own (initdb in a temp directory, a free port), for tests that stop or
 * restart the database: the shared server on 5432 is never touched. PostgreSQL refuses to run as root, so
 * when the tests run as root the cluster runs as the `postgres` system user.
 */
import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BIN = process.env.PG_BIN_DIR ?? '/usr/lib/postgresql/15/bin';
const COMMAND_TIMEOUT_MS = 60_000;
const SYSTEM_USER = 'postgres';

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  start(): Promise<void>;
  /** Immediate shutdown: connections are cut at once, as in a crash or a failover. */
  stop(): Promise<void>;
  /** Stops the cluster if running and removes its directory. */
  destroy(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

async function asClusterUser(command: string, args: string[]): Promise<void> {
  const asRoot = userInfo().uid === 0;
  const [file, argv] = asRoot ? ['runuser', ['-u', SYSTEM_USER, '--', command, ...args]] : [command, args];
  await run(file, argv, { timeout: COMMAND_TIMEOUT_MS });
}

export async function createPrivatePostgres(): Promise<PrivatePostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'ledger-test-pg-'));
  const dataDir = join(dir, 'data');
  if (userInfo().uid === 0) {
    const { uid, gid } = await run('id', ['-u', SYSTEM_USER]).then(async ({ stdout }) => ({
      uid: Number(stdout.trim()),
      gid: Number((await run('id', ['-g', SYSTEM_USER])).stdout.trim()),
    }));
    chownSync(dir, uid, gid);
  }
  await asClusterUser(join(BIN, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8']);
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  let running = false;
  const cluster: PrivatePostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async start() {
      await asClusterUser(join(BIN, 'pg_ctl'), ['-D', dataDir, '-o', options, '-w', '-l', join(dir, 'log'), 'start']);
      running = true;
    },
    async stop() {
      await asClusterUser(join(BIN, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
      running = false;
    },
    async destroy() {
      if (running) await cluster.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}
