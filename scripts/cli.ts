/**
 * What the operator CLIs share: bad arguments are one line with the usage and exit 2; a failure is one line
 * without a stack (test/cli-errors.test.ts).
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';

/** Bad command-line arguments: reported by exitOnUsageError. */
export class UsageError extends Error {}

/** The error's message on one line, without its stack. */
export function oneLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ').trim();
}

/** node:util parseArgs (strict, its default); an unknown flag or a stray argument becomes a UsageError. */
export function strictArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    // Node's hint about '--' is said shorter in each script's usage line.
    throw new UsageError(oneLine(error).replace(/\. To specify a positional argument .*$/, ''));
  }
}

/** For a UsageError: `<name>: <reason>; <usage>` on stderr and exit 2; anything else returns. */
export function exitOnUsageError(name: string, usage: string, error: unknown): void {
  if (!(error instanceof UsageError)) return;
  console.error(`${name}: ${error.message}; ${usage}`);
  process.exit(2);
}
