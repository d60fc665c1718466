/**
 * WatchAccount: live balance updates.
 *
 * How changes are found: each process polls the balance versions of the accounts its watchers watch, in ONE
 * query per tick (WATCH_POLL_INTERVAL_MS) whatever their number, and wakes the watchers whose account moved.
 * A balance version is bumped by every committed change (entry, hold, release, status change), on whichever
 * replica made it, so changes from other replicas arrive like local ones; nothing is added to the ledger's
 * write path, which can therefore never be held up by a watcher. (LISTEN/NOTIFY would be quicker, but needs a
 * connection per process held outside the pool, and a trigger on the hottest row of the ledger; polling is
 * bounded, works on embedded PGlite too, and its latency is one interval.)
 *
 * A woken watcher reads the entries since the version it last sent, so it sees every change in order, even
 * when several commit within one tick. Watchers hold no queue: only a count of wake-ups they have not
 * consumed. One that falls behind (a client not reading) is ended with RESOURCE_EXHAUSTED; it resumes by
 * reconnecting with the last version it saw.
 */
import type { Caller } from '../auth/caller.js';
import type { WatchConfig } from '../config/watch.js';
import type { LedgerDb } from '../db/client.js';
import { invalidArgument, resourceExhausted } from '../domain/errors.js';
import type { AccountStatus, BalanceRecord, WatchUpdate } from '../domain/records.js';
import { findBalance } from '../ledger/queries.js';
import { balanceVersionsOf, entriesBetween } from '../ledger/watch-queries.js';
import type { PaymentsApp } from './payments-app.js';

/** Entries one update carries at most; further behind, a watcher gets a snapshot instead. */
export const MAX_ENTRIES_PER_UPDATE = 100;
/** Wake-ups a watcher may leave unconsumed before it is dropped as too slow. */
export const MAX_PENDING_WAKEUPS = 64;
export const HEARTBEAT_INTERVAL_MS = 20_000;

/** One open stream, as the hub sees it. */
export class Watcher {
  pending = 0;
  dropped = false;
  ended = false;
  private wake: (() => void) | undefined;

  constructor(
    readonly accountId: string,
    readonly principal: string,
    /** The highest version the hub has woken it for (or it started at). */
    private signaled: bigint,
  ) {}

  /** Called by the hub: never blocks, whatever the client does. */
  signal(version: bigint): void {
    if (version <= this.signaled) return;
    this.signaled = version;
    this.pending += 1;
    if (this.pending > MAX_PENDING_WAKEUPS) this.dropped = true;
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  /** Resolves true when woken (or already woken), false after `timeoutMs` or when `abort` fires. */
  wait(timeoutMs: number, abort: AbortSignal): Promise<boolean> {
    if (this.pending > 0 || this.dropped || this.ended) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (woken: boolean) => {
        clearTimeout(timer);
        abort.removeEventListener('abort', onAbort);
        this.wake = undefined;
        resolve(woken);
      };
      const onAbort = () => finish(false);
      const timer = setTimeout(() => finish(false), timeoutMs);
      abort.addEventListener('abort', onAbort, { once: true });
      this.wake = () => finish(true);
    });
  }
}

type VersionSource = (accountIds: string[]) => Promise<Map<string, bigint>>;

/** The process's watchers, their bounds, and the poll that wakes them. */
export class WatchHub {
  private readonly byAccount = new Map<string, Set<Watcher>>();
  private readonly perPrincipal = new Map<string, number>();
  private total = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly versionsOf: VersionSource,
    private readonly config: WatchConfig,
    private readonly onPollError: (error: unknown) => void = () => {},
  ) {}

  get size(): number {
    return this.total;
  }

  /** Throws RESOURCE_EXHAUSTED past either bound or once the hub is closed (shutting down). */
  register(accountId: string, principal: string, version: bigint): Watcher {
    if (this.closed) throw resourceExhausted('SHUTTING_DOWN', 'the server is shutting down; reconnect');
    if (this.total >= this.config.maxTotal) {
      throw resourceExhausted('TOO_MANY_WATCHERS', 'this server has as many watchers as it allows; retry later');
    }
    const mine = this.perPrincipal.get(principal) ?? 0;
    if (mine >= this.config.maxPerPrincipal) {
      throw resourceExhausted(
        'TOO_MANY_WATCHERS_FOR_CALLER',
        `at most ${this.config.maxPerPrincipal} open watch streams per caller; close one first`,
      );
    }
    const watcher = new Watcher(accountId, principal, version);
    const set = this.byAccount.get(accountId) ?? new Set<Watcher>();
    this.byAccount.set(accountId, set);
    set.add(watcher);
    this.perPrincipal.set(principal, mine + 1);
    this.total += 1;
    this.schedule();
    return watcher;
  }

  unregister(watcher: Watcher): void {
    const set = this.byAccount.get(watcher.accountId);
    if (!set?.delete(watcher)) return;
    if (set.size === 0) this.byAccount.delete(watcher.accountId);
    const mine = (this.perPrincipal.get(watcher.principal) ?? 1) - 1;
    if (mine === 0) this.perPrincipal.delete(watcher.principal);
    else this.perPrincipal.set(watcher.principal, mine);
    this.total -= 1;
  }

  /** One poll: reads every watched account's version and wakes the watchers whose account moved. */
  async pollOnce(): Promise<void> {
    const ids = [...this.byAccount.keys()];
    if (ids.length === 0) return;
    const versions = await this.versionsOf(ids);
    for (const [accountId, version] of versions) {
      for (const watcher of this.byAccount.get(accountId) ?? []) watcher.signal(version);
    }
  }

  /** Ends every stream (they finish normally; clients reconnect elsewhere) and stops polling. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const set of this.byAccount.values()) for (const watcher of set) watcher.end();
  }

  /** Polls only while someone watches; the next tick is planned after the previous one finished. */
  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(async () => {
      try {
        await this.pollOnce();
      } catch (error) {
        this.onPollError(error);
      }
      this.timer = undefined;
      if (this.total > 0) this.schedule();
    }, this.config.pollIntervalMs);
    this.timer.unref();
  }
}

