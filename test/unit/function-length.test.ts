/**
 * Functions a reader can hold: no function in src/ is longer than MAX_FUNCTION_LINES unless a comment just
 * above it says why, starting with `long:` (for example a route table that reads best as one list).
 * Lines are counted from the function's first line to its closing brace, comments and blank lines included,
 * so what is measured is what a reader scrolls through.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { SRC, sourceFiles } from '../support/source-files.js';

const MAX_FUNCTION_LINES = 60;

function isFunctionLike(node: ts.Node): node is ts.FunctionLikeDeclaration {
  return (
    ts.isFunctionDeclaration(node) ||
    ts.isMethodDeclaration(node) ||
    ts.isConstructorDeclaration(node) ||
    ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node) ||
    ts.isArrowFunction(node) ||
    ts.isFunctionExpression(node)
  );
}

function nameOf(node: ts.FunctionLikeDeclaration, file: ts.SourceFile): string {
  if (node.name) return node.name.getText(file);
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent)) return parent.name.getText(file);
  return '(anonymous)';
}

/** The comments above the statement the function starts on (`const f = () => {` or `foo(async () => {`). */
function leadingComments(node: ts.Node, file: ts.SourceFile): string {
  const line = (n: ts.Node) => file.getLineAndCharacterOfPosition(n.getStart(file)).line;
  let top = node;
  while (top.parent && !ts.isSourceFile(top.parent) && line(top.parent) === line(node)) top = top.parent;
  const ranges = ts.getLeadingCommentRanges(file.text, top.getFullStart()) ?? [];
  return ranges.map((range) => file.text.slice(range.pos, range.end)).join('\n');
}

interface LongFunction {
  where: string;
  lines: number;
}

function longFunctionsWithoutReason(): LongFunction[] {
  const found: LongFunction[] = [];
  for (const fullPath of sourceFiles(SRC)) {
    const file = ts.createSourceFile(fullPath, readFileSync(fullPath, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (isFunctionLike(node) && node.body) {
        const first = file.getLineAndCharacterOfPosition(node.getStart(file)).line;
        const last = file.getLineAndCharacterOfPosition(node.getEnd()).line;
        const lines = last - first + 1;
        if (lines > MAX_FUNCTION_LINES && !/\blong:/.test(leadingComments(node, file))) {
          const relative = path.relative(SRC, fullPath);
          found.push({ where: `src/${relative}:${first + 1} ${nameOf(node, file)}`, lines });
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
  }
  return found;
}

describe('function length', () => {
  it(`no function in src/ is over ${MAX_FUNCTION_LINES} lines without a "long:" reason`, () => {
    expect(longFunctionsWithoutReason()).toEqual([]);
  });
});
