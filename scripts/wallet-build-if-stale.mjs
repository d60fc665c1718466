// Builds the browser wallet (wallet/dist) when it is missing or older than its sources, so `npm start` and
// the tests serve a current wallet without paying for a build on every start (a build takes a few seconds).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const MAX_FILES = 500;

/** The newest modification time among the files under `dir` (bounded walk). */
function newestMtime(dir, budget = { files: MAX_FILES }) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'dist' || entry.name === 'node_modules' || --budget.files < 0) continue;
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path, budget) : statSync(path).mtimeMs);
  }
  return newest;
}

const built = 'wallet/dist/index.html';
const sources = Math.max(newestMtime('wallet'), newestMtime('gen/payment/v1'));
if (existsSync(built) && statSync(built).mtimeMs >= sources) process.exit(0);
console.log('building the browser wallet (wallet/dist)…');
const result = spawnSync('npx', ['vite', 'build', '--config', 'wallet/vite.config.ts'], { stdio: 'inherit' });
process.exit(result.status ?? 1);
