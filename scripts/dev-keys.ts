/**
 * `npm run -s dev:keys -- <dir> [subject...]`: development JWT keys for a deployment on PostgreSQL, where the
 * server needs real key material. Keeps an ES256 key pair in <dir> (made on first use), writes the public
 * half as <dir>/jwks.json and prints the settings as shell exports, so that
 *     eval "$(npm run -s dev:keys -- .data/dev-keys alice)"
 * configures the server; a 24-hour token is printed (as a comment) for each subject. Not for production:
 * there, AUTH_JWKS_URL points at the identity provider.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEV_AUDIENCE, DEV_ISSUER, loadOrCreateDevKeyPair, signDevToken } from '../src/auth/dev-keys.js';

const MAX_SUBJECTS = 20;

async function main(argv: string[]): Promise<void> {
  const [dir, ...subjects] = argv;
  if (!dir || subjects.length > MAX_SUBJECTS) {
    console.error(`usage: npm run -s dev:keys -- <dir> [subject...] (at most ${MAX_SUBJECTS} subjects)`);
    process.exit(2);
  }
  const pair = await loadOrCreateDevKeyPair(dir);
  const jwksFile = resolve(join(dir, 'jwks.json'));
  writeFileSync(jwksFile, JSON.stringify({ keys: [pair.publicJwk] }, null, 2));
  console.log(`export AUTH_JWKS_FILE='${jwksFile.replaceAll("'", "'\\''")}'`);
  console.log(`export AUTH_JWT_ISSUER=${DEV_ISSUER}`);
  console.log(`export AUTH_JWT_AUDIENCE=${DEV_AUDIENCE}`);
  for (const subject of subjects) console.log(`# token for ${subject} (24 h): ${await signDevToken(pair, subject)}`);
}

await main(process.argv.slice(2));
