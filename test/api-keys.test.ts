/**
 * API keys managed while the server runs: ApiKeyService creates, lists and revokes; a revoked key is refused
 * at once by this replica and by another one on the same database; the CLI goes through the running server.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Code, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyService } from '../gen/payment/v1/api_keys_pb.js';
import type { RunningService } from '../src/server/start.js';
import { connectErrorOf } from './support/calls.js';
import { clientsFor } from './support/clients.js';
import { registerBackendKey } from './support/credentials.js';
import { startTestReplica, startTestServer, type TestServer } from './support/server.js';
import { REPO_ROOT, serviceEnv } from './support/service-process.js';

const run = promisify(execFile);

let server: TestServer;
let replica: RunningService;
beforeAll(async () => {
  server = await startTestServer();
  replica = await startTestReplica(server.database.url);
});
afterAll(async () => {
  await replica?.close();
  await server?.stop();
});

const keysClient = (baseUrl: string, apiKey: string) =>
  createClient(
    ApiKeyService,
    createGrpcTransport({
      baseUrl,
      interceptors: [
        (next) => (request) => {
          request.header.set('x-api-key', apiKey);
          return next(request);
        },
      ],
    }),
  );

/** What a call with `apiKey` gets: NOT_FOUND for a missing account means it was let in. */
async function codeWith(baseUrl: string, apiKey: string): Promise<Code> {
  const error = await connectErrorOf(
    clientsFor('grpc', baseUrl, { apiKey }).accounts.getAccount({ accountId: 'acct_x' }),
  );
  return error.code;
}

describe('ApiKeyService', () => {
  it('creates a key the server accepts at once, lists it, and revokes it on every replica at once', async () => {
    const admin = keysClient(server.url, server.backendKey);
    const { apiKey, key } = await admin.createApiKey({ name: 'reporting', scopes: ['payments:read'] });
    expect(key).toMatch(/^plk_[0-9a-f]{16}_/);
    expect(apiKey).toMatchObject({ name: 'reporting', scopes: ['payments:read'] });
    expect(await codeWith(server.url, key)).toBe(Code.NotFound);
    expect(await codeWith(replica.url, key)).toBe(Code.NotFound);

    const listed = (await admin.listApiKeys({})).apiKeys.find((entry) => entry.id === apiKey!.id);
    expect(listed?.revokeTime).toBeUndefined();

    await admin.revokeApiKey({ id: apiKey!.id });
    expect(await codeWith(server.url, key)).toBe(Code.Unauthenticated);
    expect(await codeWith(replica.url, key)).toBe(Code.Unauthenticated);
    const after = (await admin.listApiKeys({})).apiKeys.find((entry) => entry.id === apiKey!.id);
    expect(after?.revokeTime).toBeDefined();
    expect((await connectErrorOf(admin.revokeApiKey({ id: apiKey!.id }))).code).toBe(Code.NotFound);
  });

  it('needs the admin:keys scope and refuses bad input', async () => {
    const reader = await registerBackendKey(server.service, ['payments:read']);
    // registerBackendKey makes the newest key the server's default: give it back its all-scopes one.
    await registerBackendKey(server.service);
    const denied = await connectErrorOf(keysClient(server.url, reader).listApiKeys({}));
    expect(denied.code).toBe(Code.PermissionDenied);

    const admin = keysClient(server.url, server.backendKey);
    const unknownScope = await connectErrorOf(admin.createApiKey({ name: 'x', scopes: ['root'] }));
    expect(unknownScope.code).toBe(Code.InvalidArgument);
    expect(unknownScope.rawMessage).toContain('root');
    expect((await connectErrorOf(admin.createApiKey({ name: '', scopes: ['payments:read'] }))).code).toBe(
      Code.InvalidArgument,
    );
    expect((await connectErrorOf(admin.createApiKey({ name: 'x', scopes: [] }))).code).toBe(Code.InvalidArgument);
    expect((await connectErrorOf(admin.revokeApiKey({ id: "'; drop table api_keys" }))).code).toBe(
      Code.InvalidArgument,
    );
  });
});

describe('npm run apikey with a server running', () => {
  it('creates and revokes through the server, which enforces both at once', async () => {
    const env = serviceEnv({
      DATABASE_URL: server.database.url,
      LEDGER_URL: server.url,
      LEDGER_ADMIN_KEY: server.backendKey,
    });
    const cli = (...args: string[]) =>
      run(process.execPath, ['--import', 'tsx', 'scripts/apikey.ts', ...args], {
        cwd: REPO_ROOT,
        env,
        timeout: 60_000,
      });
    const created = await cli('create', '--name', 'cli-made', '--scopes', 'payments:read');
    const key = /key \(shown once[^)]*\): (\S+)/.exec(created.stdout)?.[1];
    const id = /created API key ([0-9a-f]{16})/.exec(created.stdout)?.[1];
    expect(key, created.stdout).toBeDefined();
    expect(await codeWith(server.url, key!)).toBe(Code.NotFound);

    expect((await cli('list')).stdout).toMatch(new RegExp(`${id}\\s+cli-made\\s+\\[payments:read\\].*active`));
    await cli('revoke', id!);
    expect(await codeWith(server.url, key!)).toBe(Code.Unauthenticated);
    expect(await codeWith(replica.url, key!)).toBe(Code.Unauthenticated);
  });

  it('on the embedded database without an admin key, says so instead of writing behind the server', async () => {
    // No DATABASE_URL: as the CLI sees it, the running server owns the embedded database.
    const env = serviceEnv({ LEDGER_URL: server.url, LEDGER_ADMIN_KEY: '' });
    const failed = await run(process.execPath, ['--import', 'tsx', 'scripts/apikey.ts', 'list'], {
      cwd: REPO_ROOT,
      env,
      timeout: 60_000,
    }).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed?.code).toBe(2);
    expect(failed?.stderr).toContain('LEDGER_ADMIN_KEY');
  });

  it('on PostgreSQL without an admin key, writes to the shared database, which the server sees at once', async () => {
    const env = serviceEnv({ DATABASE_URL: server.database.url, LEDGER_URL: server.url, LEDGER_ADMIN_KEY: '' });
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', 'scripts/apikey.ts', 'create', '--quiet', '--name', 'first', '--scopes', 'payments:read'],
      { cwd: REPO_ROOT, env, timeout: 60_000 },
    );
    expect(await codeWith(server.url, stdout.trim())).toBe(Code.NotFound);
  });
});
