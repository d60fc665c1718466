/**
 * The server's node flags (a bounded heap) are written in three places that must agree: `npm start`,
 * `npm run start:dist` (which the benchmark reads, bench/lib/server.ts) and the Dockerfile's CMD.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { deployedNodeFlags } from '../../bench/lib/server.js';

const scripts = JSON.parse(readFileSync('package.json', 'utf8')).scripts as Record<string, string>;

function flagsBefore(words: string[], entry: string): string[] {
  const start = words.indexOf('node');
  const end = words.indexOf(entry);
  expect(start).toBeGreaterThanOrEqual(0);
  expect(end).toBeGreaterThan(start);
  return words.slice(start + 1, end).filter((word) => word !== '--import' && word !== 'tsx');
}

describe('node flags of the server', () => {
  it('bound the heap', () => {
    expect(deployedNodeFlags()).toContain('--max-old-space-size=256');
  });

  it('are the same for npm start, npm run start:dist and the Dockerfile', () => {
    const cmd = /^CMD (\[.*\])$/m.exec(readFileSync('Dockerfile', 'utf8'))?.[1];
    expect(cmd).toBeDefined();
    const dockerWords = JSON.parse(cmd!) as string[];
    expect(flagsBefore(dockerWords, 'dist/src/main.js')).toEqual(deployedNodeFlags());
    expect(flagsBefore(scripts.start!.split(/\s+/), 'src/main.ts')).toEqual(deployedNodeFlags());
  });
});
