/**
 * Memory and CPU of the server process, read from /proc (Linux only; elsewhere every reading is undefined
 * and the report leaves the columns empty). Reading /proc costs nothing in the measured process, unlike
 * asking it over the wire.
 */
import { readFileSync, writeFileSync } from 'node:fs';

// USER_HZ: the unit of utime/stime in /proc/<pid>/stat. It is 100 on every mainstream Linux architecture,
// and Node offers no sysconf(_SC_CLK_TCK) to ask.
const CLOCK_TICKS_PER_SECOND = 100;

export interface ProcessProbe {
  pid: number;
  /** Starts a new peak-RSS window (VmHWM); false when the kernel refused, so the peak is since start. */
  resetPeak(): boolean;
  /** Highest resident set size since start or the last successful resetPeak(). */
  peakRssBytes(): number | undefined;
  /** User + system CPU time used so far, all threads. */
  cpuSeconds(): number | undefined;
}

function readStatusKb(pid: number, field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function readCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses; the fixed fields follow the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the whole line, i.e. 12 and 13 after the name.
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / CLOCK_TICKS_PER_SECOND : undefined;
  } catch {
    return undefined;
  }
}

export function probeProcess(pid: number): ProcessProbe {
  return {
    pid,
    resetPeak: () => {
      try {
        // "5" resets the peak RSS counter (Linux ≥ 4.0); needs the same user as the process, which we are.
        writeFileSync(`/proc/${pid}/clear_refs`, '5');
        return true;
      } catch {
        return false;
      }
    },
    peakRssBytes: () => readStatusKb(pid, 'VmHWM'),
    cpuSeconds: () => readCpuSeconds(pid),
  };
}

/** CPU time of this (load generator) process. */
export function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}
