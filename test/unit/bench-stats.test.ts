/** The benchmark's arithmetic: percentiles, pooling of repeated rounds, the ratios and their verdicts. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { areaOf, summarizeCpuProfile } from '../../bench/lib/cpu-profile.js';
import { poolRounds, type RoundResult } from '../../bench/lib/load.js';
import {
  latenciesAfterWarmup,
  locatePgbench,
  parsePgbenchLog,
  parsePgbenchOutput,
  splitSqlStatements,
} from '../../bench/lib/pgbench.js';
import { computeRatios, cpuMsPerOp, isServerFault, verdict } from '../../bench/lib/ratios.js';
import { summarizeLatencies } from '../../bench/lib/stats.js';

function round(overrides: Partial<RoundResult>): RoundResult {
  return {
    scenario: 'uniform',
    loop: 'closed',
    concurrency: 16,
    offeredPerSecond: undefined,
    measuredSeconds: 1,
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
    ...overrides,
  };
}

describe('latency percentiles', () => {
  it('uses nearest rank over the sorted samples', () => {
    const samples = Float64Array.from({ length: 100 }, (_, i) => 100 - i);
    const summary = summarizeLatencies(samples)!;
    expect(summary).toMatchObject({ samples: 100, p50Ms: 50, p90Ms: 90, p99Ms: 99, maxMs: 100, meanMs: 50.5 });
  });

  it('gives the only sample for every percentile, and nothing for no samples', () => {
    expect(summarizeLatencies(Float64Array.of(7))).toMatchObject({ p50Ms: 7, p99Ms: 7, maxMs: 7 });
    expect(summarizeLatencies(new Float64Array(0))).toBeUndefined();
  });
});

describe('pooling repeated rounds', () => {
  it('sums counts and CPU, rates over the summed time, percentiles over all samples', () => {
    const a = round({
      measuredSeconds: 2,
      requests: 10,
      succeeded: 8,
      declined: 1,
      codes: { OK: 9, UNAVAILABLE: 1 },
      codeSamples: { UNAVAILABLE: 'busy' },
      serverCpuSeconds: 0.5,
      serverPeakRssBytes: 100,
      samples: Float64Array.of(1, 2, 3),
    });
    const b = round({
      measuredSeconds: 3,
      requests: 20,
      succeeded: 17,
      codes: { OK: 20 },
      serverCpuSeconds: 1,
      serverPeakRssBytes: 300,
      samples: Float64Array.of(4, 5),
    });
    const pooled = poolRounds([a, b]);
    expect(pooled).toMatchObject({ measuredSeconds: 5, requests: 30, succeeded: 25, declined: 1, throughput: 5 });
    expect(pooled.codes).toEqual({ OK: 29, UNAVAILABLE: 1 });
    expect(pooled.codeSamples).toEqual({ UNAVAILABLE: 'busy' });
    expect(pooled.serverCpuSeconds).toBe(1.5);
    expect(pooled.serverPeakRssBytes).toBe(300);
    expect(pooled.latency).toMatchObject({ samples: 5, p50Ms: 3, maxMs: 5 });
    // The rounds' own samples stay in their order: pooling copies before sorting.
    expect([...b.samples]).toEqual([4, 5]);
  });

  it('leaves the server CPU unknown when one round could not read it', () => {
    expect(poolRounds([round({ serverCpuSeconds: 1 }), round({})]).serverCpuSeconds).toBeUndefined();
  });
});

describe('ratios', () => {
  const figures = (throughput: number, succeeded: number, serverCpuSeconds?: number) => ({
    throughput,
    succeeded,
    serverCpuSeconds,
  });

  it('computes each ratio from its own inputs, rounded to 3 decimals', () => {
    const ratios = computeRatios({
      uniform: figures(600, 6000, 12), // 2 ms per payment
      hotPayee: figures(540, 5400),
      health: figures(1000, 10_000, 5), // 0.5 ms per check
      pgbenchTps: 1200,
      p99HalfPeakMs: 8.12345,
      peakRssBytes: 200 * 1024 * 1024,
    });
    expect(ratios).toEqual({
      authorizeOverHealth: 0.6,
      hotOverUniform: 0.9,
      serviceOverPgbench: 0.5,
      cpuPerPaymentOverHealth: 4,
      p99HalfPeakMs: 8.123,
      peakRssMb: 200,
    });
  });

  it('is null, not 0 or Infinity, when an input was not measured', () => {
    const ratios = computeRatios({
      uniform: figures(100, 1000, 1),
      hotPayee: undefined,
      health: figures(0, 0, 1),
      pgbenchTps: undefined,
      p99HalfPeakMs: undefined,
      peakRssBytes: undefined,
    });
    expect(ratios).toEqual({
      authorizeOverHealth: null,
      hotOverUniform: null,
      serviceOverPgbench: null,
      cpuPerPaymentOverHealth: null,
      p99HalfPeakMs: null,
      peakRssMb: null,
    });
    expect(cpuMsPerOp(figures(100, 1000))).toBeUndefined();
  });

  it('judges each figure against its target in the right direction', () => {
    expect(verdict('authorizeOverHealth', 0.6)).toBe('met');
    expect(verdict('authorizeOverHealth', 0.59)).toBe('missed');
    expect(verdict('p99HalfPeakMs', 10)).toBe('met');
    expect(verdict('p99HalfPeakMs', 10.5)).toBe('missed');
    expect(verdict('peakRssMb', null)).toBe('-');
  });

  it('counts only INTERNAL and UNKNOWN as server faults', () => {
    expect(['INTERNAL', 'UNKNOWN', 'UNKNOWN/HTTP_500', 'INTERNAL/BAD_FRAME'].every(isServerFault)).toBe(true);
    expect(
      ['OK', 'UNAVAILABLE', 'RESOURCE_EXHAUSTED', 'DEADLINE_EXCEEDED', 'CLIENT_DEADLINE'].some(isServerFault),
    ).toBe(false);
  });
});

describe('pgbench anchor helpers', () => {
  it('reads tps, latency and counts from pgbench 15 output', () => {
    const output = [
      'transaction type: authorize.sql',
      'number of clients: 16',
      'number of transactions actually processed: 25431',
      'number of failed transactions: 3 (0.012%)',
      'latency average = 9.412 ms',
      'initial connection time = 21.113 ms',
      'tps = 1699.912345 (without initial connection time)',
    ].join('\n');
    expect(parsePgbenchOutput(output)).toEqual({
      tps: 1699.912345,
      latencyAverageMs: 9.412,
      transactions: 25431,
      failed: 3,
    });
    expect(() => parsePgbenchOutput('pgbench: error: connection refused')).toThrow(/no "tps =" line/);
  });

  it('reads latencies and finish times from pgbench logs, with and without the --rate lag column', () => {
    const log = ['0 0 2731 0 1765091234 123456 105', '1 0 12004 0 1765091234 223456 0', '3 7 skipped 0 1 2 3', ''].join(
      '\n',
    );
    expect(parsePgbenchLog(log)).toEqual([
      { latencyMs: 2.731, finishedAtMs: 1765091234123.456 },
      { latencyMs: 12.004, finishedAtMs: 1765091234223.456 },
    ]);
    expect(parsePgbenchLog('5 1 987 0 1765091234 1\n')).toEqual([
      { latencyMs: 0.987, finishedAtMs: 1765091234000.001 },
    ]);
    // A failed transaction, and a line cut short or garbled, have no usable latency or finish time.
    expect(parsePgbenchLog('2 3 failed 0 1765091234 5 0\n4 1 100 0 1765091234 x\n4 2 100 0')).toEqual([]);
  });

  it("leaves out the transactions that finished within the warm-up after pgbench's first", () => {
    const entries = [
      { latencyMs: 50, finishedAtMs: 1_000 },
      { latencyMs: 40, finishedAtMs: 1_499 },
      { latencyMs: 3, finishedAtMs: 1_500 },
      { latencyMs: 4, finishedAtMs: 2_700 },
    ];
    expect([...latenciesAfterWarmup(entries, 500)]).toEqual([3, 4]);
    expect([...latenciesAfterWarmup(entries, 0)]).toEqual([50, 40, 3, 4]);
    expect([...latenciesAfterWarmup([], 500)]).toEqual([]);
  });

  it('splits the anchor SQL files into statements, dropping comments', () => {
    const text =
      '-- empty the tables\nTRUNCATE a, b;\nUPDATE t SET x = 1\n  WHERE y <> 0;\nVACUUM ANALYZE t;\nCHECKPOINT;\n';
    expect(splitSqlStatements(text)).toEqual([
      'TRUNCATE a, b',
      'UPDATE t SET x = 1\n  WHERE y <> 0',
      'VACUUM ANALYZE t',
      'CHECKPOINT',
    ]);
  });
});

describe('server CPU profile summary', () => {
  it('sorts files into areas: our directories, npm packages, Node internals, V8 pseudo-frames', () => {
    expect(areaOf('file:///repo/src/ledger/apply.ts', 'apply')).toBe('src/ledger');
    expect(areaOf('file:///repo/node_modules/drizzle-orm/entity.js', 'is')).toBe('drizzle-orm');
    expect(areaOf('file:///repo/node_modules/@connectrpc/connect/dist/esm/x.js', 'f')).toBe('@connectrpc/connect');
    expect(areaOf('node:internal/http2/core', 'f')).toBe('node internals');
    expect(areaOf('', '(garbage collector)')).toBe('(garbage collector)');
    expect(areaOf('', 'writev')).toBe('(native)');
  });

  it('adds self time per sample, leaves idle out of the shares, and sorts by time', () => {
    const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 9 });
    const summary = summarizeCpuProfile({
      nodes: [
        { id: 1, callFrame: frame('(idle)', '') },
        { id: 2, callFrame: frame('apply', 'file:///r/src/ledger/apply.ts') },
        { id: 3, callFrame: frame('is', 'file:///r/node_modules/drizzle-orm/entity.js') },
      ],
      samples: [1, 2, 3, 2, 1],
      timeDeltas: [5000, 1000, 1000, 2000, 5000],
    });
    expect(summary.busyMs).toBe(4);
    expect(summary.idleMs).toBe(10);
    expect(summary.byArea).toEqual([
      { name: 'src/ledger', selfMs: 3, share: 0.75 },
      { name: 'drizzle-orm', selfMs: 1, share: 0.25 },
    ]);
    expect(summary.byFunction[0]).toEqual({ name: 'apply ledger/apply.ts:10', selfMs: 3, share: 0.75 });
  });
});

describe('locating the pgbench anchor', () => {
  const anchorFiles = (dir: string) => {
    mkdirSync(dir, { recursive: true });
    for (const file of ['schema.sql', 'authorize.sql', 'reset.sql']) writeFileSync(join(dir, file), '-- anchor\n');
  };

  it('skips with a message naming where it looked when the files are absent', async () => {
    const root = mkdtempSync(join(tmpdir(), 'bench-anchor-'));
    try {
      const repo = join(root, 'repo');
      mkdirSync(repo);
      const located = await locatePgbench(repo, undefined);
      expect(located).toEqual({ skipped: expect.stringContaining(join(root, 'shared/perf-anchors')) });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('finds ../shared/perf-anchors next to the main checkout from a git worktree', async () => {
    const root = mkdtempSync(join(tmpdir(), 'bench-anchor-'));
    try {
      // /root/main is the main checkout, /root/wt/feature a worktree whose .git file points into main's .git.
      anchorFiles(join(root, 'shared/perf-anchors'));
      const worktree = join(root, 'wt/feature');
      mkdirSync(worktree, { recursive: true });
      writeFileSync(join(worktree, '.git'), `gitdir: ${join(root, 'main/.git/worktrees/feature')}\n`);
      const located = await locatePgbench(worktree, undefined);
      // Where pgbench itself is missing, the skip message names pgbench, not the anchors.
      if ('skipped' in located) expect(located.skipped).toMatch(/pgbench not found/);
      else expect(located.anchorsDir).toBe(join(root, 'shared/perf-anchors'));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
