// Compiles a type-level fixture (test/types/*.ts) with the repository's compiler options, as it is
// and with its `// @ts-expect-error` lines removed, for tests that check what must and must not
// compile. The TypeScript compiler API, in the calling process; nothing to stop.

import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** A fixture's path from the repository root's test/types/. */
export function typeFixture(name: string): string {
  return path.join(ROOT, 'test', 'types', name);
}

/** Diagnostics of compiling `file` (its text given) with the repository's compiler options: the file's own only (the build checks the rest). */
function compile(file: string, text: string): ts.Diagnostic[] {
  const cfg = ts.readConfigFile(path.join(ROOT, 'tsconfig.json'), (f) => ts.sys.readFile(f));
  const parsed = ts.parseJsonConfigFileContent(cfg.config, ts.sys, ROOT);
  const options: ts.CompilerOptions = { ...parsed.options, noEmit: true, incremental: false, declaration: false };
  delete options.tsBuildInfoFile;
  const host = ts.createCompilerHost(options);
  const read = host.readFile.bind(host);
  host.readFile = (f) => (path.resolve(f) === file ? text : read(f));
  const getSource = host.getSourceFile.bind(host);
  host.getSourceFile = (f, lang, ...rest) => (path.resolve(f) === file ? ts.createSourceFile(f, text, lang) : getSource(f, lang, ...rest));
  const program = ts.createProgram([file], options, host);
  const sf = program.getSourceFile(file)!;
  return [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)];
}

const lineOf = (d: ts.Diagnostic) => d.file!.getLineAndCharacterOfPosition(d.start!).line;

/**
 * Assert that `file` compiles as it is (each `@ts-expect-error` is met) and that, with those
 * directives removed, it fails on exactly the lines they stood before; at least `minGuarded` of them.
 */
export function assertTypeFixture(file: string, minGuarded: number): void {
  const text = ts.sys.readFile(file)!;
  assert.ok(text, `fixture source found: ${path.basename(file)}`);
  const asIs = compile(file, text);
  assert.deepEqual(asIs.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')), [], 'the fixture compiles (each expected error occurs)');

  const lines = text.split('\n');
  const guarded = lines.flatMap((l, i) => (l.trim().startsWith('// @ts-expect-error') ? [i + 1] : []));
  assert.ok(guarded.length >= minGuarded, `fixture has its checks (${guarded.length})`);
  const stripped = lines.map((l) => (l.trim().startsWith('// @ts-expect-error') ? '' : l)).join('\n');
  const errors = compile(file, stripped);
  const errorLines = [...new Set(errors.map(lineOf))].sort((a, b) => a - b);
  assert.deepEqual(errorLines, guarded, `errors exactly on the guarded lines:\n${errors.map((d) => `${lineOf(d) + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`).join('\n')}`);
}
