/**
 * The container files, checked without a Docker engine (none runs here): what compose publishes and how
 * its services refer to each other, and a small hadolint-like lint of the Dockerfile, including that the
 * image carries the commands the README and docs/ run in it.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (file: string) => readFileSync(join(root, file), 'utf8');

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  ports?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  volumes?: string[];
}
interface Compose {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

const compose = parse(read('compose.yaml')) as Compose;
const portsOverlay = parse(read('compose.ports.yaml')) as Compose;

describe('compose.yaml', () => {
  it('publishes only the ledger port by default', () => {
    const publishing = Object.entries(compose.services).filter(([, service]) => service.ports?.length);
    expect(publishing.map(([name]) => name)).toEqual(['ledger']);
    expect(compose.services.ledger!.ports).toHaveLength(1);
    expect(compose.services.ledger!.ports![0]).toMatch(/:8080$/);
  });

  it('refers only to services, volumes and files that exist', () => {
    const names = new Set(Object.keys(compose.services));
    for (const [name, service] of Object.entries(compose.services)) {
      for (const dependency of Object.keys(service.depends_on ?? {}))
        expect(names, `${name} → ${dependency}`).toContain(dependency);
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('.')) expect(existsSync(join(root, source)), source).toBe(true);
        else expect(Object.keys(compose.volumes ?? {}), source).toContain(source);
      }
      if (service.build) expect(existsSync(join(root, service.build.context, service.build.dockerfile))).toBe(true);
      if (service.image) expect(service.image, `${name} pins its image`).toMatch(/:[\w.-]+$/);
      if (service.image) expect(service.image).not.toMatch(/:latest$/);
    }
    for (const name of Object.keys(portsOverlay.services)) expect(names).toContain(name);
  });

  it('gives the ledger only settings the service knows, and the ones it needs outside the embedded mode', () => {
    const known = new Set([...read('.env.example').matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((match) => match[1]!));
    const environment = compose.services.ledger!.environment ?? {};
    for (const variable of Object.keys(environment)) expect(known, variable).toContain(variable);
    expect(environment).toHaveProperty('DATABASE_URL');
    expect(
      Object.keys(environment).some((name) =>
        /^AUTH_(JWKS_FILE|JWKS_URL|JWT_PUBLIC_KEY_FILE|JWT_HS256_SECRET)$/.test(name),
      ),
    ).toBe(true);
    expect(environment).toHaveProperty('AUTH_JWT_ISSUER');
    expect(environment).toHaveProperty('AUTH_JWT_AUDIENCE');
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const instructions = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const of = (keyword: string) => instructions.filter((line) => line.toUpperCase().startsWith(`${keyword} `));

  it('pins base images and never uses ADD or latest', () => {
    const defaults = Object.fromEntries(
      of('ARG')
        .map((line) => line.slice(4).split('=') as [string, string])
        .filter(([, value]) => value !== undefined),
    );
    for (const from of of('FROM')) {
      const image = from.split(/\s+/)[1]!.replace(/^\$\{(\w+)\}$/, (_, name: string) => defaults[name] ?? '');
      if (/^[a-z-]+$/.test(image)) continue; // an earlier stage
      expect(image, from).toMatch(/:[\w.-]+$/);
      expect(image).not.toMatch(/:latest$/);
    }
    expect(of('ADD')).toEqual([]);
  });

  it('installs from the lockfile, runs as a non-root user with exec-form CMD and a health check', () => {
    const runs = of('RUN').join('\n');
    expect(runs).not.toMatch(/npm install(?! --global)/);
    expect(runs).toMatch(/npm ci/);
    const lastUser = of('USER').at(-1);
    expect(lastUser).toBeDefined();
    expect(lastUser).not.toMatch(/root|0$/);
    expect(of('CMD').at(-1)).toMatch(/^CMD \[".*"\]$/);
    expect(of('HEALTHCHECK')).toHaveLength(1);
  });

  it('copies only what exists, and builds the commands the README runs in the image', () => {
    for (const copy of of('COPY').filter((line) => !line.includes('--from='))) {
      const sources = copy
        .split(/\s+/)
        .slice(1, -1)
        .filter((part) => !part.startsWith('--'));
      for (const source of sources) expect(existsSync(join(root, source)), copy).toBe(true);
    }
    const build = JSON.parse(read('tsconfig.build.json')) as { include: string[] };
    // The README and the reference pages it links (docs/configuration.md runs the image's commands).
    const readme = [
      read('README.md'),
      ...readdirSync(join(root, 'docs'))
        .filter((name) => name.endsWith('.md'))
        .map((name) => read(join('docs', name))),
    ].join('\n');
    for (const [, script] of readme.matchAll(/node dist\/(scripts\/[\w-]+)\.js/g)) {
      expect(build.include, script).toContain(`${script}.ts`);
      expect(dockerfile).toContain(`${script}.ts`);
    }
  });
});
