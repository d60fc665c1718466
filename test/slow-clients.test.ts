/**
 * Slow clients (slow-loris) cannot hold the server: connections that trickle their headers or body, or
 * never start a request, are cut after the configured timeouts on HTTP/1.1, HTTP/2 (cleartext and TLS),
 * one client address holds at most MAX_CONNECTIONS_PER_CLIENT connections, and normal traffic is served
 * all the while. The tricklers come from 127.0.0.2 (any 127.x address is loopback on Linux) so that the
 * normal clients, on 127.0.0.1, count as another client.
 *
 * No timing asserts: timeouts are short, and the test waits (bounded) for each trickler's socket to close.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clientsFor, PROTOCOLS } from './support/clients.js';
import { key } from './support/fixtures.js';
import { createSelfSignedCert, type SelfSignedCert } from './support/self-signed-cert.js';
import { startTestServer, type TestServer } from './support/server.js';
import { within } from './support/waits.js';

const TRICKLER_ADDRESS = '127.0.0.2';
const TRICKLE_EVERY_MS = 100;
// Bound on each trickler: it stops on its own long after the server should have cut it.
const MAX_TRICKLED_BYTES = 1_000;
const CUT_OFF_WITHIN_MS = 30_000;
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const H2_EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
const H2_PING = Buffer.from([0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);

const opened: net.Socket[] = [];
const timers: NodeJS.Timeout[] = [];

afterEach(() => {
  for (const timer of timers.splice(0)) clearInterval(timer);
  for (const socket of opened.splice(0)) socket.destroy();
});

/** Writes `chunks` one per tick until the socket closes or the chunks run out. */
function trickle(socket: net.Socket, chunks: () => Buffer | undefined): void {
  const timer = setInterval(() => {
    const chunk = chunks();
    if (chunk === undefined || !socket.writable) {
      clearInterval(timer);
      return;
    }
    // The server may cut the connection between two chunks: that is what the test waits for.
    socket.write(chunk, () => {});
  }, TRICKLE_EVERY_MS);
  timers.push(timer);
  socket.once('close', () => clearInterval(timer));
}

/** One byte of `text` per tick, then nothing: a request that never completes. */
function byteByByte(text: string): () => Buffer | undefined {
  let index = 0;
  return () => (index < Math.min(text.length, MAX_TRICKLED_BYTES) ? Buffer.from(text[index++]!) : undefined);
}

/** The same chunk every tick, up to the bound. */
function repeatedly(chunk: Buffer): () => Buffer | undefined {
  let sent = 0;
  return () => (sent++ * chunk.length < MAX_TRICKLED_BYTES ? chunk : undefined);
}

async function connectFrom(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: TRICKLER_ADDRESS });
  socket.on('error', () => {});
  opened.push(socket);
  await once(socket, 'connect');
  return socket;
}

/** Resolves when the socket has closed (events.once would reject on the EPIPE a cut connection may raise). */
const closed = (socket: net.Socket, what: string) =>
  socket.closed
    ? Promise.resolve()
    : within(new Promise<void>((resolve) => socket.once('close', () => resolve())), CUT_OFF_WITHIN_MS, what);

