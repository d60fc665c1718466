/**
 * Rounds of load over the bare HTTP/2 client: closed loop (`concurrency` workers, each sending the next
 * request as soon as the answer arrives) or open loop (requests sent at a fixed rate whatever the answers,
 * latency measured from when each was due, so a stalled server cannot hide its queue). Load first runs
 * unmeasured for the warm-up, then carries on into the measured window without a pause.
 */
import { AuthorizeRequestTemplate, findVarint } from './grpc-wire.js';
import type { GrpcH2Client } from './h2-client.js';
import { ownCpuSeconds, type ProcessProbe } from './process-stats.js';
import { bump, type LatencySummary, summarizeLatencies, type Tally } from './stats.js';

export const AUTHORIZE_PATH = '/payment.v1.PaymentService/AuthorizePayment';
export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
// $12.34 each: small against the deposits (setup.ts), so declines stay a signal of a bug.
const AMOUNT_MINOR = 1_234;
// AuthorizePaymentResponse.payment (1) → Payment.status (5); PaymentStatus COMPLETED = 1, DECLINED = 2.
const PAYMENT_STATUS_PATH = [1, 5] as const;
const STATUS_COMPLETED = 1;
const STATUS_DECLINED = 2;
/** Open loop: requests allowed in flight at once; past it the client queues (and the latency shows it). */
const OPEN_LOOP_MAX_IN_FLIGHT = 4_096;
const OPEN_LOOP_TICK_MS = 1;

export type Outcome = 'completed' | 'declined' | 'ok' | 'failed';

/** What one round sends: the next request's frame, and how an OK answer counts. */
export interface Workload {
  name: string;
  path: string;
  nextFrame(): Buffer;
  /** Only called for OK answers. */
  classify(message: Buffer): Outcome;
}

export function healthWorkload(): Workload {
  // HealthCheckRequest{service: ""}: an empty message, i.e. a frame of 5 zero bytes.
  const frame = Buffer.alloc(5);
  return { name: 'health', path: HEALTH_CHECK_PATH, nextFrame: () => frame, classify: () => 'ok' };
}

/**
 * AuthorizePayment between accounts picked by `pick` (indexes into `accountIds`), with idempotency keys
 * `${keyPrefix}-${n}`. Each account's two protobuf pieces are encoded on first use and kept.
 */
export function authorizeWorkload(
  name: string,
  accountIds: readonly string[],
  pick: () => [payer: number, payee: number],
  keyPrefix: string,
  currency: string,
): Workload {
  const template = new AuthorizeRequestTemplate(AMOUNT_MINOR, currency);
  const payerPieces: (Buffer | undefined)[] = new Array(accountIds.length);
  const payeePieces: (Buffer | undefined)[] = new Array(accountIds.length);
  let sequence = 0;
  return {
    name,
    path: AUTHORIZE_PATH,
    nextFrame: () => {
      const [payer, payee] = pick();
      let payerPiece = payerPieces[payer];
      if (!payerPiece) payerPieces[payer] = payerPiece = AuthorizeRequestTemplate.payerPiece(accountIds[payer]!);
      let payeePiece = payeePieces[payee];
      if (!payeePiece) payeePieces[payee] = payeePiece = AuthorizeRequestTemplate.payeePiece(accountIds[payee]!);
      return template.frame(`${keyPrefix}-${sequence++}`, payerPiece, payeePiece);
    },
    classify: (message) => {
      const status = findVarint(message, PAYMENT_STATUS_PATH);
      return status === STATUS_COMPLETED ? 'completed' : status === STATUS_DECLINED ? 'declined' : 'failed';
    },
  };
}

/** Uniformly random distinct payer and payee among `count` accounts. */
export function uniformPair(count: number): () => [number, number] {
  return () => {
    const payer = Math.floor(Math.random() * count);
    // Drawing from the other count-1 and skipping the payer's slot keeps the payee uniform and distinct.
    let payee = Math.floor(Math.random() * (count - 1));
    if (payee >= payer) payee++;
    return [payer, payee];
  };
}

/** A random payer among the first `users` accounts, always paying account `hot` (not among them). */
export function hotPayeePair(users: number, hot: number): () => [number, number] {
  return () => [Math.floor(Math.random() * users), hot];
}

export interface RoundSpec {
  workload: Workload;
  client: GrpcH2Client;
  /** Closed loop: requests in flight. */
  concurrency: number;
  /** Open loop when set: requests per second, sent on schedule. */
  ratePerSecond?: number;
  warmupMs: number;
  durationMs: number;
  maxRequests: number;
  timeoutMs: number;
  server: ProcessProbe | undefined;
  signal: AbortSignal;
}

