/**
 * Error reasons are one closed set (ERROR_REASONS in src/domain/errors.ts): every reason src/ raises is in it,
 * each one is raised somewhere, and the error table of docs/errors.md and the proto's ErrorDetail comment list exactly
 * it, under the code each reason is sent with.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Code } from '@connectrpc/connect';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { CODE_OF } from '../../src/api/errors.js';
import { type DomainErrorKind, ERROR_REASONS } from '../../src/domain/errors.js';
import { sourceFiles } from '../support/source-files.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
/** Where the error table lives. */
const ERROR_TABLE_FILE = 'docs/errors.md';
const REASON_SHAPE = /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$/;
/** The functions and the class that take a reason (src/domain/errors.ts). */
const RAISERS = new Set([
  'DomainError',
  'invalidArgument',
  'failedPrecondition',
  'serviceUnavailable',
  'unauthenticated',
  'permissionDenied',
  'resourceExhausted',
]);

const KINDS = Object.keys(ERROR_REASONS) as DomainErrorKind[];
const ALL_REASONS = KINDS.flatMap((kind) => [...ERROR_REASONS[kind]]);

/** INVALID_ARGUMENT for Code.InvalidArgument. */
const codeName = (code: Code) => Code[code].replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();

/** The expected reasons per code name, from the set and the kind-to-code mapping. */
function reasonsByCode(): Map<string, string[]> {
  const byCode = new Map<string, string[]>();
  for (const kind of KINDS) {
    const name = codeName(CODE_OF[kind]);
    byCode.set(name, [...(byCode.get(name) ?? []), ...ERROR_REASONS[kind]].sort());
  }
  return byCode;
}

/** Reason-shaped string literals passed to a raiser, and every reason-shaped literal outside ERROR_REASONS. */
function literalsIn(file: string): { raised: string[]; mentioned: string[] } {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const raised: string[] = [];
  const mentioned: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && node.name.getText() === 'ERROR_REASONS') return;
    if ((ts.isCallExpression(node) || ts.isNewExpression(node)) && RAISERS.has(node.expression.getText())) {
      for (const argument of node.arguments ?? []) {
        // `'X' as ErrorReason` and `('X')` still raise 'X'.
        let inner: ts.Expression = argument;
        while (ts.isAsExpression(inner) || ts.isParenthesizedExpression(inner) || ts.isSatisfiesExpression(inner)) {
          inner = inner.expression;
        }
        if (ts.isStringLiteral(inner) && REASON_SHAPE.test(inner.text)) raised.push(inner.text);
      }
    }
    if (ts.isStringLiteral(node) && REASON_SHAPE.test(node.text)) mentioned.push(node.text);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return { raised, mentioned };
}

/** `code -> reasons` from a Markdown table headed `| code | when | reasons |`; parentheses are commentary. */
function readmeTable(text: string): Map<string, string[]> {
  const lines = text.split('\n');
  const start = lines.indexOf('| code | when | reasons |');
  expect(start, `${ERROR_TABLE_FILE} has the error table`).toBeGreaterThanOrEqual(0);
  const table = new Map<string, string[]>();
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line.split(' | ');
    const code = /`([A-Z_]+)`/.exec(cells[0] ?? '')?.[1] ?? '';
    const reasons = [...(cells.at(-1) ?? '').replace(/\([^)]*\)/g, '').matchAll(/`([A-Z0-9_]+)`/g)].map((m) => m[1]);
    table.set(code, (reasons as string[]).sort());
  }
  return table;
}

/** `code -> reasons` from the ErrorDetail.reason comment in proto/payment/v1/errors.proto. */
function protoComment(text: string): Map<string, string[]> {
  const table = new Map<string, string[]>();
  let current = '';
  for (const line of text.split('\n')) {
    const start = /^\s*\/\/ {3}([A-Z_]+): (.*)$/.exec(line);
    const more = /^\s*\/\/ {5}(.*)$/.exec(line);
    if (start) current = start[1] ?? '';
    const listed = start ? start[2] : more ? more[1] : undefined;
    if (listed === undefined) continue;
    const names = listed
      .split(',')
      .map((name) => name.trim())
      .filter(Boolean);
    table.set(current, [...(table.get(current) ?? []), ...names].sort());
  }
  return table;
}

describe('error reasons', () => {
  it('are unique, across kinds too', () => {
    expect(new Set(ALL_REASONS).size).toBe(ALL_REASONS.length);
  });

  it('cover every reason raised in src/, and each one is raised somewhere', () => {
    const found = sourceFiles().map(literalsIn);
    const raised = new Set(found.flatMap((file) => file.raised));
    expect(raised.size).toBeGreaterThan(20);
    expect([...raised].filter((reason) => !ALL_REASONS.includes(reason as never))).toEqual([]);
    const mentioned = new Set(found.flatMap((file) => file.mentioned));
    expect(ALL_REASONS.filter((reason) => !mentioned.has(reason))).toEqual([]);
  });

  it(`are exactly the reasons of the error table in ${ERROR_TABLE_FILE}, per code`, () => {
    const table = readmeTable(readFileSync(path.join(ROOT, ERROR_TABLE_FILE), 'utf8'));
    const expected = reasonsByCode();
    for (const [code, reasons] of table) expect(reasons, code).toEqual(expected.get(code) ?? []);
    for (const code of expected.keys()) expect(table.has(code), code).toBe(true);
  });

  it('are exactly the reasons the proto comment of ErrorDetail.reason lists, per code', () => {
    const comment = protoComment(readFileSync(path.join(ROOT, 'proto/payment/v1/errors.proto'), 'utf8'));
    expect(comment).toEqual(reasonsByCode());
  });
});
