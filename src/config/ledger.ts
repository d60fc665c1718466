/** Group commit (src/ledger/batcher.ts), the database pool's wait, and the API-key cache. */
import { ConfigError, type Env, readInt } from './env.js';

export interface BatchConfig {
  /** Commands per transaction, at most (≤ the ledger core's MAX_COMMANDS_PER_TRANSACTION). */
  maxBatchSize: number;
  /** How long a batch waits for more commands after its first; 0 = only those that arrived together. */
  maxWaitMs: number;
  /** Commands waiting for a batch, at most; beyond it requests are refused with UNAVAILABLE. */
  maxQueueLength: number;
  /** Transactions of batches running at once (each holds a pool connection; 1 with embedded PGlite). */
  maxBatchesInFlight: number;
  /** Retry hint in the UNAVAILABLE answer of a refused request. */
  retryAfterMs: number;
}

/**
 * Two batches in flight: one being written while the next is planned. On the 2-core bench machine 1 and 2 gave
 * the same throughput and 4 about 15% less (smaller batches: more transactions, each ~4 round trips), see
 * docs/benchmark.md.
 */
const DEFAULT_BATCHES_IN_FLIGHT = 2;

export function readBatch(env: Env, poolSize: number): BatchConfig {
  const maxBatchesInFlight = readInt(
    env,
    'LEDGER_BATCHES_IN_FLIGHT',
    Math.min(DEFAULT_BATCHES_IN_FLIGHT, poolSize),
    1,
    64,
  );
  if (maxBatchesInFlight > poolSize) {
    throw new ConfigError('LEDGER_BATCHES_IN_FLIGHT', `must be at most DB_POOL_SIZE (${poolSize})`);
  }
  return {
    maxBatchSize: readInt(env, 'LEDGER_BATCH_MAX_SIZE', 64, 1, 500),
    maxWaitMs: readInt(env, 'LEDGER_BATCH_MAX_WAIT_MS', 1, 0, 1_000),
    maxQueueLength: readInt(env, 'LEDGER_QUEUE_MAX_LENGTH', 2_000, 1, 100_000),
    maxBatchesInFlight,
    retryAfterMs: readInt(env, 'LEDGER_OVERLOAD_RETRY_AFTER_MS', 200, 1, 60_000),
  };
}

/** How long a request waits for a pool connection before answering UNAVAILABLE. */
export function readPoolWaitMs(env: Env): number {
  return readInt(env, 'DB_POOL_WAIT_TIMEOUT_MS', 5_000, 1, 60_000);
}

/** How long a verified API key is believed without asking the database; revocation clears it at once. */
export function readApiKeyCacheTtlMs(env: Env): number {
  return readInt(env, 'API_KEY_CACHE_TTL_MS', 10_000, 0, 3_600_000);
}
