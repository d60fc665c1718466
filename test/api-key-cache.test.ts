/**
 * Verified API keys are cached, yet a revocation takes effect at once on every replica sharing the database:
 * revokeApiKey NOTIFYs in its transaction and each server clears its cache. The TTL here is an hour, so only
 * the notification can explain a refusal.
 */
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApiKey, revokeApiKey } from '../src/auth/api-keys.js';
import type { RunningService } from '../src/server/start.js';
import { clientsFor } from './support/clients.js';
import { startTestReplica, startTestServer, type TestServer } from './support/server.js';

const LONG_TTL = { API_KEY_CACHE_TTL_MS: '3600000' };
const MISSING_ACCOUNT = 'acct_00000000000000000000000000';
const POLL_MS = 20;
const MAX_POLLS = 500;

let server: TestServer;
let replica: RunningService;
beforeAll(async () => {
  server = await startTestServer(LONG_TTL);
  replica = await startTestReplica(server.database.url, LONG_TTL);
});
afterAll(async () => {
  await replica?.close();
  await server?.stop();
});

/** NOT_FOUND means the key was accepted (the account does not exist); UNAUTHENTICATED that it was refused. */
async function codeWith(url: string, apiKey: string): Promise<Code> {
  return clientsFor('grpc', url, { apiKey })
    .accounts.getAccount({ accountId: MISSING_ACCOUNT })
    .then(
      () => Code.Unknown,
      (error: { code?: Code }) => error.code ?? Code.Unknown,
    );
}

it('serves a verified key from the cache, and a revocation on one replica refuses it on both', async () => {
  const urls = [server.url, replica.url];
  const { id, key } = await createApiKey(server.service.database.db, 'cached', ['payments:read']);
  for (const url of urls) expect(await codeWith(url, key)).toBe(Code.NotFound);

  // Revoked behind the servers' backs (no notification): the cache still believes the key. This is what
  // shows that the cache is in use, so that the next step tests revocation through it.
  await server.database.query('update api_keys set revoked_at = now() where id = $1', [id]);
  for (const url of urls) expect(await codeWith(url, key)).toBe(Code.NotFound);
  await server.database.query('update api_keys set revoked_at = null where id = $1', [id]);

  // Revoked the supported way, from the replica's side: both servers refuse it once the commit is heard.
  expect(await revokeApiKey(replica.database.db, id)).toBe(true);
  for (const url of urls) {
    let code = await codeWith(url, key);
    for (let poll = 0; poll < MAX_POLLS && code !== Code.Unauthenticated; poll++) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      code = await codeWith(url, key);
    }
    expect(code).toBe(Code.Unauthenticated);
  }
  expect(await revokeApiKey(replica.database.db, id)).toBe(false);
});
