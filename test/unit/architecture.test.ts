/**
 * Dependencies point down: a module of src/ may import its own folder and the folders below it in LAYERS,
 * never one above. The order is written here once; a test below keeps the README's statement of it equal.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { SRC, sourceFiles } from '../support/source-files.js';

/**
 * Top to bottom. A folder of src/ (or a file directly in src/, by its name) per entry; `gen` is the
 * generated protobuf code outside src/. Why each sits where it does:
 * - main: the process entry; server: Fastify, listeners, start-up wiring (the composition root);
 *   demo: the embedded mode's seed data, run by main.
 * - ratelimit: a Fastify hook that answers before any handler, in the protocol's shape (api/early-answer).
 * - api: RPC handlers and the one error mapping; grpc: health and reflection services.
 * - app: the application layer (validation, ownership, reads); auth: callers, credentials, method policy.
 * - ledger: the double-entry core; outbox: publishes what the ledger committed; events and wire: protobuf
 *   encodings of domain records.
 * - db: schema, client, migrations; observability: metrics and tracing, which the db client uses.
 * - config: reading and validating the environment; domain: records, errors, currencies, ids.
 * - contract: the scopes and per-RPC description every layer may read; gen: generated descriptors.
 */
const LAYERS = [
  'main',
  'server',
  'demo',
  'ratelimit',
  'api',
  'grpc',
  'app',
  'auth',
  'ledger',
  'outbox',
  'events',
  'wire',
  'db',
  'observability',
  'config',
  'domain',
  'contract',
  'gen',
] as const;

const ROOT = path.resolve(import.meta.dirname, '../..');

/** The layer of a file under the repository root, or undefined when it is outside src/ and gen/. */
function layerOf(file: string): string | undefined {
  const relative = path.relative(ROOT, file).split(path.sep);
  if (relative[0] === 'gen') return 'gen';
  if (relative[0] !== 'src' || relative.length < 2) return undefined;
  return relative.length === 2 ? path.parse(relative[1] ?? '').name : relative[1];
}

/** Relative module specifiers a source text imports or re-exports, static or dynamic. */
function importsOf(source: string): string[] {
  return ts
    .preProcessFile(source, true, true)
    .importedFiles.map((entry) => entry.fileName)
    .filter((name) => name.startsWith('.'));
}

/** "from -> to" for each import of `file` (with text `source`) that points to a layer above it or off the map. */
function violationsOf(file: string, source: string): string[] {
  const from = layerOf(file);
  const fromRank = LAYERS.indexOf(from as (typeof LAYERS)[number]);
  const found: string[] = [];
  for (const specifier of importsOf(source)) {
    const target = path.resolve(path.dirname(file), specifier);
    const to = layerOf(target);
    const toRank = LAYERS.indexOf(to as (typeof LAYERS)[number]);
    if (fromRank < 0 || toRank < 0 || toRank < fromRank) {
      found.push(`${path.relative(ROOT, file)} (${from}) -> ${specifier} (${to ?? 'outside src'})`);
    }
  }
  return found;
}

describe('import direction', () => {
  it('places every file of src/ in a layer', () => {
    const unplaced = sourceFiles(SRC).filter((file) => !LAYERS.includes(layerOf(file) as (typeof LAYERS)[number]));
    expect(unplaced).toEqual([]);
  });

  it('has no file of src/ importing a layer above its own', () => {
    const files = sourceFiles(SRC);
    expect(files.length).toBeGreaterThan(50);
    const violations = files.flatMap((file) => violationsOf(file, readFileSync(file, 'utf8')));
    expect(violations).toEqual([]);
  });

  it('is the order the README states', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const stated = /\*\*Dependencies point down\*\*: `([^`]+)`/.exec(readme.replace(/\s*\n\s*/g, ' '))?.[1];
    expect(stated?.split(' → ')).toEqual([...LAYERS]);
  });

  it('flags an upward import, a dynamic one and one leaving src/', () => {
    const ledgerFile = path.join(SRC, 'ledger', 'example.ts');
    expect(violationsOf(ledgerFile, "import type { X } from '../app/payments-app.js';")).toHaveLength(1);
    expect(violationsOf(ledgerFile, "const m = await import('../server/start.js');")).toHaveLength(1);
    expect(violationsOf(ledgerFile, "export { y } from '../../test/support/x.js';")).toHaveLength(1);
    expect(violationsOf(ledgerFile, "import { accounts } from '../db/schema.js';\nimport './plan.js';")).toEqual([]);
  });
});
