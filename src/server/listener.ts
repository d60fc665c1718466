/**
 * One port, every protocol. Cleartext: HTTP/2 with prior knowledge (native gRPC clients) and HTTP/1.1
 * (browsers, curl) share a port by looking at a connection's first bytes: an HTTP/2 client opens with the
 * preface "PRI * HTTP/2.0", which no HTTP/1.1 request starts with. With TLS, ALPN makes the same choice and
 * Node's secure HTTP/2 server with allowHTTP1 serves both.
 *
 * The returned server is what Fastify's serverFactory hands back; it also offers the hooks Fastify calls on
 * close (closeIdleConnections, closeHttp2Sessions) so that keep-alive connections and HTTP/2 sessions do
 * not hold shutdown open.
 */
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2, { type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from 'node:http2';
import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { KeepaliveConfig } from '../config/keepalive.js';
import type { TlsConfig } from '../config.js';
import { applyKeepalive } from './keepalive.js';

export type ListenerHandler = (
  request: IncomingMessage | Http2ServerRequest,
  response: ServerResponse | Http2ServerResponse,
) => void;

export interface DualProtocolServer extends net.Server {
  closeIdleConnections(): void;
  closeHttp2Sessions(): void;
  /** Destroys every connection still open; the last step of a bounded shutdown. */
  destroyAllConnections(): void;
}

const HTTP2_PREFACE_START = Buffer.from('PRI * HTTP/2.0');
// Bytes needed to tell the protocols apart; a client sending fewer before pausing is waited for, up to the
// headers timeout.
const SNIFF_BYTES = 3;
// How long a connection may stay half-closed after the server has ended its side.
const HALF_CLOSED_GRACE_MS = 2_000;
// How often Node's HTTP/1.1 server looks for requests over their header or body timeout, at most.
const MAX_TIMEOUT_CHECK_INTERVAL_MS = 1_000;

export interface ListenerOptions {
  tls: TlsConfig | undefined;
  maxHeaderBytes: number;
  /** Beyond this many open connections, new ones are refused. */
  maxConnections: number;
  /** Idle HTTP/1.1 keep-alive timeout. */
  idleTimeoutMs: number;
  /** HTTP/2 sessions: idle timeout and ping policy (see keepalive.ts). */
  keepalive: KeepaliveConfig;
  /**
   * Slow clients (slow-loris): a TLS handshake, the bytes that tell the protocol, an HTTP/1.1 request's
   * headers, and an HTTP/2 connection's first request must each arrive within this many ms.
   */
  headersTimeoutMs: number;
  /** After its headers, a request's body must be complete within this many ms (HTTP/1.1 and HTTP/2). */
  requestBodyTimeoutMs: number;
  /** Open connections one client address may hold; more are destroyed on arrival. */
  maxConnectionsPerClient: number;
  /** Addresses the per-client cap does not apply to (trusted proxies carry many clients' connections). */
  isExemptFromPerClientCap?: (address: string) => boolean;
}

/**
 * An HTTP/2 header list's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 §6.5.2): names and
 * values plus 32 bytes per field. `rawHeaders` alternates names and values, pseudo-headers included.
 */
function headerListBytes(rawHeaders: readonly string[]): number {
  let bytes = 0;
  for (const field of rawHeaders) bytes += Buffer.byteLength(field);
  return bytes + (rawHeaders.length / 2) * 32;
}

/** HTTP/1.1 header bytes, as Node's maxHeaderSize counts them (names and values, give or take separators). */
function http1HeaderBytes(rawHeaders: readonly string[]): number {
  let bytes = 0;
  for (const field of rawHeaders) bytes += Buffer.byteLength(field);
  return bytes;
}

/**
 * Node advertises maxHeaderListSize in its SETTINGS but does not enforce it (nghttp2 only stops at 64 KB),
 * so a header block over the limit is refused here, before Fastify: 431 as over HTTP/1.1, and for gRPC a
 * trailers-only RESOURCE_EXHAUSTED that gRPC clients read as a status. The TLS server's HTTP/1.1 fallback
 * takes no maxHeaderSize either (Node's global 16 KB applies), so its requests are measured here too.
 */
function refusingOversizedHeaders(handler: ListenerHandler, maxHeaderBytes: number): ListenerHandler {
  return (request, response) => {
    if (request.httpVersionMajor !== 2) {
      if (http1HeaderBytes(request.rawHeaders) <= maxHeaderBytes) {
        handler(request, response);
        return;
      }
      (response as ServerResponse).writeHead(431, { connection: 'close' }).end();
      request.resume();
      return;
    }
    if (headerListBytes(request.rawHeaders) <= maxHeaderBytes) {
      handler(request, response);
      return;
    }
    const stream = (response as Http2ServerResponse).stream;
    const grpc = String(request.headers['content-type'] ?? '').startsWith('application/grpc');
    if (!stream.destroyed && !stream.headersSent) {
      stream.respond(
        grpc
          ? {
              ':status': 200,
              'content-type': String(request.headers['content-type']),
              'grpc-status': '8',
              'grpc-message': `request headers larger than ${maxHeaderBytes} bytes`,
            }
          : { ':status': 431 },
        { endStream: true },
      );
    }
    request.resume();
  };
}

/**
 * One port for HTTP/2 and HTTP/1.1: with TLS, ALPN chooses (HTTP/2 server with its HTTP/1.1 fallback);
 * in cleartext, the first bytes are sniffed and the connection handed to an HTTP/2 or an HTTP/1.1 server.
 * The returned net.Server carries the shutdown steps (close idle, GOAWAY sessions, destroy everything).
 */
export function createListener(handler: ListenerHandler, options: ListenerOptions): DualProtocolServer {
  const connections = new ConnectionTracker(options.keepalive, options.headersTimeoutMs);
  const h2 = createHttp2Server(refusingOversizedHeaders(handler, options.maxHeaderBytes), options);
  h2.on('session', (session: Http2Session) => connections.trackSession(session));
  h2.on('stream', (stream: http2.ServerHttp2Stream) => limitBodyTime(stream, options.requestBodyTimeoutMs));
  const slowRequestLimits = {
    headersTimeout: options.headersTimeoutMs,
    // Node's requestTimeout is for the whole request, headers included.
    requestTimeout: options.headersTimeoutMs + options.requestBodyTimeoutMs,
    connectionsCheckingInterval: Math.min(MAX_TIMEOUT_CHECK_INTERVAL_MS, options.headersTimeoutMs / 2),
  };
  // The TLS server's HTTP/1.1 fallback enforces these too, from the same properties.
  if (options.tls) Object.assign(h2, slowRequestLimits);

  const h1 = http.createServer(
    { maxHeaderSize: options.maxHeaderBytes, keepAliveTimeout: options.idleTimeoutMs, ...slowRequestLimits },
    handler,
  );
  const admit = perClientCap(options.maxConnectionsPerClient, options.isExemptFromPerClientCap);

  const server = options.tls
    ? acceptOverTls(h2, connections, admit)
    : acceptCleartext(h1, h2, connections, admit, options.headersTimeoutMs);
  server.maxConnections = options.maxConnections;
  return Object.assign(server, {
    closeIdleConnections: () => connections.closeIdleConnections(),
    closeHttp2Sessions: () => connections.closeHttp2Sessions(),
    destroyAllConnections: () => connections.destroyAllConnections(),
  });
}

/** With TLS the HTTP/2 server listens itself; ALPN picks HTTP/2 or its HTTP/1.1 fallback per connection. */
function acceptOverTls(
  h2: ReturnType<typeof createHttp2Server>,
  connections: ConnectionTracker,
  admit: (socket: net.Socket) => boolean,
): net.Server {
  h2.on('connection', (socket: net.Socket) => {
    if (admit(socket)) connections.track(socket);
  });
  h2.on('secureConnection', (socket: TLSSocket) => {
    connections.track(socket);
    if (socket.alpnProtocol !== 'h2') connections.trackHttp1(socket);
  });
  h2.on('request', (request: IncomingMessage | Http2ServerRequest, response: ServerResponse | Http2ServerResponse) => {
    if (request.httpVersionMajor === 1) {
      connections.onHttp1Request(request as IncomingMessage, response as ServerResponse);
    }
  });
  return h2;
}

/** In cleartext a plain net.Server listens and hands each connection, once sniffed, to `h2` or `h1`. */
function acceptCleartext(
  h1: http.Server,
  h2: ReturnType<typeof createHttp2Server>,
  connections: ConnectionTracker,
  admit: (socket: net.Socket) => boolean,
  headersTimeoutMs: number,
): net.Server {
  h1.on('request', (request: IncomingMessage, response: ServerResponse) =>
    connections.onHttp1Request(request, response),
  );
  const server = net.createServer((socket) => {
    if (!admit(socket)) return;
    connections.track(socket);
    sniff(socket, headersTimeoutMs, (isHttp2) => {
      if (!isHttp2) connections.trackHttp1(socket);
      (isHttp2 ? h2 : h1).emit('connection', socket);
    });
  });
  // The HTTP/1.1 server never listens itself; telling it the port is open starts its header and request
  // timeouts (slow-loris protection), which Node only checks for a listening server.
  server.once('listening', () => h1.emit('listening'));
  server.once('close', () => h1.close(() => {}));
  return server;
}

/** The HTTP/2 server: over TLS (with HTTP/1.1 fallback and optional mTLS) or cleartext (h2c). */
function createHttp2Server(handler: ListenerHandler, options: ListenerOptions) {
  const http2Options = {
    maxSessionMemory: 10,
    settings: { maxConcurrentStreams: 256, maxHeaderListSize: options.maxHeaderBytes },
    maxSendHeaderBlockLength: options.maxHeaderBytes,
  };
  if (!options.tls) return http2.createServer(http2Options, handler);
  // mTLS: a client certificate is asked for and verified against the CA; the request hook reads its subject
  // only when verification succeeded. Required or optional by configuration.
  const clientCertificates = options.tls.clientCaFile
    ? {
        ca: readFileSync(options.tls.clientCaFile),
        requestCert: true,
        rejectUnauthorized: options.tls.clientCertRequired,
      }
    : {};
  const tlsOptions = {
    cert: readFileSync(options.tls.certFile),
    key: readFileSync(options.tls.keyFile),
    allowHTTP1: true,
    handshakeTimeout: options.headersTimeoutMs,
  };
  return http2.createSecureServer(Object.assign({}, http2Options, tlsOptions, clientCertificates), handler);
}

/** The listener's open sockets, HTTP/2 sessions and HTTP/1.1 requests in flight, for a graceful shutdown. */
class ConnectionTracker {
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<Http2Session>();
  /**
   * HTTP/1.1 connections and how many requests each is serving. Node's own idle tracking does not see
   * connections handed over by the sniffer or served by the TLS server's HTTP/1.1 fallback, so shutdown
   * ends them here: idle ones at once, busy ones as soon as their last response is done.
   */
  private readonly http1Sockets = new Map<net.Socket, number>();
  private closing = false;

  constructor(
    private readonly keepalive: ListenerOptions['keepalive'],
    private readonly headersTimeoutMs: number,
  ) {}

  track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    // Once we have ended our side (a session closed after GOAWAY, a keep-alive connection ended), the peer
    // has a short grace to close its side; a client that stops reading would otherwise hold the socket open.
    socket.once('finish', () => setTimeout(() => socket.destroy(), HALF_CLOSED_GRACE_MS).unref());
  }

  trackHttp1(socket: net.Socket): void {
    this.http1Sockets.set(socket, 0);
    socket.once('close', () => this.http1Sockets.delete(socket));
  }

  onHttp1Request(request: IncomingMessage, response: ServerResponse): void {
    const socket = request.socket;
    const http1Sockets = this.http1Sockets;
    if (!http1Sockets.has(socket)) return;
    if (this.closing) response.shouldKeepAlive = false;
    http1Sockets.set(socket, (http1Sockets.get(socket) ?? 0) + 1);
    response.once('close', () => {
      const inFlight = Math.max(0, (http1Sockets.get(socket) ?? 1) - 1);
      if (http1Sockets.has(socket)) http1Sockets.set(socket, inFlight);
      if (this.closing && inFlight === 0) socket.end();
    });
  }

  trackSession(session: Http2Session): void {
    this.sessions.add(session);
    applyKeepalive(session, this.keepalive);
    // Until its first request, a session is only a connection: it must not trickle that request forever.
    const firstRequest = setTimeout(() => session.destroy(), this.headersTimeoutMs);
    session.once('stream', () => clearTimeout(firstRequest));
    session.once('close', () => clearTimeout(firstRequest));
    session.once('close', () => this.sessions.delete(session));
    if (this.closing) session.close();
  }

  closeIdleConnections(): void {
    this.closing = true;
    for (const [socket, inFlight] of this.http1Sockets) if (inFlight === 0) socket.end();
  }

  closeHttp2Sessions(): void {
    this.closing = true;
    // close() (GOAWAY) lets streams already running finish; it refuses new ones.
    for (const session of this.sessions) session.close();
  }

  destroyAllConnections(): void {
    for (const session of this.sessions) session.destroy();
    for (const socket of this.sockets) socket.destroy();
  }
}

