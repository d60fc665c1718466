/**
 * With TLS the start says so: the listen line is https://, and the banner's commands verify the server's
 * certificate (--cacert) instead of speaking cleartext HTTP/2. The banner's curl works as printed.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSelfSignedCert, type SelfSignedCert } from './support/self-signed-cert.js';
import { type ServiceProcess, startServiceProcess } from './support/service-process.js';

const run = promisify(execFile);
let cert: SelfSignedCert;
let dataDir: string;
let running: ServiceProcess | undefined;

beforeAll(async () => {
  cert = await createSelfSignedCert();
  dataDir = await mkdtemp(join(tmpdir(), 'ledger-tls-banner-'));
});
afterAll(async () => {
  running?.kill();
  await rm(dataDir, { recursive: true, force: true });
  await cert?.remove();
});

describe('the start banner with TLS', () => {
  it('prints https:// commands with --cacert, and its curl works as printed', async () => {
    running = startServiceProcess({
      PORT: '0',
      DATA_DIR: dataDir,
      TLS_CERT_FILE: cert.certFile,
      TLS_KEY_FILE: cert.keyFile,
      SHUTDOWN_GRACE_MS: '1000',
    });
    const [banner] = await running.waitForStdout(/Demo accounts[\s\S]*--list-services \S+\n/, 60_000);
    expect(running.stdout()).toMatch(/Server listening at https:\/\//);
    expect(running.stdout()).not.toMatch(/Server listening at http:\/\//);
    expect(banner).not.toContain('--http2-prior-knowledge');
    expect(banner).toMatch(/npx buf curl --cacert \S+ --list-services https:\/\//);
    const balanceCurl = /^\s+(curl -s --cacert .*GetAccountBalance.*)$/m.exec(banner)?.[1];
    expect(balanceCurl, banner).toBeDefined();
    const { stdout } = await run('bash', ['-c', balanceCurl!], { timeout: 30_000 });
    expect(JSON.parse(stdout)).toHaveProperty('balance');
    await running.stop('SIGTERM', 15_000);
  });
});
