/**
 * Where the server's CPU went: a summary of the V8 CPU profile (`node --cpu-prof`) the child server writes
 * when it exits, by area (our src/ directories, each npm package, Node internals, GC) and by function.
 * Pure apart from readServerProfile; summarizeCpuProfile is unit-tested in test/unit/bench-stats.test.ts.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The parts of a .cpuprofile file used here. */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples?: number[];
  /** Microseconds since the previous sample, one per sample. */
  timeDeltas?: number[];
}

export interface ProfileLine {
  name: string;
  selfMs: number;
  /** Of the busy (non-idle) time. */
  share: number;
}

export interface ProfileSummary {
  busyMs: number;
  idleMs: number;
  byArea: ProfileLine[];
  byFunction: ProfileLine[];
}

// Lines kept per table: enough to see where time goes, short enough to read.
const TOP_LINES = 12;

/** The area a script belongs to: "src/ledger", "pg", "node internals", "(garbage collector)", … */
export function areaOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules) return modules[1]!;
  const source = /\/(src|gen|bench)\/([^/]+)\//.exec(url);
  if (source) return `${source[1]}/${source[2]}`;
  if (url.startsWith('node:')) return 'node internals';
  return url.split('/').slice(-2).join('/');
}

function top(totals: Map<string, number>, busyMs: number): ProfileLine[] {
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, TOP_LINES)
    .map(([name, selfMs]) => ({ name, selfMs, share: busyMs > 0 ? selfMs / busyMs : 0 }));
}

/** Self time per area and per function, idle time left out of the shares. */
export function summarizeCpuProfile(profile: CpuProfile): ProfileSummary {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let busyMs = 0;
  let idleMs = 0;
  for (let i = 0; i < samples.length; i++) {
    const frame = nodes.get(samples[i]!);
    const ms = Math.max(0, deltas[i] ?? 0) / 1000;
    if (!frame) continue;
    if (frame.functionName === '(idle)') {
      idleMs += ms;
      continue;
    }
    busyMs += ms;
    const area = areaOf(frame.url, frame.functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + ms);
    const where = frame.url ? ` ${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber + 1}` : '';
    const name = `${frame.functionName || '(anonymous)'}${where}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
  }
  return { busyMs, idleMs, byArea: top(byArea, busyMs), byFunction: top(byFunction, busyMs) };
}

/**
 * The server's main-thread profile in `dir`, parsed; undefined when there is none (the server did not exit
 * cleanly). V8 writes one file per thread, CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile, and tsx's
 * module loader runs in a thread of its own: thread 0 is the one serving requests.
 */
export function readServerProfile(dir: string): CpuProfile | undefined {
  let files: string[];
  try {
    files = readdirSync(dir).filter((file) => file.endsWith('.cpuprofile'));
  } catch {
    return undefined;
  }
  const main = files.find((file) => /\.\d+\.0\.\d+\.cpuprofile$/.test(file));
  const chosen = main ?? files.sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size)[0];
  return chosen ? (JSON.parse(readFileSync(join(dir, chosen), 'utf8')) as CpuProfile) : undefined;
}
