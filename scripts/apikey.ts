/**
 * `npm run apikey -- <command>`: manages backends' API keys.
 *   create --name <name> --scopes <scope,scope>   prints the key once; only its hash is stored
 *   list                                          id, name, scopes, created, revoked
 *   revoke <id>
 *
 * With an admin key (LEDGER_ADMIN_KEY or --admin-key, scope admin:keys) and a server running (LEDGER_URL or
 * --server, else http://HOST:PORT from the server's own settings answering /healthz) the command goes through
 * its ApiKeyService. Otherwise it writes to DATABASE_URL directly (shared with every replica, so this is how
 * a deployment's first key is made) or, with no server running, to the embedded database. It refuses to
 * write to the embedded database behind a running server, which would never see the change.
 */
import { parseArgs } from 'node:util';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { type Client, Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { ApiKeyService } from '../gen/payment/v1/api_keys_pb.js';
import { type ApiKeyInfo, createApiKey, listApiKeys, revokeApiKey } from '../src/auth/api-keys.js';
import { isScope, SCOPES, type Scope } from '../src/auth/caller.js';
import { type DatabaseSettings, loadDatabaseSettings } from '../src/config/database.js';
import { openDatabase } from '../src/db/client.js';

const USAGE = `usage: npm run apikey -- [--server <url>] [--admin-key <key>] create --name <name> --scopes <scope,...> | list | revoke <id>
scopes: ${SCOPES.join(', ')}
With a server running, the admin key (scope admin:keys) may also come from LEDGER_ADMIN_KEY.`;
const PROBE_TIMEOUT_MS = 1_000;

class UsageError extends Error {}

type Command =
  | { kind: 'create'; name: string; scopes: Scope[]; quiet: boolean }
  | { kind: 'list' }
  | { kind: 'revoke'; id: string };

/** What both paths do with a command; each prints its own result lines. */
interface KeyStore {
  create(name: string, scopes: Scope[]): Promise<{ id: string; key: string }>;
  list(): Promise<ApiKeyInfo[]>;
  /** False when there is no such active key. */
  revoke(id: string): Promise<boolean>;
  close(): Promise<void>;
}

function parseCommand(positionals: string[], values: { name?: string; scopes?: string; quiet?: boolean }): Command {
  const [command, ...rest] = positionals;
  switch (command) {
    case 'create': {
      const name = values.name?.trim();
      const scopes = (values.scopes ?? '')
        .split(',')
        .map((scope) => scope.trim())
        .filter((scope) => scope !== '');
      const unknown = scopes.filter((scope) => !isScope(scope));
      if (unknown.length > 0) throw new UsageError(`unknown scopes: ${unknown.join(', ')}`);
      if (!name || scopes.length === 0) throw new UsageError('create needs --name and --scopes');
      return { kind: 'create', name, scopes: scopes as Scope[], quiet: values.quiet === true };
    }
    case 'list':
      return { kind: 'list' };
    case 'revoke': {
      const [id] = rest;
      if (!id) throw new UsageError('revoke needs the key id');
      return { kind: 'revoke', id };
    }
    default:
      throw new UsageError(command ? `unknown command ${command}` : 'missing command');
  }
}

/** The running server's base URL, or undefined when none answers. */
async function runningServer(explicit: string | undefined): Promise<string | undefined> {
  if (explicit) return explicit.replace(/\/+$/, '');
  const host = process.env.HOST || '127.0.0.1';
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${process.env.PORT || '8080'}`;
  try {
    const response = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    return response.ok ? base : undefined;
  } catch {
    return undefined;
  }
}

function serverStore(baseUrl: string, adminKey: string): KeyStore {
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: '1.1',
    interceptors: [
      (next) => (request) => {
        request.header.set('x-api-key', adminKey);
        return next(request);
      },
    ],
  });
  const client: Client<typeof ApiKeyService> = createClient(ApiKeyService, transport);
  return {
    async create(name, scopes) {
      const { apiKey, key } = await client.createApiKey({ name, scopes });
      return { id: apiKey?.id ?? '', key };
    },
    async list() {
      const { apiKeys } = await client.listApiKeys({});
      return apiKeys.map((key) => ({
        id: key.id,
        name: key.name,
        scopes: key.scopes.filter(isScope),
        createdAt: key.createTime ? timestampDate(key.createTime) : new Date(0),
        revokedAt: key.revokeTime ? timestampDate(key.revokeTime) : null,
      }));
    },
    async revoke(id) {
      try {
        await client.revokeApiKey({ id });
        return true;
      } catch (error) {
        if (ConnectError.from(error).code === Code.NotFound) return false;
        throw error;
      }
    },
    close: async () => {},
  };
}

async function databaseStore(settings: DatabaseSettings): Promise<KeyStore> {
  const database = await openDatabase(settings);
  return {
    create: (name, scopes) => createApiKey(database.db, name, scopes),
    list: () => listApiKeys(database.db),
    revoke: (id) => revokeApiKey(database.db, id),
    close: () => database.close(),
  };
}

async function run(store: KeyStore, command: Command): Promise<void> {
  switch (command.kind) {
    case 'create': {
      const { id, key } = await store.create(command.name, command.scopes);
      if (command.quiet) {
        console.log(key);
        return;
      }
      console.log(`created API key ${id} (${command.name}) with scopes ${command.scopes.join(', ')}`);
      console.log(`key (shown once, send it as the x-api-key header): ${key}`);
      return;
    }
    case 'list':
      for (const key of await store.list()) {
        const state = key.revokedAt ? `revoked ${key.revokedAt.toISOString()}` : 'active';
        console.log(
          `${key.id}  ${key.name}  [${key.scopes.join(' ')}]  created ${key.createdAt.toISOString()}  ${state}`,
        );
      }
      return;
    case 'revoke':
      if (!(await store.revoke(command.id))) throw new UsageError(`no active API key ${command.id}`);
      console.log(`revoked API key ${command.id}`);
      return;
  }
}

async function main(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      scopes: { type: 'string' },
      server: { type: 'string' },
      'admin-key': { type: 'string' },
      quiet: { type: 'boolean' },
    },
  });
  const command = parseCommand(positionals, values);
  const server = await runningServer(values.server ?? process.env.LEDGER_URL);
  const adminKey = values['admin-key'] || process.env.LEDGER_ADMIN_KEY;
  const settings = loadDatabaseSettings();
  let store: KeyStore;
  if (server && adminKey) {
    store = serverStore(server, adminKey);
  } else if (server && !settings.databaseUrl) {
    // The embedded database belongs to the running server: a write from here would never reach it.
    throw new UsageError(
      `a server is running at ${server} on the embedded database: keys are managed through it. Pass an API key ` +
        'with the scope admin:keys in LEDGER_ADMIN_KEY or --admin-key (the start banner prints one).',
    );
  } else {
    // PostgreSQL is shared with any running replicas, which see the change at once (this is how the first
    // key of a deployment is made).
    store = await databaseStore(settings);
  }
  try {
    await run(store, command);
  } finally {
    await store.close();
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n${USAGE}`);
      process.exit(2);
    }
    const message =
      error instanceof ConnectError
        ? `${error.code}: ${error.rawMessage}`
        : error instanceof Error
          ? error.message
          : error;
    console.error('apikey failed:', message);
    process.exit(1);
  },
);
