/** Entry point: `npm start`. Reads config once, starts the service, stops cleanly on SIGTERM/SIGINT. */
import { type Config, ConfigError, loadConfig } from './config.js';
import { demoBanner, demoCredentials, seedDemoAccounts } from './demo/seed.js';
import { startService } from './server/start.js';

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }

  const service = await startService(config);
  const log = service.fastify.log;
  log.info(
    { url: service.url, database: service.database.kind === 'pglite' ? `embedded (${config.dataDir})` : 'postgres' },
    'payment ledger listening: gRPC, gRPC-Web and Connect on one port',
  );
  // Before the demo data: a SIGTERM while it is being created must still shut down cleanly.
  let signals = 0;
  const stop = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    log.info({ signal }, 'shutting down: draining in-flight requests');
    service.close().then(
      () => {
        log.info('shut down cleanly');
        process.exit(0);
      },
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (config.seedDemoData) {
    // Demo data is a convenience: if it cannot be created, the server still serves.
    try {
      const demo = await seedDemoAccounts(service.database.db, service.app);
      const credentials = service.devKeyPair
        ? await demoCredentials(service.database.db, service.devKeyPair, demo)
        : undefined;
      process.stdout.write(await demoBanner(service.url, service.app, demo, credentials, config.tls?.certFile));
    } catch (error) {
      log.warn({ err: error }, 'could not create the demo accounts');
    }
  }
}

main().catch((error: unknown) => {
  // A setting found wrong only while starting (the database named, the port taken) exits like any other.
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(2);
  }
  console.error('failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
