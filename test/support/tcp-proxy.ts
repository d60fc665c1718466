/**
 * A plain TCP proxy in front of a real server (Redis, in the rate limiter's tests), so that a test can take
 * the server away and bring it back on the same address while the server and its data keep running:
 * stop() closes the listener and destroys every open connection; start() listens on the same port again.
 * stall() keeps connections open but holds the target's replies back (as a hung or overloaded server would)
 * until resume() delivers them, in order, as TCP would.
 */
import { once } from 'node:events';
import net from 'node:net';

export interface TcpProxy {
  port: number;
  url(scheme: string): string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Replies from the target are held back until resume() (requests still reach it). */
  stall(): void;
  resume(): void;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let stalled = false;
  const held: { client: net.Socket; chunk: Buffer }[] = [];
  let server: net.Server | undefined;
  let port = 0;

  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };

  const listen = async () => {
    const listener = net.createServer((client) => {
      const upstream = net.connect(targetPort, targetHost);
      track(client);
      track(upstream);
      client.on('data', (chunk) => upstream.write(chunk));
      upstream.on('data', (chunk) => {
        if (stalled) held.push({ client, chunk });
        else client.write(chunk);
      });
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
    });
    listener.listen(port, '127.0.0.1');
    await once(listener, 'listening');
    const address = listener.address();
    port = typeof address === 'object' && address ? address.port : port;
    server = listener;
  };

  await listen();
  return {
    get port() {
      return port;
    },
    url: (scheme) => `${scheme}://127.0.0.1:${port}`,
    start: async () => {
      if (server === undefined) await listen();
    },
    stop: async () => {
      const listener = server;
      server = undefined;
      for (const socket of sockets) socket.destroy();
      if (listener) await new Promise<void>((done) => listener.close(() => done()));
    },
    stall: () => {
      stalled = true;
    },
    resume: () => {
      stalled = false;
      for (const { client, chunk } of held.splice(0)) if (!client.destroyed) client.write(chunk);
    },
  };
}
