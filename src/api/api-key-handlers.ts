/** Connect handlers for ApiKeyService: thin, like handlers.ts. */
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ConnectRouter } from '@connectrpc/connect';
import { type ApiKey, ApiKeySchema, ApiKeyService } from '../../gen/payment/v1/api_keys_pb.js';
import type { ApiKeysApp } from '../app/api-keys-app.js';
import type { ApiKeyInfo } from '../auth/api-keys.js';

function toApiKey(info: ApiKeyInfo): ApiKey {
  return create(ApiKeySchema, {
    id: info.id,
    name: info.name,
    scopes: info.scopes,
    createTime: timestampFromDate(info.createdAt),
    revokeTime: info.revokedAt ? timestampFromDate(info.revokedAt) : undefined,
  });
}

export function registerApiKeyService(router: ConnectRouter, app: ApiKeysApp): void {
  router.service(ApiKeyService, {
    async createApiKey(request, context) {
      const { info, key } = await app.create({ name: request.name, scopes: request.scopes, signal: context.signal });
      return { apiKey: toApiKey(info), key };
    },
    async listApiKeys() {
      return { apiKeys: (await app.list()).map(toApiKey) };
    },
    async revokeApiKey(request, context) {
      await app.revoke(request.id, context.signal);
      return {};
    },
  });
}
