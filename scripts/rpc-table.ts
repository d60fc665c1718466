/**
 * Renders the table of RPCs in docs/security.md (who may call each, how the rate limiter counts it) from src/contract.ts,
 * and writes it between the `<!-- rpc-table -->` markers: `npm run docs:rpc-table`.
 * test/unit/contract.test.ts fails while the file and the contract disagree.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { RPCS, type RpcRule } from '../src/contract.js';

/** The Markdown file holding the table, relative to the repository root. */
export const RPC_TABLE_FILE = 'docs/security.md';
export const RPC_TABLE_BEGIN = '<!-- rpc-table -->';
export const RPC_TABLE_END = '<!-- /rpc-table -->';

function cellsOf(rule: RpcRule): [scope: string, users: string, bucket: string] {
  if (rule.public) return ['none (public)', 'anyone, without credentials', 'never limited'];
  return [`\`${rule.scope}\``, rule.users === false ? 'no' : rule.users, rule.write ? 'writes' : 'reads'];
}

/** The table as Markdown lines: consecutive RPCs of one service with the same rule share a row. */
export function renderRpcTable(): string[] {
  const rows: { service: string; methods: string[]; cells: string[] }[] = [];
  for (const [procedure, rule] of Object.entries(RPCS)) {
    const [service = '', method = ''] = procedure.split('/');
    const cells = cellsOf(rule);
    const last = rows.at(-1);
    if (last && last.service === service && last.cells.join('|') === cells.join('|')) last.methods.push(method);
    else rows.push({ service, methods: [method], cells });
  }
  return [
    '| service | RPC | backend scope | wallet user | rate limit bucket |',
    '|---|---|---|---|---|',
    ...rows.map((row) => `| \`${row.service}\` | ${row.methods.join(', ')} | ${row.cells.join(' | ')} |`),
  ];
}

/** The lines between the markers of `text`; throws when the markers are missing. */
export function tableIn(text: string): string[] {
  const lines = text.split('\n');
  const begin = lines.indexOf(RPC_TABLE_BEGIN);
  const end = lines.indexOf(RPC_TABLE_END);
  if (begin < 0 || end < begin) throw new Error(`${RPC_TABLE_FILE} lacks ${RPC_TABLE_BEGIN} … ${RPC_TABLE_END}`);
  return lines.slice(begin + 1, end);
}

function writeTable(root: string): void {
  const file = path.join(root, RPC_TABLE_FILE);
  const lines = readFileSync(file, 'utf8').split('\n');
  const begin = lines.indexOf(RPC_TABLE_BEGIN);
  const end = lines.indexOf(RPC_TABLE_END);
  if (begin < 0 || end < begin) throw new Error(`${RPC_TABLE_FILE} lacks ${RPC_TABLE_BEGIN} … ${RPC_TABLE_END}`);
  lines.splice(begin + 1, end - begin - 1, ...renderRpcTable());
  writeFileSync(file, lines.join('\n'));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  writeTable(path.resolve(import.meta.dirname, '..'));
}