export interface RoundResult {
  scenario: string;
  loop: 'closed' | 'open';
  concurrency: number;
  offeredPerSecond: number | undefined;
  measuredSeconds: number;
  /** Requests started in the measured window; every one is counted in `codes` exactly once. */
  requests: number;
  /** OK answers that did what was asked: completed payments, or health checks. */
  succeeded: number;
  declined: number;
  /** gRPC code (or client label) → count, over the measured window; OK includes declines. */
  codes: Tally;
  /** The first explanation seen for each failing code. */
  codeSamples: Record<string, string>;
  /** Measured answers (any code) that arrived after the request's deadline had passed on the client's clock. */
  lateAnswers: number;
  /** Succeeded per second. */
  throughput: number;
  latency: LatencySummary | undefined;
  stoppedBy: 'duration' | 'max-requests' | 'interrupted';
  serverCpuSeconds: number | undefined;
  serverPeakRssBytes: number | undefined;
  benchCpuSeconds: number;
  /** Warm-up and measured window together; compared with what the database holds at the end. */
  allPhases: { completed: number; declined: number; failed: number };
  /** Raw latencies of the measured window, for pooling repeated rounds. */
  samples: Float64Array;
}

interface Clock {
  warmEndAt: number;
  endAt: number;
}

function emptyResult(spec: RoundSpec): RoundResult {
  return {
    scenario: spec.workload.name,
    loop: spec.ratePerSecond === undefined ? 'closed' : 'open',
    concurrency: spec.concurrency,
    offeredPerSecond: spec.ratePerSecond,
    measuredSeconds: 0,
    requests: 0,
    succeeded: 0,
    declined: 0,
    codes: {},
    codeSamples: {},
    lateAnswers: 0,
    throughput: 0,
    latency: undefined,
    stoppedBy: 'duration',
    serverCpuSeconds: undefined,
    serverPeakRssBytes: undefined,
    benchCpuSeconds: 0,
    allPhases: { completed: 0, declined: 0, failed: 0 },
    samples: new Float64Array(0),
  };
}

/** Runs one round; resolves when the window has passed and every request sent has been answered. */
export async function runRound(spec: RoundSpec): Promise<RoundResult> {
  const result = emptyResult(spec);
  const latencies = new Float64Array(spec.maxRequests);
  let recorded = 0;
  spec.server?.resetPeak();
  const startedAt = performance.now();
  const clock: Clock = { warmEndAt: startedAt + spec.warmupMs, endAt: startedAt + spec.warmupMs + spec.durationMs };
  // CPU counters are read when the measured window opens, from a timer: close enough at 10 ms resolution.
  let cpuAtWarmEnd = { server: spec.server?.cpuSeconds(), bench: ownCpuSeconds() };
  const cpuTimer = setTimeout(() => {
    cpuAtWarmEnd = { server: spec.server?.cpuSeconds(), bench: ownCpuSeconds() };
  }, spec.warmupMs);

  /** Sends one request due at `dueAt`; false when the run must stop sending. */
  const admit = (now: number): 'measured' | 'warm-up' | 'stop' => {
    if (spec.signal.aborted) {
      result.stoppedBy = 'interrupted';
      return 'stop';
    }
    if (now >= clock.endAt) return 'stop';
    if (now < clock.warmEndAt) return 'warm-up';
    if (result.requests >= spec.maxRequests) {
      result.stoppedBy = 'max-requests';
      return 'stop';
    }
    result.requests++;
    return 'measured';
  };
  const send = async (dueAt: number, measured: boolean) => {
    const sentAt = performance.now();
    const outcome = await spec.client.call(spec.workload.path, spec.workload.nextFrame(), spec.timeoutMs);
    const answeredAt = performance.now();
    const elapsedMs = answeredAt - dueAt;
    let kind: Outcome = 'failed';
    if (outcome.code === 'OK') kind = spec.workload.classify(outcome.message!);
    if (kind === 'completed') result.allPhases.completed++;
    else if (kind === 'declined') result.allPhases.declined++;
    else if (kind === 'failed') result.allPhases.failed++;
    if (!measured) return;
    latencies[recorded++] = elapsedMs;
    if (answeredAt - sentAt > spec.timeoutMs) result.lateAnswers++;
    const code = outcome.code === 'OK' && kind === 'failed' ? 'UNKNOWN/UNEXPECTED_PAYMENT_STATUS' : outcome.code;
    bump(result.codes, code);
    if (code !== 'OK') result.codeSamples[code] ??= outcome.detail;
    if (kind === 'completed' || kind === 'ok') result.succeeded++;
    else if (kind === 'declined') result.declined++;
  };

  if (spec.ratePerSecond === undefined) await closedLoop(spec.concurrency, admit, send);
  else await openLoop(spec.ratePerSecond, startedAt, admit, send);
  clearTimeout(cpuTimer);

  const finishedAt = performance.now();
  result.measuredSeconds = Math.max(0, finishedAt - clock.warmEndAt) / 1000;
  if (result.measuredSeconds > 0) {
    result.throughput = result.succeeded / result.measuredSeconds;
    const serverCpuNow = spec.server?.cpuSeconds();
    if (serverCpuNow !== undefined && cpuAtWarmEnd.server !== undefined) {
      result.serverCpuSeconds = serverCpuNow - cpuAtWarmEnd.server;
    }
    result.benchCpuSeconds = ownCpuSeconds() - cpuAtWarmEnd.bench;
  }
  result.serverPeakRssBytes = spec.server?.peakRssBytes();
  result.samples = latencies.slice(0, recorded);
  result.latency = summarizeLatencies(latencies.subarray(0, recorded));
  return result;
}

