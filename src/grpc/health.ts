import { Code, ConnectError, type ConnectRouter } from '@connectrpc/connect';
import { Health, HealthCheckResponse_ServingStatus } from '../../gen/grpc/health/v1/health_pb.js';

export { HealthCheckResponse_ServingStatus as ServingStatus } from '../../gen/grpc/health/v1/health_pb.js';

/** The name the health protocol reserves for the server as a whole. */
export const OVERALL_HEALTH = '';

// Every open Watch holds a listener here; capping them keeps a misbehaving prober from growing the set without bound.
const DEFAULT_MAX_WATCHERS = 1_000;

interface Watcher {
  readonly service: string;
  deliver(status: HealthCheckResponse_ServingStatus): void;
  end(): void;
}

export interface HealthStatusBoardOptions {
  /** Watch streams allowed at once; one more fails with RESOURCE_EXHAUSTED. */
  maxWatchers?: number;
}

/**
 * Serving status per fully-qualified service name, shared by Check and Watch.
 * The overall entry ("") starts SERVING so a probe succeeds as soon as the server listens.
 */
export class HealthStatusBoard {
  readonly #statuses = new Map<string, HealthCheckResponse_ServingStatus>([
    [OVERALL_HEALTH, HealthCheckResponse_ServingStatus.SERVING],
  ]);
  readonly #watchers = new Set<Watcher>();
  readonly #maxWatchers: number;
  #closed = false;

  constructor(options: HealthStatusBoardOptions = {}) {
    this.#maxWatchers = options.maxWatchers ?? DEFAULT_MAX_WATCHERS;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Undefined for a service nobody registered: Check turns that into NOT_FOUND. */
  get(service: string): HealthCheckResponse_ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  /**
   * Ignored once closed, so a late "SERVING" from a component still winding down
   * cannot tell load balancers a draining server is healthy again.
   */
  set(service: string, status: HealthCheckResponse_ServingStatus): void {
    if (this.#closed) return;
    this.#statuses.set(service, status);
    for (const watcher of this.#watchers) {
      if (watcher.service === service) watcher.deliver(status);
    }
  }

  /**
   * For shutdown: every service reports NOT_SERVING (watchers get that as their last message)
   * and every Watch stream ends, so open streams do not keep the server from closing.
   */
  close(): void {
    if (this.#closed) return;
    for (const service of this.#statuses.keys()) {
      this.#statuses.set(service, HealthCheckResponse_ServingStatus.NOT_SERVING);
    }
    this.#closed = true;
    for (const watcher of this.#watchers) {
      if (this.#statuses.has(watcher.service)) watcher.deliver(HealthCheckResponse_ServingStatus.NOT_SERVING);
      watcher.end();
    }
  }

  /**
   * Yields the current status (SERVICE_UNKNOWN for an unregistered service), then each change.
   * Changes that arrive faster than the consumer reads are coalesced to the latest, and a status equal
   * to the one last yielded is skipped, so memory per watcher is constant.
   * Ends when `signal` aborts or the board closes.
   */
  async *watch(service: string, signal: AbortSignal): AsyncGenerator<HealthCheckResponse_ServingStatus> {
    if (this.#watchers.size >= this.#maxWatchers) {
      throw new ConnectError(`more than ${this.#maxWatchers} health watchers`, Code.ResourceExhausted);
    }
    let unread: HealthCheckResponse_ServingStatus | undefined =
      this.#statuses.get(service) ?? HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN;
    let ended = this.#closed || signal.aborted;
    let wake: (() => void) | undefined;
    const watcher: Watcher = {
      service,
      deliver(status) {
        unread = status;
        wake?.();
      },
      end() {
        ended = true;
        wake?.();
      },
    };
    const onAbort = (): void => watcher.end();
    signal.addEventListener('abort', onAbort, { once: true });
    this.#watchers.add(watcher);
    try {
      let lastYielded: HealthCheckResponse_ServingStatus | undefined;
      // Terminates via `ended`, which abort and close() both set; close() may leave one last status unread.
      while (!signal.aborted && (!ended || unread !== undefined)) {
        if (unread !== undefined) {
          const status: HealthCheckResponse_ServingStatus = unread;
          unread = undefined;
          if (status !== lastYielded) {
            lastYielded = status;
            yield status;
          }
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      this.#watchers.delete(watcher);
      signal.removeEventListener('abort', onAbort);
    }
  }
}

/** Serves grpc.health.v1.Health from `board`. */
export function registerHealthService(router: ConnectRouter, board: HealthStatusBoard): void {
  router.service(Health, {
    check(request) {
      const status = board.get(request.service);
      if (status === undefined) {
        throw new ConnectError(`unknown service ${JSON.stringify(request.service)}`, Code.NotFound);
      }
      return { status };
    },
    async *watch(request, context) {
      for await (const status of board.watch(request.service, context.signal)) {
        yield { status };
      }
    },
  });
}
