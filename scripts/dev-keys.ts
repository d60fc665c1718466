/**
 * `npm run -s dev:keys -- <dir> [subject...]`: development JWT keys for a deployment on PostgreSQL, where the
 * server needs real key material. Keeps an ES256 key pair in <dir> (made on first use), writes the public
 * half as <dir>/jwks.json and prints the settings as shell exports, so that
 *     eval "$(npm run -s dev:keys -- .data/dev-keys alice)"
 * configures the server; a 24-hour token is printed (as a comment) for each subject. Not for production:
 * there, AUTH_JWKS_URL points at the identity provider. Bad arguments: one usage line, exit 2; key files that
 * cannot be made, read or used: one line naming the file and the reason, exit 1 (nothing on stdout).
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  DEV_AUDIENCE,
  DEV_ISSUER,
  DEV_KEY_FILE,
  type DevKeyPair,
  loadOrCreateDevKeyPair,
  signDevToken,
} from '../src/auth/dev-keys.js';
import { exitOnUsageError, oneLine, strictArgs, UsageError } from './cli.js';

const MAX_SUBJECTS = 20;
const USAGE = `usage: npm run -s dev:keys -- <dir> [subject...] (at most ${MAX_SUBJECTS} subjects; put a subject starting with - after --)`;

/** The key files could not be created, read or used: one line naming the file and the reason, exit 1. */
class KeyFileError extends Error {
  constructor(path: string, cause: unknown) {
    super(`cannot use ${path}: ${reasonOf(cause)}`);
  }
}

/** The error's code (when its message does not start with it) and message, on one line, without a stack. */
function reasonOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as NodeJS.ErrnoException).code;
  let prefix = '';
  if (code && !error.message.startsWith(code)) prefix = `${code}: `;
  else if (!code && error.name !== 'Error') prefix = `${error.name}: `;
  return oneLine(`${prefix}${error.message}`);
}

/** <dir> and the subjects; an unknown flag, no <dir> or too many subjects is a UsageError. */
function parseArguments(argv: string[]): { dir: string; subjects: string[] } {
  const { positionals } = strictArgs({ args: argv, allowPositionals: true, options: {} });
  const [dir, ...subjects] = positionals;
  if (!dir) throw new UsageError('missing <dir>');
  if (subjects.length > MAX_SUBJECTS) throw new UsageError(`${subjects.length} subjects are too many`);
  return { dir, subjects };
}

/** A parsed key file that is not a key pair would only fail later, less clearly. */
function checkKeyPair(pair: DevKeyPair): DevKeyPair {
  const isJwk = (value: unknown) => typeof value === 'object' && value !== null && 'kty' in value;
  if (!isJwk(pair?.publicJwk) || !isJwk(pair?.privateJwk)) throw new Error('not a key pair (publicJwk, privateJwk)');
  return pair;
}

/** The shell lines to print: made in full before any is printed, so a failure never leaves half of them. */
async function settingsLines(dir: string, subjects: string[]): Promise<string[]> {
  const keyFile = resolve(join(dir, DEV_KEY_FILE));
  const jwksFile = resolve(join(dir, 'jwks.json'));
  const usingFile = async <T>(path: string, work: () => Promise<T> | T): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      const failedPath = (error as NodeJS.ErrnoException).path;
      throw new KeyFileError(failedPath ? resolve(failedPath) : path, error);
    }
  };
  const pair = await usingFile(keyFile, async () => checkKeyPair(await loadOrCreateDevKeyPair(dir)));
  await usingFile(jwksFile, () => writeFileSync(jwksFile, JSON.stringify({ keys: [pair.publicJwk] }, null, 2)));
  const lines = [
    `export AUTH_JWKS_FILE='${jwksFile.replaceAll("'", "'\\''")}'`,
    `export AUTH_JWT_ISSUER=${DEV_ISSUER}`,
    `export AUTH_JWT_AUDIENCE=${DEV_AUDIENCE}`,
  ];
  for (const subject of subjects) {
    const token = await usingFile(keyFile, () => signDevToken(pair, subject));
    lines.push(`# token for ${subject} (24 h): ${token}`);
  }
  return lines;
}

async function main(argv: string[]): Promise<void> {
  const { dir, subjects } = parseArguments(argv);
  for (const line of await settingsLines(dir, subjects)) console.log(line);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  exitOnUsageError('dev:keys', USAGE, error);
  console.error(`dev:keys: ${error instanceof KeyFileError ? error.message : `failed: ${reasonOf(error)}`}`);
  process.exit(1);
});
