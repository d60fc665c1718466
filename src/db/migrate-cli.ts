/** `npm run db:migrate`: applies migrations to DATABASE_URL, or to the embedded database in DATA_DIR. */
import { loadConfig } from '../config.js';
import { openPglite, openPostgres } from './client.js';

const config = loadConfig();
const database = config.databaseUrl
  ? openPostgres({ url: config.databaseUrl, poolSize: 1 })
  : await openPglite(config.dataDir);
try {
  await database.migrate();
  console.log(`migrations applied (${database.kind === 'pglite' ? config.dataDir : 'DATABASE_URL'})`);
} finally {
  await database.close();
}
