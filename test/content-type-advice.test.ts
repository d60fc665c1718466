/**
 * The refusal of a content type tells the client what the METHOD takes. A Connect client posting
 * application/json to the server-streaming WatchAccount was told: unsupported content type
 * "application/json": use application/json or ... — advice it had already followed, while the method takes
 * only Connect's streaming types (application/connect+json, application/connect+proto).
 */
import { expect, it } from 'vitest';
import { serverForFile } from './support/server.js';

const server = serverForFile();

async function refusedWith(path: string, contentType: string) {
  const response = await fetch(`${server.url}/${path}`, {
    method: 'POST',
    headers: { 'x-api-key': server.backendKey, 'content-type': contentType, 'connect-protocol-version': '1' },
    body: Buffer.from('{}'),
  });
  return { status: response.status, body: (await response.json()) as { code?: string; message?: string } };
}

it('a streaming method sent a unary Connect type is told the streaming types', async () => {
  const { status, body } = await refusedWith('payment.v1.PaymentService/WatchAccount', 'application/json');
  expect(status).toBe(415);
  expect(body.code).toBe('invalid_argument');
  expect(body.message).toContain('application/connect+json');
  expect(body.message).not.toMatch(/use application\/json/);
});

it('a unary method sent a streaming Connect type is told the unary types', async () => {
  const response = await fetch(`${server.url}/payment.v1.PaymentService/GetPayment`, {
    method: 'POST',
    headers: {
      'x-api-key': server.backendKey,
      'content-type': 'application/connect+json',
      'connect-protocol-version': '1',
    },
    body: Buffer.from('{}'),
  });
  // Answered in the protocol the client spoke (a Connect end-of-stream envelope), with the unary advice.
  expect(await response.text()).toMatch(/use application\/json or application\/proto/);
});

it.each(['application/grpc-web-text+json', 'application/grpc-web-text+xml', 'application/grpc-web+xml'])(
  'a gRPC-Web variant the server does not serve (%s) is refused with a status a gRPC-Web client reads',
  async (contentType) => {
    // Connect's gRPC-Web handler claims every text variant and answered text+json with a bare 415.
    for (const path of ['grpc.health.v1.Health/Check', 'payment.v1.PaymentService/WatchAccount']) {
      const response = await fetch(`${server.url}/${path}`, {
        method: 'POST',
        headers: { 'x-api-key': server.backendKey, 'content-type': contentType },
        body: Buffer.from('AAAAAAA=', 'utf8'),
      });
      expect({ path, status: response.status }).toEqual({ path, status: 200 });
      expect(response.headers.get('grpc-status')).toBe('3');
      expect(decodeURIComponent(response.headers.get('grpc-message') ?? '')).toContain('unsupported content type');
    }
  },
);
