/** The watch hub without a database: bounds, waking, dropping a watcher that does not read, closing. */
import { describe, expect, it } from 'vitest';
import { MAX_PENDING_WAKEUPS, WatchHub } from '../../src/app/account-watch.js';
import { DomainError } from '../../src/domain/errors.js';

const config = { maxPerPrincipal: 2, maxTotal: 3, pollIntervalMs: 60_000 };

function hubWith(versions: Map<string, bigint>) {
  return new WatchHub(
    async (ids) => new Map(ids.flatMap((id) => (versions.has(id) ? [[id, versions.get(id)!]] : []))),
    config,
  );
}

const reasonOf = (run: () => unknown) => {
  try {
    run();
    return 'no error';
  } catch (error) {
    return error instanceof DomainError ? `${error.kind}:${error.reason}` : String(error);
  }
};

describe('WatchHub', () => {
  it('bounds watchers per principal and in total, and frees a slot on unregister', () => {
    const hub = hubWith(new Map());
    const first = hub.register('acct_a', 'alice', 0n);
    hub.register('acct_a', 'alice', 0n);
    expect(reasonOf(() => hub.register('acct_b', 'alice', 0n))).toBe('resource_exhausted:TOO_MANY_WATCHERS_FOR_CALLER');
    hub.register('acct_b', 'bob', 0n);
    expect(reasonOf(() => hub.register('acct_c', 'carol', 0n))).toBe('resource_exhausted:TOO_MANY_WATCHERS');
    hub.unregister(first);
    hub.unregister(first);
    expect(hub.size).toBe(2);
    expect(reasonOf(() => hub.register('acct_c', 'carol', 0n))).toBe('no error');
    hub.close();
  });

  it('wakes a watcher only when its account’s version moved past what it has', async () => {
    const versions = new Map([['acct_a', 5n]]);
    const hub = hubWith(versions);
    const watcher = hub.register('acct_a', 'alice', 5n);
    await hub.pollOnce();
    expect(watcher.pending).toBe(0);
    versions.set('acct_a', 7n);
    const woken = watcher.wait(60_000, new AbortController().signal);
    await hub.pollOnce();
    expect(await woken).toBe(true);
    expect(watcher.pending).toBe(1);
    hub.close();
  });

  it('drops a watcher that leaves too many wake-ups unread, without ever waiting for it', async () => {
    const versions = new Map([['acct_a', 0n]]);
    const hub = hubWith(versions);
    const slow = hub.register('acct_a', 'alice', 0n);
    for (let version = 1n; version <= BigInt(MAX_PENDING_WAKEUPS); version++) {
      versions.set('acct_a', version);
      await hub.pollOnce();
    }
    expect(slow.dropped).toBe(false);
    versions.set('acct_a', BigInt(MAX_PENDING_WAKEUPS) + 1n);
    await hub.pollOnce();
    expect(slow.dropped).toBe(true);
    hub.close();
  });

  it('ends every watcher on close and refuses new ones', async () => {
    const hub = hubWith(new Map());
    const watcher = hub.register('acct_a', 'alice', 0n);
    const waiting = watcher.wait(60_000, new AbortController().signal);
    hub.close();
    expect(await waiting).toBe(true);
    expect(watcher.ended).toBe(true);
    expect(reasonOf(() => hub.register('acct_a', 'alice', 0n))).toBe('resource_exhausted:SHUTTING_DOWN');
  });
});
