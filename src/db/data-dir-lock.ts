/**
 * An exclusive lock on an embedded (PGlite) data directory, held by the process that opens it for as long as
 * it has it open. PGlite has no postmaster to refuse a second opener: two processes on one directory each
 * write their own view of the files and acknowledged payments are lost. So every opener (the server and the
 * scripts: apikey, ledger:check, db:migrate) takes this lock first and is refused while another holds it.
 *
 * The lock is a file, `payment-ledger.lock` in the data directory, holding the owner's pid, its start time
 * (from /proc/<pid>/stat) and the machine's boot id and host name. It is created atomically with its content
 * (written to a private temporary file, then hard-linked into place: link fails if the name exists), so a
 * reader never sees a half-written lock. A lock whose owner is gone (no such pid, or the pid now belongs to
 * a process started at another time, or the machine rebooted) is stale and is taken over: moved aside under
 * a private name, checked to still be the very lock judged stale, then deleted. A lock written on another
 * host cannot be checked and is never taken over.
 *
 * Not a library: proper-lockfile judges staleness by an mtime refreshed on a timer, so a SIGKILLed holder
 * blocks restarts for the stale period and a paused holder (long GC, SIGSTOP) can lose its lock while alive;
 * the pid + start time test is exact on Linux, where this service runs.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

export const LOCK_FILE = 'payment-ledger.lock';
/** Attempts at creating the lock, each after taking over one stale lock; more means a fight, so give up. */
const MAX_ATTEMPTS = 5;
/** A lock file is a few dozen bytes; anything larger is not ours. */
const MAX_LOCK_BYTES = 4_096;

interface LockOwner {
  pid: number;
  /** Clock ticks since boot at which the process started (field 22 of /proc/<pid>/stat); null off Linux. */
  startTicks: string | null;
  bootId: string | null;
  host: string;
}

/** The data directory is locked by a live process (or one that cannot be checked). */
export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    detail: string,
  ) {
    super(
      `the embedded data directory ${dataDir} is in use: ${detail}. Stop that process first (the server, or ` +
        'a script such as apikey or ledger:check), or use another DATA_DIR. Two processes on one directory ' +
        'lose acknowledged payments.',
    );
    this.name = 'DataDirLockedError';
  }
}

export interface DataDirLock {
  readonly path: string;
  /** Deletes the lock file if it is still this process's; idempotent. */
  release(): void;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

/**
 * Start time of `pid` in clock ticks since boot, or null when there is no such process, it has died (a
 * zombie not yet reaped by its parent) or there is no /proc.
 */
function processStartTicks(pid: number): string | null {
  const stat = readOrNull(`/proc/${pid}/stat`);
  if (stat === null) return null;
  // The command name (field 2) may contain spaces and parentheses; the fields after its last ')' do not.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return null;
  return fields[19] ?? null;
}

function currentOwner(): LockOwner {
  return {
    pid: process.pid,
    startTicks: processStartTicks(process.pid),
    bootId: readOrNull('/proc/sys/kernel/random/boot_id'),
    host: hostname(),
  };
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockOwner>;
    if (typeof value.pid !== 'number' || typeof value.host !== 'string') return undefined;
    return {
      pid: value.pid,
      startTicks: value.startTicks ?? null,
      bootId: value.bootId ?? null,
      host: value.host,
    };
  } catch {
    return undefined;
  }
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Why `owner` still holds the lock, or undefined when its lock is stale. */
function liveOwnerDetail(owner: LockOwner, me: LockOwner): string | undefined {
  const who = `process ${owner.pid} on ${owner.host}`;
  if (owner.host !== me.host) return `${who} (another host: remove ${LOCK_FILE} by hand if it is gone)`;
  if (owner.bootId !== null && me.bootId !== null && owner.bootId !== me.bootId) return undefined;
  if (owner.startTicks !== null && me.startTicks !== null) {
    return processStartTicks(owner.pid) === owner.startTicks ? who : undefined;
  }
  return pidExists(owner.pid) ? who : undefined;
}

/** Moves a stale lock aside; true if what was moved is exactly `staleText` (otherwise it is put back). */
function takeOverStale(path: string, staleText: string): boolean {
  const aside = `${path}.stale.${process.pid}.${randomBytes(6).toString('hex')}`;
  try {
    renameSync(path, aside);
  } catch {
    return false; // someone else moved it first; try again from the start
  }
  if (readOrNull(aside) === staleText) {
    unlinkSync(aside);
    return true;
  }
  // Between reading and moving, another process replaced the stale lock with its own live one: restore it
  // (unless yet another lock appeared meanwhile; the caller's next attempt then finds whichever is there).
  try {
    linkSync(aside, path);
  } catch {
    // EEXIST: left to the next attempt
  } finally {
    unlinkSync(aside);
  }
  return false;
}

/**
 * Takes the lock on `dataDir` (which must exist) or throws DataDirLockedError naming the holder.
 * Synchronous so that nothing else runs between the check and the open that follows.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  const path = join(dataDir, LOCK_FILE);
  const me = currentOwner();
  const text = JSON.stringify(me);
  const temporary = `${path}.new.${process.pid}.${randomBytes(6).toString('hex')}`;
  writeFileSync(temporary, text, { flag: 'wx', mode: 0o600 });
  try {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      try {
        linkSync(temporary, path);
        return lockHandle(path, text);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const existing = readOrNull(path);
      if (existing === null) continue; // released meanwhile
      const owner = existing.length <= MAX_LOCK_BYTES ? parseOwner(existing) : undefined;
      if (owner === undefined) throw new DataDirLockedError(dataDir, `${path} is not a lock this service wrote`);
      const detail = liveOwnerDetail(owner, me);
      if (detail !== undefined) throw new DataDirLockedError(dataDir, `held by ${detail}`);
      takeOverStale(path, existing);
    }
    throw new DataDirLockedError(dataDir, 'other processes keep taking the lock');
  } finally {
    unlinkSync(temporary);
  }
}

function lockHandle(path: string, text: string): DataDirLock {
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.off('exit', release);
    if (readOrNull(path) === text) unlinkSync(path);
  };
  // A clean exit without close() (e.g. a script calling process.exit) still leaves no lock behind; after a
  // crash or SIGKILL the next opener finds the owner gone and takes over.
  process.on('exit', release);
  return { path, release };
}
