/** A throwaway CA and client certificates signed by it (openssl CLI), for mTLS tests. */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ClientCertificateAuthority {
  caFile: string;
  /** A client key and certificate with this CN, signed by the CA. */
  issue(commonName: string): Promise<{ key: Buffer; cert: Buffer }>;
  remove(): Promise<void>;
}

export async function createClientCertificateAuthority(): Promise<ClientCertificateAuthority> {
  const dir = await mkdtemp(join(tmpdir(), 'ledger-mtls-'));
  const caKey = join(dir, 'ca-key.pem');
  const caFile = join(dir, 'ca.pem');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    caKey,
    '-out',
    caFile,
    '-days',
    '1',
    '-subj',
    '/CN=ledger-test-ca',
  ]);
  let serial = 1;
  return {
    caFile,
    async issue(commonName) {
      const name = `client-${serial++}`;
      const key = join(dir, `${name}-key.pem`);
      const csr = join(dir, `${name}.csr`);
      const cert = join(dir, `${name}.pem`);
      await run('openssl', [
        'req',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        key,
        '-out',
        csr,
        '-subj',
        `/CN=${commonName}`,
      ]);
      await run('openssl', [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        caFile,
        '-CAkey',
        caKey,
        '-CAcreateserial',
        '-out',
        cert,
        '-days',
        '1',
      ]);
      return { key: await readFile(key), cert: await readFile(cert) };
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
