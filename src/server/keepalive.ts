/**
 * Keep-alive for HTTP/2 sessions, the way gRPC servers do it:
 *
 * - Idle means no open stream: a session with a live stream (a long Health/Watch that sends nothing for
 *   minutes) is never closed for idleness, and the idle clock starts when its last stream closes. Pings do
 *   not make a session busy, so a client pinging an otherwise unused connection is still closed in time.
 * - Pings are answered (Node does that) but rationed: one arriving sooner than `minPingIntervalMs` after the
 *   previous one is a strike, one on time clears the strikes, and more than `maxPingStrikes` strikes in a
 *   row end the session with GOAWAY ENHANCE_YOUR_CALM ("too_many_pings"), which grpc-js and grpc-go read as
 *   "ping less often" and back off.
 */
import { constants, type Http2Session } from 'node:http2';
import type { KeepaliveConfig } from '../config/keepalive.js';

const TOO_MANY_PINGS = Buffer.from('too_many_pings');

/** Applies the policy to a new server session; returns nothing, the session's own events drive it. */
export function applyKeepalive(session: Http2Session, policy: KeepaliveConfig): void {
  // Node's session timeout knows nothing of open streams; idleness is timed here, from the moment the last
  // stream closes, and nothing but a new stream (not a ping) restarts it.
  let openStreams = 0;
  let idleTimer: NodeJS.Timeout | undefined;
  const armIdleTimer = () => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      if (openStreams === 0 && !session.closed) session.close();
    }, policy.idleTimeoutMs);
    idleTimer.unref();
  };
  armIdleTimer();
  session.once('close', () => clearTimeout(idleTimer));
  session.on('stream', (stream) => {
    openStreams++;
    clearTimeout(idleTimer);
    stream.once('close', () => {
      openStreams--;
      if (openStreams === 0 && !session.closed && !session.destroyed) armIdleTimer();
    });
  });

  let lastPingAt: number | undefined;
  let strikes = 0;
  session.on('ping', () => {
    const now = performance.now();
    const early = lastPingAt !== undefined && now - lastPingAt < policy.minPingIntervalMs;
    lastPingAt = now;
    strikes = early ? strikes + 1 : 0;
    if (strikes > policy.maxPingStrikes && !session.closed) {
      session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM, 0, TOO_MANY_PINGS);
      session.close();
    }
  });
}
