/**
 * A real Kafka-protocol broker for tests: librdkafka's mock cluster, run by `kcat` (installed by
 * scripts/ensure-services.sh), one per test file, with the proxy from kafka-proxy.ts in front of it.
 *
 *   brokers        the proxy's address: what the service under test is given (KAFKA_BROKERS)
 *   directBrokers  the mock itself: what the tests' own consumers use, so cutting the proxy never blinds them
 *
 * Topics are created on first use (the mock does not implement CreateTopics).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { type Consumer, type IHeaders, Kafka, logLevel } from 'kafkajs';
import { type KafkaProxy, startKafkaProxy } from './kafka-proxy.js';

const STARTUP_TIMEOUT_MS = 10_000;

export interface MockKafka {
  brokers: string;
  directBrokers: string;
  proxy: KafkaProxy;
  stop(): Promise<void>;
}

export async function startMockKafka(): Promise<MockKafka> {
  // -C on a dummy topic keeps kcat (and with it the mock cluster) running until it is killed.
  const child = spawn(
    'kcat',
    ['-b', '127.0.0.1:1', '-X', 'test.mock.num.brokers=1', '-d', 'mock', '-C', '-t', 'keepalive', '-q'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let directBrokers: string;
  try {
    directBrokers = await bootstrapOf(child);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const [host, port] = directBrokers.split(':');
  const proxy = await startKafkaProxy({ host: host!, port: Number(port) });
  return {
    brokers: proxy.address,
    directBrokers,
    proxy,
    stop: async () => {
      await proxy.close();
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

/** kcat prints `… bootstrap.servers=127.0.0.1:PORT` on stderr (debug=mock); a new port each run. */
function bootstrapOf(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    let found = false;
    const timer = setTimeout(() => {
      reject(new Error(`kcat mock cluster did not print its bootstrap address in ${STARTUP_TIMEOUT_MS} ms: ${seen}`));
    }, STARTUP_TIMEOUT_MS);
    // Keep draining stderr for the life of the process: the mock logs every request, and a full pipe would
    // block the broker.
    child.stderr?.on('data', (chunk: Buffer) => {
      if (found) return;
      seen += chunk.toString();
      const match = /bootstrap\.servers=([\d.]+:\d+)/.exec(seen);
      if (match) {
        found = true;
        clearTimeout(timer);
        resolve(match[1]!);
      } else if (seen.length > 64 * 1024) {
        seen = seen.slice(-4096);
      }
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run kcat (is it installed? see scripts/ensure-services.sh): ${error.message}`));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (!found) reject(new Error(`kcat exited with ${code} before the mock cluster started: ${seen}`));
    });
  });
}

export interface ReceivedMessage {
  topic: string;
  partition: number;
  offset: bigint;
  key: string | undefined;
  value: Buffer;
  headers: Record<string, string>;
}

export interface EventCollector {
  messages: ReceivedMessage[];
  /**
   * Polls until `condition` holds or the bounded wait is over (then throws with `what`, and what `explain`
   * says about the state it gave up in).
   */
  waitFor(
    condition: (messages: ReceivedMessage[]) => boolean,
    what: string,
    timeoutMs?: number,
    explain?: () => string | Promise<string>,
  ): Promise<number>;
  stop(): Promise<void>;
}

export function headersOf(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(',') : value.toString();
  }
  return out;
}

/** A consumer (own group, from the beginning) that keeps every message of `topics` in arrival order. */
export async function collectEvents(brokers: string, topics: string[]): Promise<EventCollector> {
  const kafka = new Kafka({ clientId: 'test-collector', brokers: [brokers], logLevel: logLevel.NOTHING });
  const consumer: Consumer = kafka.consumer({
    groupId: `test-${randomUUID()}`,
    // The mock cluster is fast; short waits make the tests quick without changing what they check.
    maxWaitTimeInMs: 100,
    heartbeatInterval: 500,
    sessionTimeout: 10_000,
    rebalanceTimeout: 10_000,
  });
  const messages: ReceivedMessage[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      messages.push({
        topic,
        partition,
        offset: BigInt(message.offset),
        key: message.key?.toString(),
        value: message.value ?? Buffer.alloc(0),
        headers: headersOf(message.headers),
      });
    },
  });
  return {
    messages,
    waitFor: (condition, what, timeoutMs = 20_000, explain) =>
      waitUntil(() => condition(messages), what, timeoutMs, explain),
    stop: () => consumer.disconnect(),
  };
}

/**
 * Polls `condition` every 25 ms until it is true; throws after `timeoutMs`. No fixed sleeps. The error names
 * `what` and, when given, what `explain` reports at that moment (what was seen instead), so that a wait that
 * gives up on a busy machine says why.
 */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
  explain?: () => string | Promise<string>,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await condition()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) {
      const seen = explain
        ? await Promise.resolve()
            .then(explain)
            .catch((error) => `(no details: ${error})`)
        : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${seen ? `\n${seen}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
