// Prints vitest's totals from its JSON report as one plain line: "N passed, N failed".
import { readFileSync } from 'node:fs';

const path = process.argv[2] ?? '.vitest-report.json';
try {
  const report = JSON.parse(readFileSync(path, 'utf8'));
  console.log(`${report.numPassedTests} passed, ${report.numFailedTests} failed`);
} catch (error) {
  console.log(`0 passed, 0 failed (no test report at ${path}: ${error.message})`);
}
