/**
 * A bare gRPC-over-HTTP/2 client on node:http2: one POST per call with a pre-encoded frame, the status read
 * from the trailers (or from the headers of a trailers-only answer). No protobuf runtime, no interceptors,
 * no per-call promises beyond the one returned, so the load generator spends little CPU per request.
 */
import http2 from 'node:http2';
import { grpcCodeName, grpcTimeoutHeader, unframeMessages } from './grpc-wire.js';

// Past the deadline the server should have answered DEADLINE_EXCEEDED itself; this much later we give up.
const CLIENT_GRACE_MS = 1_000;
const MAX_RESPONSE_BYTES = 1024 * 1024;

export interface CallOutcome {
  /**
   * gRPC code name (OK, UNAVAILABLE, …); a client-side label (CLIENT_DEADLINE, REFUSED_STREAM, TRANSPORT_ERROR);
   * or "CODE/WHY" when the code was inferred (UNAVAILABLE/HTTP_503, INTERNAL/BAD_FRAME).
   */
  code: string;
  /** The first response message (unframed), for OK answers. */
  message: Buffer | undefined;
  /** grpc-message, or the transport error, to explain a failure. */
  detail: string;
}

export class GrpcH2Client {
  readonly #baseUrl: string;
  readonly #sessions: (http2.ClientHttp2Session | undefined)[];
  readonly #headers: http2.OutgoingHttpHeaders;
  #next = 0;
  #closed = false;
  /** Sessions that ended with an error (e.g. a GOAWAY or a reset connection) and were replaced. */
  sessionErrors = 0;

  /** `connections` HTTP/2 sessions, opened lazily and reopened if one goes away; `apiKey` as x-api-key. */
  constructor(baseUrl: string, connections: number, apiKey: string | undefined) {
    this.#baseUrl = baseUrl;
    this.#sessions = new Array(connections).fill(undefined);
    this.#headers = { ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' };
    if (apiKey) this.#headers['x-api-key'] = apiKey;
  }

  #session(): http2.ClientHttp2Session {
    const index = this.#next;
    this.#next = (this.#next + 1) % this.#sessions.length;
    let session = this.#sessions[index];
    if (!session || session.closed || session.destroyed) {
      session = http2.connect(this.#baseUrl);
      // A session error also fails its streams, which report it; here it only must not crash the process.
      session.on('error', () => {
        this.sessionErrors++;
      });
      session.on('goaway', () => {
        if (this.#sessions[index] === session) this.#sessions[index] = undefined;
      });
      this.#sessions[index] = session;
    }
    return session;
  }

  /** One unary call. Never rejects: every failure is an outcome with a code, so a run counts it. */
  call(path: string, frame: Buffer, timeoutMs: number): Promise<CallOutcome> {
    if (this.#closed) return Promise.resolve({ code: 'CLIENT_CLOSED', message: undefined, detail: '' });
    return new Promise((resolve) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = this.#session().request({
          ...this.#headers,
          ':path': path,
          'grpc-timeout': grpcTimeoutHeader(timeoutMs),
        });
      } catch (error) {
        resolve({ code: 'CLIENT_ERROR', message: undefined, detail: String(error) });
        return;
      }
      let httpStatus = 0;
      let grpcStatus: string | undefined;
      let grpcMessage = '';
      let transportError = '';
      let timedOut = false;
      const chunks: Buffer[] = [];
      let received = 0;
      const timer = setTimeout(() => {
        timedOut = true;
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }, timeoutMs + CLIENT_GRACE_MS);
      stream.on('response', (headers) => {
        httpStatus = Number(headers[':status'] ?? 0);
        // Trailers-only: an error answered without a body carries its status in the headers.
        if (headers['grpc-status'] !== undefined) {
          grpcStatus = String(headers['grpc-status']);
          grpcMessage = String(headers['grpc-message'] ?? '');
        }
      });
      stream.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received <= MAX_RESPONSE_BYTES) chunks.push(chunk);
        else stream.close(http2.constants.NGHTTP2_CANCEL);
      });
      stream.on('trailers', (trailers) => {
        grpcStatus = trailers['grpc-status'] === undefined ? grpcStatus : String(trailers['grpc-status']);
        grpcMessage = String(trailers['grpc-message'] ?? grpcMessage);
      });
      stream.on('error', (error: NodeJS.ErrnoException) => {
        transportError = error.code ?? error.message;
      });
      stream.on('close', () => {
        clearTimeout(timer);
        resolve(settle());
      });
      stream.end(frame);

      const settle = (): CallOutcome => {
        if (timedOut)
          return {
            code: 'CLIENT_DEADLINE',
            message: undefined,
            detail: `no answer ${CLIENT_GRACE_MS} ms past the deadline`,
          };
        if (grpcStatus === undefined) {
          if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) {
            return { code: 'REFUSED_STREAM', message: undefined, detail: 'the server refused the stream' };
          }
          const detail = transportError || `rst code ${stream.rstCode ?? '-'}`;
          if (httpStatus && httpStatus !== 200)
            return { code: codeOfHttpStatus(httpStatus), message: undefined, detail };
          // An answer with neither a status nor a transport error is the server breaking the protocol.
          return { code: transportError ? 'TRANSPORT_ERROR' : 'UNKNOWN/NO_GRPC_STATUS', message: undefined, detail };
        }
        const code = grpcCodeName(grpcStatus);
        if (code !== 'OK') return { code, message: undefined, detail: decodeGrpcMessage(grpcMessage) };
        if (received > MAX_RESPONSE_BYTES) return { code: 'RESPONSE_TOO_LARGE', message: undefined, detail: '' };
        try {
          const [message] = unframeMessages(Buffer.concat(chunks, received));
          return { code, message: message ?? Buffer.alloc(0), detail: '' };
        } catch (error) {
          return { code: 'INTERNAL/BAD_FRAME', message: undefined, detail: String(error) };
        }
      };
    });
  }

  /** Closes every session; calls made afterwards fail at once with CLIENT_CLOSED. */
  close(): void {
    this.#closed = true;
    for (const session of this.#sessions) session?.close();
  }
}

/**
 * An HTTP error without a grpc-status, as gRPC clients read it (grpc/doc/http-grpc-status-mapping.md), with
 * the HTTP status kept: "UNAVAILABLE/HTTP_503".
 */
export function codeOfHttpStatus(status: number): string {
  const mapped: Record<number, string> = {
    400: 'INTERNAL',
    401: 'UNAUTHENTICATED',
    403: 'PERMISSION_DENIED',
    404: 'UNIMPLEMENTED',
    429: 'UNAVAILABLE',
    502: 'UNAVAILABLE',
    503: 'UNAVAILABLE',
    504: 'UNAVAILABLE',
  };
  return `${mapped[status] ?? 'UNKNOWN'}/HTTP_${status}`;
}

function decodeGrpcMessage(raw: string): string {
  try {
    return decodeURIComponent(raw).slice(0, 200);
  } catch {
    return raw.slice(0, 200);
  }
}
