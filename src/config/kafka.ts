/** Kafka connection and outbox publisher settings (src/outbox/). */
import { ConfigError, type Env, readBool, readInt, reportConfigError } from './env.js';

export type KafkaSaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

/** The outbox publisher's broker connection; unset KAFKA_BROKERS = events go to the log (src/outbox/). */
export interface KafkaConfig {
  brokers: string[];
  clientId: string;
  ssl: boolean;
  sasl: { mechanism: KafkaSaslMechanism; username: string; password: string } | undefined;
}

export interface OutboxConfig {
  /** Topic per event family; which aggregate goes where is src/outbox/routing.ts. */
  topics: { accounts: string; payments: string };
  batchSize: number;
  /** Fallback when no NOTIFY arrives (and the only trigger on the embedded database). */
  pollIntervalMs: number;
  /**
   * How long a woken publisher waits before reading the table (Kafka's producer calls this linger.ms): under
   * load a commit arrives every millisecond or so, and gathering them costs one read and one update per
   * linger instead of per commit. It is added to each event's delay; 0 reads at once.
   */
  lingerMs: number;
  /** How often a standby replica tries to become the publisher: the bound on a takeover. */
  leaderRetryMs: number;
  /** Cap of the exponential backoff between failed publish attempts. */
  retryMaxMs: number;
  /** A row failing this many times is reported with a warning (and still retried, never skipped). */
  warnAfterAttempts: number;
  /** The oldest unpublished event older than this is logged as lag. */
  lagWarnMs: number;
  /** Published rows are deleted after this long. */
  retentionMs: number;
}

const SASL_MECHANISMS: readonly KafkaSaslMechanism[] = ['plain', 'scram-sha-256', 'scram-sha-512'];
// Kafka's own rules for topic names and (by convention) client ids.
const KAFKA_NAME = /^[A-Za-z0-9._-]{1,249}$/;

function readKafkaName(env: Env, name: string, fallback: string): string {
  const raw = env[name] || fallback;
  if (KAFKA_NAME.test(raw)) return raw;
  reportConfigError(new ConfigError(name, `must be 1-249 of A-Z a-z 0-9 . _ -, got "${raw}"`));
  return fallback;
}

/**
 * The broker connection, or undefined when KAFKA_BROKERS is unset (events go to the log). Every problem is
 * reported (reportConfigError), not only the first.
 */
export function readKafka(env: Env): KafkaConfig | undefined {
  const raw = env.KAFKA_BROKERS;
  if (raw === undefined || raw.trim() === '') {
    for (const name of ['KAFKA_SASL_MECHANISM', 'KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD']) {
      if (env[name]) reportConfigError(new ConfigError('KAFKA_BROKERS', `must be set when ${name} is`));
    }
    return undefined;
  }
  return {
    brokers: readBrokers(raw),
    clientId: readKafkaName(env, 'KAFKA_CLIENT_ID', 'payment-ledger'),
    ssl: readBool(env, 'KAFKA_SSL', false),
    sasl: readSasl(env),
  };
}

function readBrokers(raw: string): string[] {
  const brokers = raw
    .split(',')
    .map((broker) => broker.trim())
    .filter((broker) => broker !== '');
  if (brokers.length === 0) {
    reportConfigError(new ConfigError('KAFKA_BROKERS', `must name at least one host:port, got "${raw}"`));
  }
  for (const broker of brokers) {
    const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(broker);
    const port = Number(match?.[2]);
    if (!match || port < 1 || port > 65535) {
      reportConfigError(new ConfigError('KAFKA_BROKERS', `must be a comma list of host:port, got "${broker}"`));
    }
  }
  return brokers;
}

function readSasl(env: Env): KafkaConfig['sasl'] {
  const mechanism = env.KAFKA_SASL_MECHANISM || undefined;
  const username = env.KAFKA_SASL_USERNAME || undefined;
  const password = env.KAFKA_SASL_PASSWORD || undefined;
  if (mechanism === undefined) {
    if (username || password) {
      const problem = 'must be set when KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is';
      reportConfigError(new ConfigError('KAFKA_SASL_MECHANISM', problem));
    }
    return undefined;
  }
  if (!(SASL_MECHANISMS as readonly string[]).includes(mechanism)) {
    const problem = `must be one of ${SASL_MECHANISMS.join(', ')}, got "${mechanism}"`;
    reportConfigError(new ConfigError('KAFKA_SASL_MECHANISM', problem));
  }
  if (!username) reportConfigError(new ConfigError('KAFKA_SASL_USERNAME', 'must be set when KAFKA_SASL_MECHANISM is'));
  if (!password) reportConfigError(new ConfigError('KAFKA_SASL_PASSWORD', 'must be set when KAFKA_SASL_MECHANISM is'));
  if (!username || !password) return undefined;
  return { mechanism: mechanism as KafkaSaslMechanism, username, password };
}

export function readOutbox(env: Env): OutboxConfig {
  return {
    topics: {
      accounts: readKafkaName(env, 'KAFKA_TOPIC_ACCOUNTS', 'payment.events.v1.accounts'),
      payments: readKafkaName(env, 'KAFKA_TOPIC_PAYMENTS', 'payment.events.v1.payments'),
    },
    batchSize: readInt(env, 'OUTBOX_BATCH_SIZE', 500, 1, 10_000),
    pollIntervalMs: readInt(env, 'OUTBOX_POLL_INTERVAL_MS', 1_000, 10, 600_000),
    lingerMs: readInt(env, 'OUTBOX_LINGER_MS', 20, 0, 1_000),
    leaderRetryMs: readInt(env, 'OUTBOX_LEADER_RETRY_MS', 5_000, 10, 600_000),
    retryMaxMs: readInt(env, 'OUTBOX_RETRY_MAX_MS', 30_000, 10, 3_600_000),
    warnAfterAttempts: readInt(env, 'OUTBOX_WARN_AFTER_ATTEMPTS', 5, 1, 1_000_000),
    lagWarnMs: readInt(env, 'OUTBOX_LAG_WARN_MS', 60_000, 1, 86_400_000),
    retentionMs: readInt(env, 'OUTBOX_RETENTION_HOURS', 72, 1, 24 * 365) * 3_600_000,
  };
}
