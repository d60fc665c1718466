/**
 * Serves the built browser wallet (wallet/dist, `npm run wallet:build`) at /wallet/. Only the files that
 * were there at startup are served, from a table built then, so no request path ever reaches the file
 * system: nothing to traverse. Same origin as the API, so the wallet needs no CORS.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

export const WALLET_DIST_DIR = fileURLToPath(new URL('../../wallet/dist', import.meta.url));
const MAX_FILES = 200;
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

interface StaticFile {
  body: Buffer;
  contentType: string;
}

function collect(dir: string, root: string, into: Map<string, StaticFile>): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (into.size >= MAX_FILES) return;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) collect(path, root, into);
    const contentType = CONTENT_TYPES[extname(entry.name)];
    if (entry.isFile() && contentType) {
      into.set(`/wallet/${relative(root, path).split('\\').join('/')}`, { body: readFileSync(path), contentType });
    }
  }
}

// Own origin only; no <base> (it would redirect relative URLs) and forms post only to the wallet itself.
export const WALLET_CSP =
  "default-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** Registers /wallet/ routes when the wallet was built; returns whether it was. */
export function registerWallet(fastify: FastifyInstance, dir: string = WALLET_DIST_DIR): boolean {
  const files = new Map<string, StaticFile>();
  try {
    collect(dir, dir, files);
  } catch {
    return false;
  }
  const index = files.get('/wallet/index.html');
  if (!index) return false;
  fastify.get('/wallet', (_request, reply) => reply.redirect('/wallet/'));
  fastify.get('/wallet/*', (request, reply) => {
    const path = request.url.split('?')[0]!;
    const file = path === '/wallet/' ? index : files.get(path);
    if (!file) return reply.code(404).type('text/plain').send('not found');
    // Hashed asset names change with their content; the page itself is always revalidated.
    const cache = path.startsWith('/wallet/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache';
    return reply
      .header('cache-control', cache)
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', WALLET_CSP)
      .type(file.contentType)
      .send(file.body);
  });
  return true;
}
