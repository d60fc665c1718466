/** The TypeScript files of the service's own code, for the tests that read the code itself. */
import { readdirSync } from 'node:fs';
import path from 'node:path';

/** src/, absolute. */
export const SRC = path.resolve(import.meta.dirname, '../../src');

/** Every `.ts` file under `dir` (default src/), as absolute paths. */
export function sourceFiles(dir: string = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => path.join(entry.parentPath, entry.name));
}
