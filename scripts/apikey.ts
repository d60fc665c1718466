/**
 * `npm run apikey -- <command>`: manages backends' API keys in DATABASE_URL (or the embedded database).
 *   create --name <name> --scopes <scope,scope>   prints the key once; only its hash is stored
 *   list                                          id, name, scopes, created, revoked
 *   revoke <id>
 */
import { parseArgs } from 'node:util';
import { createApiKey, listApiKeys, revokeApiKey } from '../src/auth/api-keys.js';
import { isScope, SCOPES, type Scope } from '../src/auth/caller.js';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/server/service.js';

const USAGE = `usage: npm run apikey -- create --name <name> --scopes <scope,...> | list | revoke <id>
scopes: ${SCOPES.join(', ')}`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { name: { type: 'string' }, scopes: { type: 'string' } },
  });
  const [command, ...rest] = positionals;
  const database = await openDatabase(loadConfig());
  try {
    switch (command) {
      case 'create': {
        const name = values.name?.trim();
        const scopes = (values.scopes ?? '')
          .split(',')
          .map((scope) => scope.trim())
          .filter((scope) => scope !== '');
        const unknown = scopes.filter((scope) => !isScope(scope));
        if (!name || scopes.length === 0 || unknown.length > 0) {
          throw new UsageError(
            unknown.length > 0 ? `unknown scopes: ${unknown.join(', ')}` : 'create needs --name and --scopes',
          );
        }
        const { id, key } = await createApiKey(database.db, name, scopes as Scope[]);
        console.log(`created API key ${id} (${name}) with scopes ${scopes.join(', ')}`);
        console.log(`key (shown once, send it as the x-api-key header): ${key}`);
        return;
      }
      case 'list':
        for (const key of await listApiKeys(database.db)) {
          const state = key.revokedAt ? `revoked ${key.revokedAt.toISOString()}` : 'active';
          console.log(
            `${key.id}  ${key.name}  [${key.scopes.join(' ')}]  created ${key.createdAt.toISOString()}  ${state}`,
          );
        }
        return;
      case 'revoke': {
        const [id] = rest;
        if (!id) throw new UsageError('revoke needs the key id');
        if (!(await revokeApiKey(database.db, id))) throw new UsageError(`no active API key ${id}`);
        console.log(`revoked API key ${id}`);
        return;
      }
      default:
        throw new UsageError(command ? `unknown command ${command}` : 'missing command');
    }
  } finally {
    await database.close();
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n${USAGE}`);
      process.exit(2);
    }
    console.error('apikey failed:', error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
