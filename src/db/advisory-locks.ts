/**
 * Every PostgreSQL advisory lock key the service uses, in one place, so that two features can never pick
 * the same number by accident.
 */
export const AdvisoryLock = {
  /** Schema migration at start (session lock on a dedicated connection). */
  migrations: 727_001,
  /** The outbox publisher's leadership (session lock on a dedicated connection). */
  outboxPublisher: 727_002,
  /** One settlement run at a time (transaction lock). */
  settlementRun: 727_003,
} as const;