const slowHeaders = `POST /payment.v1.AccountService/CreateAccount HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(2_000)}`;
const slowBody = (length: number) =>
  `POST /payment.v1.AccountService/CreateAccount HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
  `Connect-Protocol-Version: 1\r\nContent-Length: ${length}\r\n\r\n`;

/** Normal traffic over every protocol, from 127.0.0.1. */
async function normalTrafficServed(url: string): Promise<void> {
  for (const protocol of PROTOCOLS) {
    const clients = clientsFor(protocol, url);
    const { account } = await clients.accounts.createAccount({
      idempotencyKey: key('slow'),
      ownerRef: 'user:slow-clients',
      currency: 'USD',
    });
    expect(account?.id).toMatch(/^acct_/);
  }
}

describe('cleartext (HTTP/1.1 and HTTP/2 on one port)', () => {
  let server: TestServer;
  let port: number;
  beforeAll(async () => {
    server = await startTestServer({
      HEADERS_TIMEOUT_MS: '500',
      REQUEST_BODY_TIMEOUT_MS: '500',
      MAX_CONNECTIONS_PER_CLIENT: '50',
    });
    port = server.service.port;
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('cuts off every kind of trickler while normal traffic is served', async () => {
    const silent = await connectFrom(port);
    // Fewer bytes than it takes to tell HTTP/1.1 from HTTP/2.
    const sniffTrickler = await connectFrom(port);
    sniffTrickler.write('PO');
    const headerTricklers = await Promise.all(Array.from({ length: 5 }, () => connectFrom(port)));
    for (const socket of headerTricklers) trickle(socket, byteByByte(slowHeaders));
    const bodyTrickler = await connectFrom(port);
    bodyTrickler.write(slowBody(500));
    trickle(bodyTrickler, byteByByte('{'.padEnd(500, ' ')));
    // HTTP/2 with prior knowledge: a valid session that pings to look busy but never sends a request.
    const h2Idler = await connectFrom(port);
    h2Idler.write(Buffer.concat([H2_PREFACE, H2_EMPTY_SETTINGS]));
    trickle(h2Idler, repeatedly(H2_PING));

    await normalTrafficServed(server.url);

    await closed(silent, 'a connection that never sends a byte');
    await closed(sniffTrickler, 'a connection that sends nothing useful');
    for (const socket of headerTricklers) await closed(socket, 'an HTTP/1.1 header trickler');
    await closed(bodyTrickler, 'an HTTP/1.1 body trickler');
    await closed(h2Idler, 'an HTTP/2 session that never sends a request');

    await normalTrafficServed(server.url);
  }, 180_000);

  it('cancels an HTTP/2 request whose body trickles', async () => {
    const session = http2.connect(server.url, {
      createConnection: () => net.connect({ host: '127.0.0.1', port, localAddress: TRICKLER_ADDRESS }),
    });
    session.on('error', () => {});
    try {
      const stream = session.request(
        {
          ':method': 'POST',
          ':path': '/payment.v1.AccountService/CreateAccount',
          'content-type': 'application/json',
          'connect-protocol-version': '1',
          'x-api-key': server.backendKey,
        },
        { endStream: false },
      );
      stream.on('error', () => {});
      stream.resume();
      let sent = 0;
      const timer = setInterval(() => {
        if (stream.closed || sent++ >= MAX_TRICKLED_BYTES) clearInterval(timer);
        else stream.write(' ');
      }, TRICKLE_EVERY_MS);
      timers.push(timer);
      await within(once(stream, 'close'), CUT_OFF_WITHIN_MS, 'the trickled HTTP/2 request');
      expect(stream.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    } finally {
      session.destroy();
    }
    await normalTrafficServed(server.url);
  }, 180_000);
});

describe('the per-client connection cap', () => {
  let server: TestServer;
  let port: number;
  const CAP = 5;
  beforeAll(async () => {
    // Long timeouts: here only the cap closes connections.
    server = await startTestServer({
      HEADERS_TIMEOUT_MS: '300000',
      REQUEST_BODY_TIMEOUT_MS: '300000',
      MAX_CONNECTIONS_PER_CLIENT: String(CAP),
    });
    port = server.service.port;
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('closes one address’s connections beyond the cap on arrival; other addresses are served', async () => {
    const sockets = await Promise.all(Array.from({ length: 3 * CAP }, () => connectFrom(port)));
    for (const socket of sockets) trickle(socket, byteByByte(slowHeaders));
    // Exactly the connections over the cap are closed; wait for them, whichever they are.
    const deadline = Date.now() + CUT_OFF_WITHIN_MS;
    while (sockets.filter((socket) => socket.closed).length < 2 * CAP) {
      if (Date.now() > deadline) throw new Error('connections over the cap were not closed');
      await new Promise((resolve) => setTimeout(resolve, TRICKLE_EVERY_MS));
    }
    await normalTrafficServed(server.url);
    expect(sockets.filter((socket) => !socket.closed)).toHaveLength(CAP);
  }, 120_000);
});

describe('TLS', () => {
  let server: TestServer;
  let cert: SelfSignedCert;
  let port: number;
  beforeAll(async () => {
    cert = await createSelfSignedCert();
    server = await startTestServer({
      TLS_CERT_FILE: cert.certFile,
      TLS_KEY_FILE: cert.keyFile,
      HEADERS_TIMEOUT_MS: '500',
      REQUEST_BODY_TIMEOUT_MS: '500',
    });
    port = server.service.port;
  });
  afterAll(async () => {
    await server?.stop();
    await cert?.remove();
  });

  async function tlsFrom(alpn: string): Promise<tls.TLSSocket> {
    const tcp = net.connect({ host: '127.0.0.1', port, localAddress: TRICKLER_ADDRESS });
    tcp.on('error', () => {});
    opened.push(tcp);
    const socket = tls.connect({
      socket: tcp,
      servername: 'localhost',
      ca: cert.cert,
      ALPNProtocols: [alpn],
    });
    socket.on('error', () => {});
    opened.push(socket);
    await once(socket, 'secureConnect');
    return socket;
  }

  it('cuts off a stalled handshake, an HTTP/1.1 header trickler and an idle HTTP/2 session', async () => {
    const noHandshake = await connectFrom(port);
    const headerTrickler = await tlsFrom('http/1.1');
    trickle(headerTrickler, byteByByte(slowHeaders));
    const h2Idler = await tlsFrom('h2');
    h2Idler.write(Buffer.concat([H2_PREFACE, H2_EMPTY_SETTINGS]));
    trickle(h2Idler, repeatedly(H2_PING));

    const ready = await new Promise<number | undefined>((resolve, reject) => {
      https
        .get(`${server.url}/readyz`, { ca: cert.cert }, (response) => {
          response.resume();
          resolve(response.statusCode);
        })
        .on('error', reject);
    });
    expect(ready).toBe(200);

    await closed(noHandshake, 'a TLS connection that never shakes hands');
    await closed(headerTrickler, 'an HTTP/1.1-over-TLS header trickler');
    await closed(h2Idler, 'an HTTP/2-over-TLS session that never sends a request');
  }, 120_000);
});
