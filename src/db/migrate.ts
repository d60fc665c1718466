/**
 * Applies drizzle-kit's migrations from drizzle/ at start. Several replicas may start at once, so on
 * PostgreSQL the migration runs under an advisory lock on one dedicated connection.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzleNodePg } from 'drizzle-orm/node-postgres';
import { migrate as migrateNodePg } from 'drizzle-orm/node-postgres/migrator';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePgliteWithDrizzle } from 'drizzle-orm/pglite/migrator';
import pg from 'pg';
import { AdvisoryLock } from './advisory-locks.js';

const MAX_PARENT_LEVELS = 6;

/** drizzle/ sits at the package root, which is two levels up from src/db and three from dist/src/db. */
export function migrationsFolder(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let level = 0; level < MAX_PARENT_LEVELS; level++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'drizzle'))) return join(dir, 'drizzle');
    dir = dirname(dir);
  }
  throw new Error(`cannot find the drizzle/ migrations folder above ${fileURLToPath(import.meta.url)}`);
}

export async function migratePostgres(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  // Failures surface as the rejected query below; an 'error' event alone must not crash the process.
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [AdvisoryLock.migrations]);
    await migrateNodePg(drizzleNodePg(client), { migrationsFolder: migrationsFolder() });
    await client.query('select pg_advisory_unlock($1)', [AdvisoryLock.migrations]);
  } finally {
    await client.end();
  }
}

/** PGlite is one connection in one process: nothing can race the migration. */
export async function migratePglite(client: PGlite): Promise<void> {
  await migratePgliteWithDrizzle(drizzlePglite(client), { migrationsFolder: migrationsFolder() });
}
