/**
 * WatchAccount over every protocol: a snapshot on connect, then each committed change in order (payments,
 * holds, status changes), resuming from a version, the same authorization as GetAccountBalance, the
 * per-caller bound, and changes committed by another replica on the same database.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccountStatus, EntryDirection } from '../gen/payment/v1/account_pb.js';
import { ErrorDetailSchema } from '../gen/payment/v1/errors_pb.js';
import { type WatchAccountResponse, WatchUpdateKind } from '../gen/payment/v1/payment_pb.js';
import type { RunningService } from '../src/server/start.js';
import { type Clients, clientsFor, PROTOCOLS } from './support/clients.js';
import { signToken } from './support/credentials.js';
import { authorizeHold, deposit, key, openAccount } from './support/fixtures.js';
import { startTestReplica, startTestServer, type TestServer } from './support/server.js';
import { within } from './support/waits.js';

const WATCH_ENV = { WATCH_POLL_INTERVAL_MS: '30', WATCH_MAX_PER_PRINCIPAL: '2' };
const WAIT_MS = 15_000;

let server: TestServer;
let replica: RunningService;
beforeAll(async () => {
  server = await startTestServer(WATCH_ENV);
  replica = await startTestReplica(server.database.url, WATCH_ENV);
});
afterAll(async () => {
  await replica?.close();
  await server?.stop();
});

/** A stream read one message at a time, each within a bound; closed by aborting. */
function open(clients: Clients, accountId: string, afterVersion = 0n) {
  const abort = new AbortController();
  const stream = clients.payments.watchAccount({ accountId, afterVersion }, { signal: abort.signal });
  const iterator = stream[Symbol.asyncIterator]();
  return {
    async next(what: string): Promise<WatchAccountResponse> {
      const result = await within(iterator.next(), WAIT_MS, what);
      if (result.done) throw new Error(`stream ended while waiting for ${what}`);
      return result.value;
    },
    /** The next message that is not a heartbeat. */
    async nextUpdate(what: string): Promise<WatchAccountResponse> {
      for (let i = 0; i < 5; i++) {
        const message = await this.next(what);
        if (message.kind !== WatchUpdateKind.HEARTBEAT) return message;
      }
      throw new Error(`only heartbeats while waiting for ${what}`);
    },
    close: () => abort.abort(),
  };
}

async function refusalOf(promise: Promise<unknown>) {
  const error = await promise.then(
    () => {
      throw new Error('expected the stream to fail');
    },
    (caught: unknown) => ConnectError.from(caught),
  );
  return { code: Code[error.code], reason: error.findDetails(ErrorDetailSchema)[0]?.reason };
}

