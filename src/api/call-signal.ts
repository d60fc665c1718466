/** What a call's abort signal says about why it ended; shared by the error mapping and the access log. */
import { Code, ConnectError } from '@connectrpc/connect';

/**
 * Why the call ended, if its signal says: the deadline, the server's shutdown or the client's reset (their
 * own ConnectErrors), or the client closing the stream without a code (CANCELED). Undefined while the call
 * runs, or when the signal carries an error of the call itself (Connect aborts with it).
 */
export function endedBy(signal: AbortSignal): ConnectError | undefined {
  if (!signal.aborted) return undefined;
  const reason: unknown = signal.reason;
  if (reason instanceof ConnectError) {
    return reason.code === Code.Internal || reason.code === Code.Unknown ? undefined : reason;
  }
  if (reason instanceof Error && reason.name === 'AbortError') {
    return new ConnectError('the client closed the request', Code.Canceled);
  }
  return undefined;
}
