/**
 * A TCP proxy in front of librdkafka's single-broker mock cluster, so a test can cut the network between the
 * service and the broker while the broker (and the data it holds) keeps running.
 *
 * Kafka clients connect to the bootstrap address once and then to the broker addresses that Metadata
 * responses advertise; the mock advertises its own port, which would bypass a plain proxy. So this proxy
 * reads the Kafka framing (int32 size + payload) in both directions, remembers which request each correlation
 * id belonged to, and rewrites every Metadata response in place: each advertised broker's port becomes the
 * proxy's port (same width, so no length changes). It also fixes one quirk of the mock: it reports
 * controller id 0, a broker that does not exist, which kafkajs's idempotent producer needs (it sends
 * InitProducerId to the controller); the proxy reports the first advertised broker instead, as a real
 * one-broker cluster would.
 *
 * Only non-flexible Metadata versions (v1–v8) are rewritten; kafkajs 2.2.4 speaks at most v6.
 * With a one-broker mock every advertised broker is that broker, so one proxy port serves them all.
 */
import net from 'node:net';

const METADATA_API_KEY = 3;
const MAX_NONFLEXIBLE_METADATA_VERSION = 8;

export interface KafkaProxy {
  /** host:port to give to the client instead of the broker's. */
  address: string;
  port: number;
  /** Cuts every open connection and refuses new ones (accepted, then reset) until up(). */
  down(): void;
  up(): void;
  isDown(): boolean;
  /** Connections accepted while up, so a test can see that the client really reconnected. */
  connectionsAccepted(): number;
  close(): Promise<void>;
}

/** Splits a byte stream into Kafka frames (the 4-byte size prefix included). */
class FrameReader {
  private buffered: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const frames: Buffer[] = [];
    while (this.buffered.length >= 4) {
      const size = this.buffered.readInt32BE(0);
      if (this.buffered.length < 4 + size) break;
      frames.push(this.buffered.subarray(0, 4 + size));
      this.buffered = this.buffered.subarray(4 + size);
    }
    return frames;
  }
}

/** Rewrites a Metadata response frame in place; `version` is the request's api version. */
export function rewriteMetadataResponse(frame: Buffer, version: number, proxyPort: number): void {
  // frame: size(4) correlation_id(4) [throttle_time_ms(4) if v3+] brokers...
  let offset = 8;
  if (version >= 3) offset += 4;
  const brokerCount = frame.readInt32BE(offset);
  offset += 4;
  let firstNodeId: number | undefined;
  const nodeIds = new Set<number>();
  for (let index = 0; index < brokerCount; index++) {
    const nodeId = frame.readInt32BE(offset);
    firstNodeId ??= nodeId;
    nodeIds.add(nodeId);
    offset += 4;
    const hostLength = frame.readInt16BE(offset);
    offset += 2 + hostLength;
    frame.writeInt32BE(proxyPort, offset);
    offset += 4;
    if (version >= 1) {
      const rackLength = frame.readInt16BE(offset);
      offset += 2 + Math.max(rackLength, 0);
    }
  }
  if (version >= 2) {
    const clusterIdLength = frame.readInt16BE(offset);
    offset += 2 + Math.max(clusterIdLength, 0);
  }
  if (version >= 1 && firstNodeId !== undefined) {
    const controllerId = frame.readInt32BE(offset);
    if (!nodeIds.has(controllerId)) frame.writeInt32BE(firstNodeId, offset);
  }
}

export async function startKafkaProxy(upstream: { host: string; port: number }): Promise<KafkaProxy> {
  const sockets = new Set<net.Socket>();
  let isDown = false;
  let accepted = 0;
  let proxyPort = 0;

  const server = net.createServer((client) => {
    if (isDown) {
      client.resetAndDestroy();
      return;
    }
    accepted++;
    const broker = net.connect(upstream.port, upstream.host);
    sockets.add(client);
    sockets.add(broker);
    const metadataVersions = new Map<number, number>();
    const requests = new FrameReader();
    const responses = new FrameReader();
    const closeBoth = () => {
      client.destroy();
      broker.destroy();
      sockets.delete(client);
      sockets.delete(broker);
    };
    client.on('data', (chunk: Buffer) => {
      for (const frame of requests.push(chunk)) {
        // Request header: size(4) api_key(2) api_version(2) correlation_id(4) …
        if (frame.length >= 12 && frame.readInt16BE(4) === METADATA_API_KEY) {
          metadataVersions.set(frame.readInt32BE(8), frame.readInt16BE(6));
        }
        broker.write(frame);
      }
    });
    broker.on('data', (chunk: Buffer) => {
      for (const frame of responses.push(chunk)) {
        const correlationId = frame.readInt32BE(4);
        const version = metadataVersions.get(correlationId);
        if (version !== undefined) {
          metadataVersions.delete(correlationId);
          if (version > MAX_NONFLEXIBLE_METADATA_VERSION) {
            // Cannot rewrite it: refuse loudly rather than let the client slip past the proxy.
            console.error(`kafka proxy: flexible Metadata v${version} is not supported; closing the connection`);
            closeBoth();
            return;
          }
          rewriteMetadataResponse(frame, version, proxyPort);
        }
        client.write(frame);
      }
    });
    client.on('error', closeBoth);
    broker.on('error', closeBoth);
    client.on('close', closeBoth);
    broker.on('close', closeBoth);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('kafka proxy: no port');
  proxyPort = address.port;

  return {
    address: `127.0.0.1:${proxyPort}`,
    port: proxyPort,
    down() {
      isDown = true;
      for (const socket of sockets) socket.resetAndDestroy();
      sockets.clear();
    },
    up() {
      isDown = false;
    },
    isDown: () => isDown,
    connectionsAccepted: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        sockets.clear();
        server.close(() => resolve());
      }),
  };
}
