/**
 * Command-line flags of the AuthorizePayment benchmark. Every value is validated up front so that a typo
 * fails in a second with a message naming the flag, instead of after a minute of setup.
 */

/**
 * uniform / hot-payee: AuthorizePayment between random accounts, or from random accounts to one merchant;
 * health: grpc.health.v1.Health/Check, same client and credentials; pgbench / pgbench-hot: the anchor
 * (../shared/perf-anchors/authorize.sql) with -D hot=0 / hot=1.
 */
export const SCENARIOS = ['uniform', 'hot-payee', 'health', 'pgbench', 'pgbench-hot'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** off: RATE_LIMIT_ENABLED=false; memory / redis: the limiter on with huge buckets, to measure its overhead. */
export const RATE_LIMIT_MODES = ['off', 'memory', 'redis'] as const;
export type RateLimitMode = (typeof RATE_LIMIT_MODES)[number];

/** child: server in its own process (default); in-process: shares this event loop; target: already running. */
export type ServerMode = 'child' | 'in-process' | 'target';

export interface BenchOptions {
  mode: ServerMode;
  /** Base URL of an already running server; set only in target mode. */
  targetUrl: string | undefined;
  accounts: number;
  durationMs: number;
  warmupMs: number;
  concurrencies: number[];
  scenarios: ScenarioName[];
  /** Upper bound on measured requests per run; sizes the preallocated latency buffer. */
  maxRequests: number;
  setupConcurrency: number;
  /** HTTP/2 connections the in-flight requests are spread over. */
  connections: number;
  timeoutMs: number;
  json: boolean;
  rateLimit: RateLimitMode;
  quick: boolean;
  /** Times the interleaved sequence of scenario rounds is repeated (A B A B …). */
  repeat: number;
  /** Directory of the pgbench anchor files; undefined: ../shared/perf-anchors from the repository root. */
  anchorsDir: string | undefined;
  /** The 4× overload round and the recovery round after it. */
  overload: boolean;
  /** Child server under `node --cpu-prof`; the report summarizes where its CPU went. */
  cpuProfile: boolean;
}

/** A bad flag: reported on stderr with exit status 2. */
export class UsageError extends Error {}

// The server advertises SETTINGS_MAX_CONCURRENT_STREAMS = 256 (src/server/listener.ts); more in-flight
// requests than that on one connection would be refused by the server rather than measured.
const MAX_STREAMS_PER_CONNECTION = 256;
/** The overload round's concurrency, as a multiple of the concurrency that gave the peak. */
export const OVERLOAD_FACTOR = 4;

/** --quick: the defaults it changes (explicit flags still win). */
const QUICK = { accounts: 300, warmupMs: 500, durationMs: 1_500, repeat: 2 } as const;

export const USAGE = `Usage: npm run bench -- [flags]

Load generator for PaymentService.AuthorizePayment over native gRPC (HTTP/2 cleartext, pre-encoded
frames on bare node:http2 sessions). By default it starts the server as a child process against a fresh
PostgreSQL database (TEST_ADMIN_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres), seeds
the accounts (500 through the ledger core, the rest by bulk insert), and drops the database at the end.

One run interleaves rounds of each scenario (A B A B …), then an open-loop round at half the peak
payments/s (p99 at half peak) and pgbench at that same rate (PostgreSQL's own p99 there), then an overload
round at 4x the peak's concurrency and a recovery round, then checks the ledger. It prints a table and, last, one line of JSON with the ratios. Exit status 1 when
the ledger check fails, any answer was INTERNAL or UNKNOWN, or the server did not recover after overload.

  --quick                   a run of well under a minute: ${QUICK.accounts} accounts, ${QUICK.warmupMs / 1000} s warm-up,
                            ${QUICK.durationMs / 1000} s rounds, ${QUICK.repeat} repetitions (flags given as well override these)

  --target URL              drive an already running server (e.g. http://127.0.0.1:8080) instead
  --server child|in-process where to start the server when there is no --target (default child;
                            in-process shares this process's event loop and skews the figures)
  --scenarios LIST          comma list of ${SCENARIOS.join(', ')} (default all)
  --concurrency LIST        in-flight requests (pgbench: clients), comma list to run each, e.g. 8,16,64
                            (default 16; the ratios use 16 when listed, else the first)
  --duration SECONDS        measured time per round (default 10; pgbench rounds up to whole seconds)
  --warmup SECONDS          unmeasured load before each round (default 2)
  --repeat N                repetitions of the interleaved rounds (default 2: A B A B)
  --accounts N              payer/payee accounts, plus one merchant (default 100000; a few hundred
                            makes "uniform" collide on balance rows much more often)
  --max-requests N          stop a round after N measured requests (default 2000000)
  --connections N           HTTP/2 connections to spread requests over (default 4)
  --setup-concurrency N     in-flight requests while creating accounts over the API (--target only; default 16)
  --anchors DIR             the pgbench anchor files (default ../shared/perf-anchors from the repository
                            root, or from the main checkout's root in a git worktree); absent: pgbench skipped
  --no-overload             skip the overload and recovery rounds
  --cpu-prof                run the child server under node --cpu-prof and print where its CPU went (by
                            area and function; the .cpuprofile file is kept for Chrome DevTools)
  --timeout-ms N            per-request deadline (default 10000)
  --rate-limit MODE          off (default), memory or redis: the server's rate limiter, with buckets too
                            large to refuse anything, so the figures show its overhead (redis uses
                            REDIS_URL, default redis://127.0.0.1:6379)
  --json                    print the whole report as JSON instead of the table (the ratio line still last)
  --help                    show this text

Server settings such as DB_POOL_SIZE are passed through from the environment to the child server.`;

const DEFAULTS: BenchOptions = {
  mode: 'child',
  targetUrl: undefined,
  accounts: 100_000,
  durationMs: 10_000,
  warmupMs: 2_000,
  concurrencies: [16],
  scenarios: [...SCENARIOS],
  maxRequests: 2_000_000,
  setupConcurrency: 16,
  connections: 4,
  timeoutMs: 10_000,
  json: false,
  rateLimit: 'off',
  quick: false,
  repeat: 2,
  anchorsDir: undefined,
  overload: true,
  cpuProfile: false,
};

/** Returns the options, or undefined when --help was asked for. */
export function parseOptions(argv: string[]): BenchOptions | undefined {
  // `npx tsx bench/authorize.ts -- --flag` hands the separator through to the script; npm strips it.
  const args = argv[0] === '--' ? argv.slice(1) : argv;
  const quick = args.includes('--quick');
  const options: BenchOptions = {
    ...DEFAULTS,
    ...(quick ? QUICK : {}),
    quick,
    concurrencies: [...DEFAULTS.concurrencies],
  };
  let serverFlag: 'child' | 'in-process' | undefined;

  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}" (flags start with --)`);
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const inlineValue = eq === -1 ? undefined : arg.slice(eq + 1);
    const value = (): string => {
      if (inlineValue !== undefined) return inlineValue;
      const next = args[i + 1];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`${flag} needs a value`);
      i++;
      return next;
    };
    const noValue = () => {
      if (inlineValue !== undefined) throw new UsageError(`${flag} takes no value`);
    };

    switch (flag) {
      case '--help':
      case '-h':
        return undefined;
      case '--json':
        noValue();
        options.json = true;
        break;
      case '--quick':
        noValue();
        break;
      case '--cpu-prof':
        noValue();
        options.cpuProfile = true;
        break;
      case '--no-overload':
        noValue();
        options.overload = false;
        break;
      case '--repeat':
        options.repeat = parseInteger(flag, value(), 1, 100);
        break;
      case '--anchors':
        options.anchorsDir = value();
        break;
      case '--target':
        options.targetUrl = parseTarget(value());
        break;
      case '--rate-limit': {
        const mode = value();
        if (!(RATE_LIMIT_MODES as readonly string[]).includes(mode)) {
          throw new UsageError(`--rate-limit must be one of ${RATE_LIMIT_MODES.join(', ')}, got "${mode}"`);
        }
        options.rateLimit = mode as RateLimitMode;
        break;
      }
      case '--server':
        serverFlag = parseServerMode(value());
        break;
      case '--scenarios':
        options.scenarios = parseScenarios(value());
        break;
      case '--concurrency':
        options.concurrencies = parseIntList(flag, value(), 1, 4096);
        break;
      case '--duration':
        options.durationMs = parseSeconds(flag, value(), 0.1, 3600);
        break;
      case '--warmup':
        options.warmupMs = parseSeconds(flag, value(), 0, 600);
        break;
      case '--accounts':
        options.accounts = parseInteger(flag, value(), 2, 1_000_000);
        break;
      case '--max-requests':
        // 8 bytes per latency: the cap keeps the buffer under 80 MB.
        options.maxRequests = parseInteger(flag, value(), 1, 10_000_000);
        break;
      case '--connections':
        options.connections = parseInteger(flag, value(), 1, 64);
        break;
      case '--setup-concurrency':
        options.setupConcurrency = parseInteger(flag, value(), 1, 256);
        break;
      case '--timeout-ms':
        options.timeoutMs = parseInteger(flag, value(), 100, 600_000);
        break;
      default:
        throw new UsageError(`unknown flag ${flag}`);
    }
  }

  if (options.targetUrl !== undefined && serverFlag !== undefined) {
    throw new UsageError('--server and --target exclude each other: --target drives a server that is already running');
  }
  if (options.targetUrl !== undefined && options.rateLimit !== 'off') {
    throw new UsageError('--rate-limit configures a server the benchmark starts; it cannot change a --target');
  }
  options.mode = options.targetUrl !== undefined ? 'target' : (serverFlag ?? 'child');
  if (options.cpuProfile && options.mode !== 'child') {
    throw new UsageError('--cpu-prof profiles a child server; it cannot profile --target or --server in-process');
  }
  // The overload round runs at 4x the peak's concurrency.
  const maxConcurrency = Math.max(...options.concurrencies) * (options.overload ? OVERLOAD_FACTOR : 1);
  if (maxConcurrency > options.connections * MAX_STREAMS_PER_CONNECTION) {
    throw new UsageError(
      `${maxConcurrency} in flight${options.overload ? ' (4x --concurrency, for the overload round)' : ''} exceeds ` +
        `${MAX_STREAMS_PER_CONNECTION} streams per connection; add --connections ` +
        `${Math.ceil(maxConcurrency / MAX_STREAMS_PER_CONNECTION)}`,
    );
  }
  return options;
}

