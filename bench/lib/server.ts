/**
 * The server under test: a child process (default, so that the load generator's event loop does not
 * compete with the server's), the service started in this process, or a server that is already running.
 * Local servers get a fresh PostgreSQL database, dropped when the benchmark ends.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import type { BenchOptions } from './options.js';
import { type ProcessProbe, probeProcess } from './process-stats.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const READY_TIMEOUT_MS = 30_000;
const READY_POLL_MS = 100;
const READY_REQUEST_TIMEOUT_MS = 2_000;
// The server's own shutdown grace is 10 s (SHUTDOWN_GRACE_MS); past this it is killed outright.
const STOP_TIMEOUT_MS = 15_000;
// Server log lines echoed to stderr; beyond this they are only counted, so an error storm stays readable.
const MAX_ECHOED_LOG_LINES = 40;

/**
 * The node flags the server is deployed with: those of `npm run start:dist` (the same as the Dockerfile's CMD
 * and `npm start`, checked by test/unit/node-flags.test.ts), so the child runs as the image does.
 */
export function deployedNodeFlags(): string[] {
  const scripts = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>;
  const words = scripts['start:dist']?.split(/\s+/) ?? [];
  const start = words.indexOf('node');
  const end = words.indexOf('dist/src/main.js');
  if (start < 0 || end < start) throw new Error('package.json start:dist is not "exec node [flags] dist/src/main.js"');
  return words.slice(start + 1, end);
}

export interface Target {
  url: string;
  mode: BenchOptions['mode'];
  /** The server's process, when it runs on this machine; in-process it is this process. */
  probe: ProcessProbe | undefined;
  /** Present for servers started here: lets the benchmark check what the ledger recorded. */
  database: TestDatabase | undefined;
  /** Server log lines seen (child mode), including those not echoed. */
  logLines(): number;
  /** The backend API key the load sends (every scope); for --target, from BENCH_API_KEY. */
  apiKey: string | undefined;
  /** Where the child server writes its V8 CPU profile on exit (--cpu-prof). */
  cpuProfileDir?: string;
  stop(): Promise<void>;
}

export async function startTarget(options: BenchOptions): Promise<Target> {
  if (options.mode === 'target') {
    return {
      url: options.targetUrl!,
      mode: 'target',
      probe: undefined,
      database: undefined,
      logLines: () => 0,
      apiKey: process.env.BENCH_API_KEY,
      stop: async () => {},
    };
  }
  const database = await createTestDatabase();
  try {
    const serverEnv = { ...rateLimitEnv(options.rateLimit), ...AUTH_ENV };
    const target =
      options.mode === 'child'
        ? await startChild(database, serverEnv, options.cpuProfile)
        : await startInProcess(database, serverEnv);
    return { ...target, apiKey: await createBackendKey(database.url) };
  } catch (error) {
    await database.drop();
    throw error;
  }
}

/**
 * Outside the embedded mode the server needs token keys to start; the load itself authenticates as a backend
 * with an API key, so a throwaway secret is enough.
 */
const AUTH_ENV = {
  AUTH_JWT_HS256_SECRET: randomBytes(32).toString('hex'),
  AUTH_JWT_ISSUER: 'https://bench.invalid',
  AUTH_JWT_AUDIENCE: 'bench',
};

/** A backend key with every scope, written straight to the benchmark's own database. */
async function createBackendKey(databaseUrl: string): Promise<string> {
  const [{ openPostgres }, { createApiKey }, { SCOPES }] = await Promise.all([
    import('../../src/db/client.js'),
    import('../../src/auth/api-keys.js'),
    import('../../src/auth/caller.js'),
  ]);
  const connection = openPostgres({ url: databaseUrl, poolSize: 1 });
  try {
    return (await createApiKey(connection.db, 'bench', [...SCOPES])).key;
  } finally {
    await connection.close();
  }
}

/**
 * The server's rate limiter for --rate-limit: off, or on with buckets far larger than any run can drain
 * (so nothing is refused and the figures show only the limiter's cost), in memory or in Redis.
 */
export function rateLimitEnv(mode: BenchOptions['rateLimit']): Record<string, string> {
  if (mode === 'off') return { RATE_LIMIT_ENABLED: 'false' };
  const huge = '1000000';
  return {
    RATE_LIMIT_ENABLED: 'true',
    RATE_LIMIT_WRITE_CAPACITY: huge,
    RATE_LIMIT_WRITE_REFILL_PER_SECOND: huge,
    RATE_LIMIT_READ_CAPACITY: huge,
    RATE_LIMIT_READ_REFILL_PER_SECOND: huge,
    RATE_LIMIT_KEY_PREFIX: `bench-ratelimit:${randomBytes(4).toString('hex')}:`,
    REDIS_URL: mode === 'redis' ? process.env.REDIS_URL || 'redis://127.0.0.1:6379' : '',
  };
}