describe.each(PROTOCOLS)('over %s', (protocol) => {
  let backend: Clients;
  let owner: string;
  let user: Clients;
  beforeAll(async () => {
    backend = clientsFor(protocol, server.url);
    owner = `watcher-${protocol}-${key()}`;
    user = clientsFor(protocol, server.url, { token: await signToken(owner) });
  });

  it('sends a snapshot, then every payment, hold and status change as it commits', async () => {
    const account = await openAccount(backend, 'USD', owner);
    await deposit(backend, account, 10_000n);
    const other = await openAccount(backend);
    const watch = open(user, account);
    try {
      const snapshot = await watch.nextUpdate('the snapshot');
      expect(snapshot.kind).toBe(WatchUpdateKind.SNAPSHOT);
      expect(snapshot.balance?.available?.amountMinor).toBe(10_000n);
      expect(snapshot.status).toBe(AccountStatus.ACTIVE);
      let version = snapshot.balance!.version;

      await backend.payments.authorizePayment({
        idempotencyKey: key(),
        payerAccountId: account,
        payeeAccountId: other,
        amount: { amountMinor: 1_250n, currency: 'USD' },
      });
      await authorizeHold(backend, account, other, 500n);
      await backend.accounts.freezeAccount({ idempotencyKey: key(), accountId: account });

      // Whether the three commits arrive in one update or three, together they are every change, in order.
      const entries = [];
      let status = AccountStatus.ACTIVE;
      let last: WatchAccountResponse | undefined;
      while (status !== AccountStatus.FROZEN) {
        last = await watch.nextUpdate('the changes');
        expect(last.kind).toBe(WatchUpdateKind.CHANGE);
        expect(last.balance!.version).toBeGreaterThan(version);
        version = last.balance!.version;
        entries.push(...last.entries);
        status = last.status;
      }
      expect(entries.map((entry) => [entry.direction, entry.amount?.amountMinor])).toEqual([
        [EntryDirection.DEBIT, 1_250n],
        [EntryDirection.DEBIT, 500n],
        [EntryDirection.CREDIT, 500n],
      ]);
      expect(last?.balance?.available?.amountMinor).toBe(8_250n);
      expect(last?.balance?.held?.amountMinor).toBe(500n);
    } finally {
      watch.close();
    }
  });

  it('resumes from a version with the entries missed, or a snapshot when too far behind', async () => {
    const account = await openAccount(backend, 'USD', owner);
    await deposit(backend, account, 100n);
    const { balance } = await user.payments.getAccountBalance({ accountId: account });
    await deposit(backend, account, 200n);
    await deposit(backend, account, 300n);

    const resumed = open(user, account, balance!.version);
    try {
      const first = await resumed.nextUpdate('the catch-up');
      expect(first.kind).toBe(WatchUpdateKind.CATCH_UP);
      expect(first.entries.map((entry) => entry.amount?.amountMinor)).toEqual([200n, 300n]);
      expect(first.balance?.available?.amountMinor).toBe(600n);
    } finally {
      resumed.close();
    }
    const ahead = open(user, account, balance!.version + 1_000n);
    try {
      expect((await ahead.nextUpdate('a snapshot')).kind).toBe(WatchUpdateKind.SNAPSHOT);
    } finally {
      ahead.close();
    }
  });

  it('answers NOT_FOUND for someone else’s account and bounds the streams per caller', async () => {
    const theirs = await openAccount(backend, 'USD', `someone-else-${key()}`);
    expect(await refusalOf(open(user, theirs).next('a refusal'))).toEqual({
      code: 'NotFound',
      reason: 'ACCOUNT_NOT_FOUND',
    });
    // A caller of its own: the streams other tests aborted may not all be unregistered yet.
    const alone = `watcher-bound-${protocol}-${key()}`;
    const caller = clientsFor(protocol, server.url, { token: await signToken(alone) });
    const mine = await openAccount(backend, 'USD', alone);
    const streams = [open(caller, mine), open(caller, mine)];
    try {
      for (const stream of streams) await stream.nextUpdate('a snapshot');
      expect(await refusalOf(open(caller, mine).next('a refusal'))).toEqual({
        code: 'ResourceExhausted',
        reason: 'TOO_MANY_WATCHERS_FOR_CALLER',
      });
    } finally {
      for (const stream of streams) stream.close();
    }
    expect(await refusalOf(open(user, mine, -1n).next('a refusal'))).toEqual({
      code: 'InvalidArgument',
      reason: 'AFTER_VERSION_INVALID',
    });
  });

  it('delivers changes committed by another replica', async () => {
    const account = await openAccount(backend, 'USD', owner);
    const viaReplica = clientsFor(protocol, replica.url, { token: await signToken(owner) });
    const watch = open(viaReplica, account);
    try {
      expect((await watch.nextUpdate('the snapshot')).balance?.available?.amountMinor).toBe(0n);
      await deposit(backend, account, 4_200n);
      const change = await watch.nextUpdate('the deposit made on the other replica');
      expect(change.kind).toBe(WatchUpdateKind.CHANGE);
      expect(change.balance?.available?.amountMinor).toBe(4_200n);
    } finally {
      watch.close();
    }
  });
});