/** The stream behind WatchAccount, under GetAccountBalance's authorization. */
export class AccountWatches {
  readonly hub: WatchHub;

  constructor(
    private readonly db: LedgerDb,
    private readonly app: PaymentsApp,
    config: WatchConfig,
    onPollError?: (error: unknown) => void,
  ) {
    this.hub = new WatchHub((ids) => balanceVersionsOf(db, ids), config, onPollError);
  }

  async *watch(
    caller: Caller,
    input: { accountId: string; afterVersion: bigint },
    abort: AbortSignal,
  ): AsyncGenerator<WatchUpdate> {
    if (input.afterVersion < 0n) {
      throw invalidArgument('after_version', 'AFTER_VERSION_INVALID', 'after_version must not be negative');
    }
    const balance = await this.app.getBalance(caller, input.accountId);
    const watcher = this.hub.register(input.accountId, caller.principal, balance.version);
    try {
      const first = await this.firstUpdate(balance, input.afterVersion);
      yield first;
      let sent = first.balance?.version ?? balance.version;
      while (!abort.aborted) {
        const woken = await watcher.wait(HEARTBEAT_INTERVAL_MS, abort);
        if (abort.aborted || watcher.ended) return;
        if (watcher.dropped) {
          throw resourceExhausted(
            'WATCHER_TOO_SLOW',
            'the stream fell too far behind; reconnect with after_version set to the last version seen',
          );
        }
        if (!woken) {
          yield { kind: 'HEARTBEAT', entries: [] };
          continue;
        }
        watcher.pending = 0;
        const update = await this.changeSince(input.accountId, sent);
        if (!update?.balance) continue;
        yield update;
        sent = update.balance.version;
      }
    } finally {
      this.hub.unregister(watcher);
    }
  }

  close(): void {
    this.hub.close();
  }

  private async firstUpdate(
    { status, ...balance }: BalanceRecord & { status: AccountStatus },
    afterVersion: bigint,
  ): Promise<WatchUpdate> {
    const behind = balance.version - afterVersion;
    if (afterVersion === 0n || behind < 0n || behind > BigInt(MAX_ENTRIES_PER_UPDATE)) {
      return { kind: 'SNAPSHOT', balance, status, entries: [] };
    }
    const entries = await entriesBetween(
      this.db,
      balance.accountId,
      afterVersion,
      balance.version,
      MAX_ENTRIES_PER_UPDATE,
    );
    return { kind: 'CATCH_UP', balance, status, entries };
  }

  /**
   * Everything committed after version `sent`, or undefined when nothing was. Balance and status come from one
   * statement, so the status is the one at that version; the entries up to it are committed with it.
   */
  private async changeSince(accountId: string, sent: bigint): Promise<WatchUpdate | undefined> {
    const found = await findBalance(this.db, accountId);
    if (!found || found.version <= sent) return undefined;
    const { ownerRef: _owner, status, ...balance } = found;
    const entries = await entriesBetween(this.db, accountId, sent, balance.version, MAX_ENTRIES_PER_UPDATE + 1);
    if (entries.length > MAX_ENTRIES_PER_UPDATE) return { kind: 'SNAPSHOT', balance, status, entries: [] };
    return { kind: 'CHANGE', balance, status, entries };
  }
}