/**
 * Counts open connections per client address; the returned function admits a new connection, or destroys
 * it and returns false when its address already holds `max`.
 */
function perClientCap(max: number, isExempt: (address: string) => boolean = () => false) {
  const open = new Map<string, number>();
  return (socket: net.Socket): boolean => {
    const address = socket.remoteAddress;
    if (address === undefined || isExempt(address)) return true;
    const count = open.get(address) ?? 0;
    if (count >= max) {
      socket.destroy();
      return false;
    }
    open.set(address, count + 1);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
    return true;
  };
}

/**
 * Cancels an HTTP/2 request whose body (the client's half of the stream) has not fully arrived in time.
 * Arrived, not read: a handler still waiting on the database before it reads a complete body is not slow.
 */
function limitBodyTime(stream: http2.ServerHttp2Stream, timeoutMs: number): void {
  if (stream.endAfterHeaders) return;
  const timer = setTimeout(() => {
    // `ended` is set when the client's END_STREAM arrives, whether or not the body has been read yet.
    const arrived = (stream as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended === true;
    if (!arrived) stream.close(http2.constants.NGHTTP2_CANCEL);
  }, timeoutMs);
  stream.once('close', () => clearTimeout(timer));
}

function sniff(socket: net.Socket, timeoutMs: number, route: (isHttp2: boolean) => void): void {
  let buffered = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  const onData = (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    if (buffered.length < SNIFF_BYTES) return;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.pause();
    // Give the bytes back so the chosen server parses the connection from its first byte.
    socket.unshift(buffered);
    const prefixLength = Math.min(buffered.length, HTTP2_PREFACE_START.length);
    const isHttp2 = buffered.subarray(0, prefixLength).equals(HTTP2_PREFACE_START.subarray(0, prefixLength));
    route(isHttp2);
    // The HTTP/1.1 parser reads through the stream and needs it flowing again; an HTTP/2 session takes over
    // the socket's handle and drains the unshifted bytes itself, so resuming would hand them to nobody.
    if (!isHttp2) socket.resume();
  };
  socket.on('data', onData);
  socket.once('close', () => clearTimeout(timer));
  socket.on('error', () => socket.destroy());
}