type Admit = (now: number) => 'measured' | 'warm-up' | 'stop';
type Send = (dueAt: number, measured: boolean) => Promise<void>;

async function closedLoop(concurrency: number, admit: Admit, send: Send): Promise<void> {
  const worker = async () => {
    // Bounded three ways: the clock, the request budget (the latency buffer's size) and Ctrl-C.
    for (;;) {
      const now = performance.now();
      const phase = admit(now);
      if (phase === 'stop') return;
      await send(now, phase === 'measured');
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/**
 * Request n is due at start + n / rate. Every tick sends all requests that are due, unless
 * OPEN_LOOP_MAX_IN_FLIGHT are already out: then they wait in the client, and their latency still counts
 * from when they were due.
 */
async function openLoop(ratePerSecond: number, startedAt: number, admit: Admit, send: Send): Promise<void> {
  const intervalMs = 1000 / ratePerSecond;
  let sent = 0;
  let inFlight = 0;
  const pending = new Set<Promise<void>>();
  for (;;) {
    const now = performance.now();
    let stop = false;
    while (inFlight < OPEN_LOOP_MAX_IN_FLIGHT) {
      const dueAt = startedAt + sent * intervalMs;
      if (dueAt > now) break;
      const phase = admit(dueAt);
      if (phase === 'stop') {
        stop = true;
        break;
      }
      sent++;
      inFlight++;
      const request = send(dueAt, phase === 'measured').finally(() => {
        inFlight--;
        pending.delete(request);
      });
      pending.add(request);
    }
    if (stop) break;
    await new Promise((done) => setTimeout(done, OPEN_LOOP_TICK_MS));
  }
  await Promise.all(pending);
}

/** Rounds of one scenario pooled: sums and rates over all their measured windows, latency over all samples. */
export function poolRounds(rounds: RoundResult[]): RoundResult {
  const first = rounds[0]!;
  const pooled: RoundResult = {
    ...first,
    codes: {},
    codeSamples: {},
    allPhases: { completed: 0, declined: 0, failed: 0 },
  };
  let samples = 0;
  for (const key of [
    'measuredSeconds',
    'requests',
    'succeeded',
    'declined',
    'lateAnswers',
    'benchCpuSeconds',
  ] as const) {
    pooled[key] = rounds.reduce((sum, round) => sum + round[key], 0);
  }
  pooled.serverCpuSeconds = rounds.every((round) => round.serverCpuSeconds !== undefined)
    ? rounds.reduce((sum, round) => sum + round.serverCpuSeconds!, 0)
    : undefined;
  const peaks = rounds.flatMap((round) => (round.serverPeakRssBytes === undefined ? [] : [round.serverPeakRssBytes]));
  pooled.serverPeakRssBytes = peaks.length > 0 ? Math.max(...peaks) : undefined;
  for (const round of rounds) {
    for (const [code, count] of Object.entries(round.codes)) pooled.codes[code] = (pooled.codes[code] ?? 0) + count;
    for (const [code, text] of Object.entries(round.codeSamples)) pooled.codeSamples[code] ??= text;
    for (const key of ['completed', 'declined', 'failed'] as const) pooled.allPhases[key] += round.allPhases[key];
    samples += round.samples.length;
    if (round.stoppedBy !== 'duration') pooled.stoppedBy = round.stoppedBy;
  }
  const all = new Float64Array(samples);
  let offset = 0;
  for (const round of rounds) {
    all.set(round.samples, offset);
    offset += round.samples.length;
  }
  pooled.samples = all;
  pooled.latency = summarizeLatencies(all.slice());
  pooled.throughput = pooled.measuredSeconds > 0 ? pooled.succeeded / pooled.measuredSeconds : 0;
  return pooled;
}
