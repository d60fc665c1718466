/** The one description of every RPC (src/contract.ts) covers what gen/ defines, and docs/security.md shows it. */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { DescService } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { RPC_TABLE_FILE, renderRpcTable, tableIn } from '../../scripts/rpc-table.js';
import { METHOD_RULES, PUBLIC_SERVICES } from '../../src/auth/policy.js';
import { RPCS, SERVED_FILES, SERVED_SERVICES } from '../../src/contract.js';
import { policyFor, WRITE_PROCEDURES } from '../../src/ratelimit/policy.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** Every service descriptor the generated code exports, found by loading each gen/ module. */
async function generatedServices(): Promise<DescService[]> {
  const files = readdirSync(path.join(ROOT, 'gen'), { recursive: true, encoding: 'utf8' }).filter((file) =>
    file.endsWith('_pb.ts'),
  );
  expect(files.length).toBeGreaterThan(5);
  const services: DescService[] = [];
  for (const file of files) {
    const module: Record<string, unknown> = await import(path.join(ROOT, 'gen', file));
    for (const value of Object.values(module)) {
      if ((value as { kind?: unknown } | null)?.kind === 'service') services.push(value as DescService);
    }
  }
  return services;
}

const procedures = (services: readonly DescService[]) =>
  services.flatMap((service) => service.methods.map((method) => `${service.typeName}/${method.name}`));

describe('the RPC contract', () => {
  it('describes every RPC of every service in gen/, and nothing else', async () => {
    const generated = await generatedServices();
    expect(generated.map((service) => service.typeName).sort()).toEqual(
      SERVED_SERVICES.map((service) => service.typeName).sort(),
    );
    expect(Object.keys(RPCS).sort()).toEqual(procedures(generated).sort());
  });

  it('gives reflection the file of every served service', () => {
    const files = new Set(SERVED_FILES);
    for (const service of SERVED_SERVICES) expect(files.has(service.file), service.typeName).toBe(true);
  });

  it('feeds auth: rules for every non-public RPC, public services open', () => {
    for (const [procedure, rule] of Object.entries(RPCS)) {
      if (rule.public) {
        expect(METHOD_RULES[procedure]).toBeUndefined();
        expect(PUBLIC_SERVICES.has(procedure.split('/')[0] ?? '')).toBe(true);
      } else {
        expect(METHOD_RULES[procedure]).toEqual({ scope: rule.scope, users: rule.users !== false });
      }
    }
  });

  it('feeds the rate limiter: writes from the write bucket, public RPCs never limited', () => {
    const policies = {
      writes: { name: 'writes', capacity: 1, refillPerSecond: 1 },
      reads: { name: 'reads', capacity: 1, refillPerSecond: 1 },
    } as const;
    for (const [procedure, rule] of Object.entries(RPCS)) {
      const policy = policyFor('POST', `/${procedure}`, policies);
      expect(policy?.name, procedure).toBe(rule.public ? undefined : rule.write ? 'writes' : 'reads');
    }
    expect(WRITE_PROCEDURES.size).toBe(Object.values(RPCS).filter((rule) => !rule.public && rule.write).length);
  });

  it(`is the table in ${RPC_TABLE_FILE} (regenerate with npm run docs:rpc-table)`, () => {
    const text = readFileSync(path.join(ROOT, RPC_TABLE_FILE), 'utf8');
    expect(tableIn(text)).toEqual(renderRpcTable());
  });
});