function parseInteger(flag: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw)) throw new UsageError(`${flag} must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new UsageError(`${flag} must be between ${min} and ${max}, got ${value}`);
  return value;
}

function parseSeconds(flag: string, raw: string, min: number, max: number): number {
  if (!/^\d+(\.\d+)?$/.test(raw)) throw new UsageError(`${flag} must be a number of seconds, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new UsageError(`${flag} must be between ${min} and ${max} s, got ${value}`);
  return Math.round(value * 1000);
}

function parseIntList(flag: string, raw: string, min: number, max: number): number[] {
  const values = raw.split(',').map((part) => parseInteger(flag, part.trim(), min, max));
  if (new Set(values).size !== values.length) throw new UsageError(`${flag} lists a value twice: "${raw}"`);
  return values;
}

function parseScenarios(raw: string): ScenarioName[] {
  const names = raw.split(',').map((part) => part.trim());
  for (const name of names) {
    if (!(SCENARIOS as readonly string[]).includes(name)) {
      throw new UsageError(`--scenarios: unknown scenario "${name}" (known: ${SCENARIOS.join(', ')})`);
    }
  }
  if (new Set(names).size !== names.length) throw new UsageError(`--scenarios lists a scenario twice: "${raw}"`);
  return names as ScenarioName[];
}

function parseServerMode(raw: string): 'child' | 'in-process' {
  if (raw === 'child' || raw === 'in-process') return raw;
  throw new UsageError(`--server must be child or in-process, got "${raw}"`);
}

function parseTarget(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--target must be a URL like http://127.0.0.1:8080, got "${raw}"`);
  }
  // createGrpcTransport speaks h2c to http:// and HTTP/2 over TLS to https://; nothing else makes sense.
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--target must start with http:// or https://, got "${url.protocol}//"`);
  }
  if (url.pathname !== '/' || url.search !== '') {
    throw new UsageError(`--target must be a base URL without a path, got "${raw}"`);
  }
  return url.origin;
}
