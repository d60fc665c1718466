/** .env.example lists every environment variable the code reads, so a new setting cannot go undocumented. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

function sourcesUnder(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .map((file) => readFileSync(join(root, dir, file), 'utf8'));
}

/** Names read through a reader `(env, 'NAME'`, `env.NAME`, `env['NAME']` or `process.env.NAME`. */
function variablesRead(source: string): string[] {
  const patterns = [/\(env, '([A-Z][A-Z0-9_]+)'/g, /\benv\.([A-Z][A-Z0-9_]+)/g, /\benv\['([A-Z][A-Z0-9_]+)'\]/g];
  return patterns.flatMap((pattern) => [...source.matchAll(pattern)].map((match) => match[1]!));
}

describe('.env.example', () => {
  it('lists every variable read in src/ and scripts/', () => {
    const example = readFileSync(join(root, '.env.example'), 'utf8');
    const listed = new Set([...example.matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((match) => match[1]!));
    const read = new Set([...sourcesUnder('src'), ...sourcesUnder('scripts')].flatMap(variablesRead));
    expect(read.size).toBeGreaterThan(40);
    expect([...read].filter((name) => !listed.has(name)).sort()).toEqual([]);
  });
});
