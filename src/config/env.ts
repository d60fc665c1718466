/** Reading and validating environment variables; every failure names the variable. */
export type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`invalid configuration: ${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

/** Several problems at once: the message lists each on its own line. */
export class ConfigErrors extends ConfigError {
  constructor(readonly errors: ConfigError[]) {
    super(errors[0]?.variable ?? '', '');
    this.message =
      errors.length === 1
        ? errors[0]!.message
        : `invalid configuration (${errors.length} problems):\n${errors.map((error) => `  ${error.message}`).join('\n')}`;
    this.name = 'ConfigErrors';
  }
}

let collected: ConfigError[] | undefined;

/**
 * Wraps a reader so that, inside collectConfigErrors, a ConfigError is recorded and the reader returns
 * `fallback(args)` (or undefined) instead of throwing: loading the configuration then reports every bad
 * setting at once. Outside collectConfigErrors it throws as before.
 */
export function collecting<A extends unknown[], R>(read: (...args: A) => R, fallback?: (...args: A) => R) {
  return (...args: A): R => {
    try {
      return read(...args);
    } catch (error) {
      if (!(error instanceof ConfigError) || collected === undefined) throw error;
      collected.push(...(error instanceof ConfigErrors ? error.errors : [error]));
      return fallback ? fallback(...args) : (undefined as R);
    }
  };
}

/** Runs `read` collecting every ConfigError of the wrapped readers; throws them together at the end. */
export function collectConfigErrors<T>(read: () => T): T {
  const outer = collected;
  collected = [];
  try {
    const value = read();
    if (collected.length > 0) throw new ConfigErrors(collected);
    return value;
  } finally {
    collected = outer;
  }
}

/** Records a problem found outside a reader (inside collectConfigErrors; otherwise throws it). */
export function reportConfigError(error: ConfigError): void {
  if (collected === undefined) throw error;
  collected.push(error);
}

const MAX_ECHOED_DIGITS = 24;

function readIntStrict(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const value = Number(raw);
  // The digits as given (Number would print 1e+23), at most a screenful.
  const shown = raw.length > MAX_ECHOED_DIGITS ? `${raw.slice(0, MAX_ECHOED_DIGITS)}…` : raw;
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${shown}`);
  return value;
}

function readBoolStrict(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

function readRateStrict(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+(\.\d+)?$/.test(raw)) throw new ConfigError(name, `must be a number ≥ 0 like 10 or 0.5, got "${raw}"`);
  const value = Number(raw);
  if (value > 1_000_000) throw new ConfigError(name, `must be at most 1000000, got ${value}`);
  return value;
}

function readUrlStrict(env: Env, name: string, protocols: string[], example: string): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, `is not a URL (expected ${example})`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(
      name,
      `must start with ${protocols.map((p) => `${p}//`).join(' or ')}, got "${url.protocol}//"`,
    );
  }
  // new URL('redis://') parses; a client would then quietly use its default host. PostgreSQL alone may name
  // its host elsewhere (postgres:///ledger?host=/run/postgresql, a Unix socket).
  const hostElsewhere = url.protocol.startsWith('postgres') && url.searchParams.has('host');
  if (url.hostname === '' && !hostElsewhere) throw new ConfigError(name, `names no host (expected ${example})`);
  return raw;
}

/** A whole number in [min, max]; `fallback` when unset. */
export const readInt = collecting(readIntStrict, (_env, _name, fallback) => fallback);
/** true/1 or false/0; `fallback` when unset. */
export const readBool = collecting(readBoolStrict, (_env, _name, fallback) => fallback);
/** A non-negative decimal like 10 or 0.5. */
export const readRate = collecting(readRateStrict, (_env, _name, fallback) => fallback);
/** A URL with one of the given schemes (e.g. ['redis:', 'rediss:']), or undefined when unset. */
export const readUrl = collecting(readUrlStrict);

export function readList(env: Env, name: string): string[] {
  return (env[name] ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
}