async function startInProcess(
  database: TestDatabase,
  limiter: Record<string, string>,
): Promise<Omit<Target, 'apiKey'>> {
  // Imported here so that child and target modes never load the server code into the load generator.
  const [{ loadConfig }, { startService }] = await Promise.all([
    import('../../src/config.js'),
    import('../../src/server/start.js'),
  ]);
  const config = loadConfig({
    DATABASE_URL: database.url,
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'silent',
    SEED_DEMO_DATA: 'false',
    ...limiter,
  });
  const service = await startService(config);
  return {
    url: service.url,
    mode: 'in-process',
    probe: probeProcess(process.pid),
    database,
    logLines: () => 0,
    stop: async () => {
      try {
        await service.close();
      } finally {
        await database.drop();
      }
    },
  };
}

const BUILD_TIMEOUT_MS = 180_000;

/** `npm run build` (tsc to dist/); throws with tsc's output when it fails. */
function buildServer(): void {
  const result = spawnSync(
    process.execPath,
    [join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: BUILD_TIMEOUT_MS,
    },
  );
  if (result.status !== 0) throw new Error(`building the server (tsc) failed:\n${result.stdout}${result.stderr}`);
}

async function startChild(
  database: TestDatabase,
  limiter: Record<string, string>,
  cpuProfile: boolean,
): Promise<Omit<Target, 'apiKey'>> {
  const port = await findFreePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: database.url,
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'warn',
    SEED_DEMO_DATA: 'false',
    ...limiter,
  };
  // An inherited TLS setting would make the server speak HTTPS to a cleartext client.
  delete env.TLS_CERT_FILE;
  delete env.TLS_KEY_FILE;
  // The server as it is deployed (Dockerfile, `npm run start:dist`): compiled JavaScript, so that neither tsx's
  // loader nor its transform cache is counted in the server's CPU and memory. `node` itself rather than a
  // wrapper: the pid we hold is then the server.
  buildServer();
  // --cpu-prof: V8 writes the profile when the server exits, which it does cleanly on SIGTERM (stopChild).
  const cpuProfileDir = cpuProfile ? mkdtempSync(join(tmpdir(), 'bench-cpu-prof-')) : undefined;
  const profileArgs = cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfileDir}`] : [];
  const child = spawn(process.execPath, [...profileArgs, ...deployedNodeFlags(), 'dist/src/main.js'], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = echoServerLog(child);
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    try {
      await stopChild(child);
    } finally {
      await database.drop();
    }
  };
  try {
    await waitUntilReady(url, child, log);
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  const probe = probeProcess(child.pid!);
  return { url, mode: 'child', probe, database, logLines: () => log.count, stop, cpuProfileDir };
}

interface ServerLog {
  count: number;
  recent: string[];
}

function echoServerLog(child: ChildProcess): ServerLog {
  const log: ServerLog = { count: 0, recent: [] };
  const onLine = (line: string) => {
    if (line.trim() === '') return;
    log.count++;
    log.recent.push(line);
    if (log.recent.length > 10) log.recent.shift();
    if (log.count <= MAX_ECHOED_LOG_LINES) process.stderr.write(`[server] ${line}\n`);
    else if (log.count === MAX_ECHOED_LOG_LINES + 1) process.stderr.write('[server] … further lines counted only\n');
  };
  for (const stream of [child.stdout!, child.stderr!]) {
    let pending = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop()!;
      for (const line of lines) onLine(line);
    });
    stream.on('end', () => onLine(pending));
  }
  return log;
}

async function waitUntilReady(url: string, child: ChildProcess, log: ServerLog): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastProblem = 'no answer yet';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const tail = log.recent.join('\n  ');
      throw new Error(`server exited (${child.exitCode ?? child.signalCode}) before it was ready:\n  ${tail}`);
    }
    try {
      const status = await readyzStatus(url);
      if (status === 200) return;
      lastProblem = `GET /readyz answered ${status}`;
    } catch (error) {
      lastProblem = error instanceof Error ? error.message : String(error);
    }
    await new Promise((done) => setTimeout(done, READY_POLL_MS));
  }
  throw new Error(`server at ${url} not ready after ${READY_TIMEOUT_MS / 1000} s (${lastProblem})`);
}

/**
 * One GET on a connection of its own that is closed afterwards. Not fetch(): its pooled keep-alive
 * connection would stay open through the run, a stray connection in the measured server, and a server
 * that does not end idle HTTP/1.1 connections on shutdown (this one did not before 3600d67) would wait out
 * its whole shutdown grace period for it.
 */
function readyzStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get(`${url}/readyz`, { agent: false, timeout: READY_REQUEST_TIMEOUT_MS }, (response) => {
      response.resume();
      response.once('end', () => resolve(response.statusCode ?? 0));
      response.once('error', reject);
    });
    request.once('timeout', () => request.destroy(new Error('GET /readyz timed out')));
    request.once('error', reject);
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

/** A port free right now; the child binds it a moment later (a race that is harmless on a bench machine). */
async function findFreePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  server.close();
  await once(server, 'close');
  return port;
}
