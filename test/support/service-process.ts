/**
 * Runs the real entry point (`node --import tsx src/main.ts`) as a child process, the way `npm start` does,
 * and waits on its output as events arrive: no polling, every wait bounded.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { within } from './waits.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const MAIN_ARGS = ['--import', 'tsx', 'src/main.ts'];

/** The parent's environment minus everything the service reads, plus `env`. */
export function serviceEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const inherited = { ...process.env };
  for (const name of Object.keys(inherited)) {
    if (/^(PORT|HOST|DATABASE_URL|DATA_DIR|DB_POOL_SIZE|LOG_LEVEL|TLS_|CORS_|SEED_|SHUTDOWN_|REQUEST_)/.test(name)) {
      delete inherited[name];
    }
  }
  return { ...inherited, ...env };
}

export interface ServiceProcess {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /** Resolves with the match once stdout matches `pattern`; rejects if the process exits first or on timeout. */
  waitForStdout(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** Sends `signal` and resolves with the exit code, or rejects after `timeoutMs`. */
  stop(signal: NodeJS.Signals, timeoutMs: number): Promise<number | null>;
  /** Last resort for cleanup: SIGKILL if still running. */
  kill(): void;
}

export function startServiceProcess(env: Record<string, string>): ServiceProcess {
  const child = spawn(process.execPath, MAIN_ARGS, { cwd: REPO_ROOT, env: serviceEnv(env) });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  const exited = once(child, 'exit').then(([code]) => code as number | null);

  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitForStdout(pattern, timeoutMs) {
      const found = new Promise<RegExpMatchArray>((resolve, reject) => {
        const check = () => {
          const match = out.match(pattern);
          if (!match) return;
          child.stdout.off('data', check);
          resolve(match);
        };
        child.stdout.on('data', check);
        check();
        void exited.then((code) => reject(new Error(`exited with ${code} before ${pattern}:\n${out}\n${err}`)));
      });
      return within(found, timeoutMs, `stdout matching ${pattern}`);
    },
    stop(signal, timeoutMs) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return within(exited, timeoutMs, `exit after ${signal}`);
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
