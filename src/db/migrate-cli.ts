/**
 * `npm run db:migrate`: applies migrations to DATABASE_URL, or to the embedded database in DATA_DIR. Needs
 * only the database settings. Exits 2 with a message naming the variable when they are wrong.
 */

import { loadDatabaseSettings } from '../config/database.js';
import { ConfigError } from '../config/env.js';
import { openDatabase } from './client.js';

try {
  const settings = loadDatabaseSettings();
  const database = await openDatabase(Object.assign({}, settings, { dbPoolSize: 1 }));
  await database.close();
  console.log(`migrations applied (${settings.databaseUrl ? 'DATABASE_URL' : settings.dataDir})`);
} catch (error) {
  console.error(
    error instanceof ConfigError ? error.message : `migration failed: ${(error as Error)?.message ?? error}`,
  );
  process.exit(error instanceof ConfigError ? 2 : 1);
}
