/** A throwaway self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI. */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface SelfSignedCert {
  certFile: string;
  keyFile: string;
  /** The certificate itself, to pass as `ca` so clients trust it. */
  cert: Buffer;
  remove(): Promise<void>;
}

export async function createSelfSignedCert(): Promise<SelfSignedCert> {
  const dir = await mkdtemp(join(tmpdir(), 'ledger-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  // The IP SAN matters: clients connect to https://127.0.0.1:port and check the address against it.
  await run(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    { timeout: 30_000 },
  );
  return {
    certFile,
    keyFile,
    cert: await readFile(certFile),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
