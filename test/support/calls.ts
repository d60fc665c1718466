/** Calls shared by the server tests: clients over any transport, expected failures, held requests. */
import { Code, ConnectError } from '@connectrpc/connect';
import { ErrorDetailSchema } from '../../gen/payment/v1/errors_pb.js';
import type { Clients } from './clients.js';
import { withCredentials } from './clients.js';
import { defaultCredentialsFor } from './credentials.js';
import { fundedAccount, key, openAccount } from './fixtures.js';
import type { TestServer } from './server.js';
import { deferred, within } from './waits.js';

export { clientsOver } from './clients.js';

/** Interceptors that send a test server's backend key, for transports a test builds itself. */
export function asBackend(baseUrl: string) {
  return [withCredentials(defaultCredentialsFor(baseUrl))];
}

export async function connectErrorOf(call: Promise<unknown>): Promise<ConnectError> {
  return call.then(
    () => {
      throw new Error('expected the call to fail, but it succeeded');
    },
    (caught: unknown) => ConnectError.from(caught),
  );
}

/** The code (its name, e.g. 'FailedPrecondition') and ErrorDetail reason of a call expected to be refused. */
export async function refusal(call: Promise<unknown>): Promise<{ code: string; reason: string | undefined }> {
  const error = await connectErrorOf(call);
  return { code: Code[error.code], reason: error.findDetails(ErrorDetailSchema)[0]?.reason };
}

/** Makes the next `count` AuthorizePayment calls wait, once they reach the application, until released. */
export function holdAuthorizations(target: TestServer, count: number) {
  // Instrumentation of the running instance, not a stand-in: the real method runs once released. It makes
  // "in flight when close() starts" certain rather than a race against the request's first bytes.
  const app = target.service.app;
  const authorize = app.authorizePayment.bind(app);
  const arrived = deferred();
  const released = deferred();
  let arrivals = 0;
  app.authorizePayment = async (...args) => {
    if (++arrivals === count) arrived.resolve();
    await released.promise;
    return authorize(...args);
  };
  return { arrived: within(arrived.promise, 5_000, 'requests reaching the server'), release: released.resolve };
}

/** Opens a funded payer and a payee; returns a function that pays 1.00 USD between them. */
export async function payment(clients: Clients) {
  const payer = await fundedAccount(clients, 10_000n);
  const payee = await openAccount(clients);
  return (init: { description?: string } = {}) =>
    clients.payments.authorizePayment({
      idempotencyKey: key('pay'),
      payerAccountId: payer,
      payeeAccountId: payee,
      amount: { amountMinor: 100n, currency: 'USD' },
      ...init,
    });
}
