// Typed events: test/types/events-fixture.ts compiles as it is (every `@ts-expect-error` there is
// met), and with those directives removed it fails on exactly the lines they stood before — so
// misspelt event names, misspelt or mistyped payload fields and wrong emits do not compile
// (`primary.on('checkpoint', (e) => e.lsnn)`). Also checks at run time that the events arrive
// with their typed payloads from a real primary.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { Primary } from '../src/primary/primary.js';
import type { CheckpointEvent } from '../src/primary/primary-events.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURE = path.join(ROOT, 'test', 'types', 'events-fixture.ts');

/** Diagnostics of compiling the fixture (its text given) with the repository's compiler options. */
function compile(text: string): ts.Diagnostic[] {
  const cfg = ts.readConfigFile(path.join(ROOT, 'tsconfig.json'), (f) => ts.sys.readFile(f));
  const parsed = ts.parseJsonConfigFileContent(cfg.config, ts.sys, ROOT);
  const options: ts.CompilerOptions = { ...parsed.options, noEmit: true, incremental: false, declaration: false };
  delete options.tsBuildInfoFile;
  const host = ts.createCompilerHost(options);
  const read = host.readFile.bind(host);
  host.readFile = (f) => (path.resolve(f) === FIXTURE ? text : read(f));
  const getSource = host.getSourceFile.bind(host);
  host.getSourceFile = (f, lang, ...rest) => (path.resolve(f) === FIXTURE ? ts.createSourceFile(f, text, lang) : getSource(f, lang, ...rest));
  const program = ts.createProgram([FIXTURE], options, host);
  const sf = program.getSourceFile(FIXTURE)!;
  // The fixture's own diagnostics only (the build checks the rest).
  return [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)];
}

const lineOf = (d: ts.Diagnostic) => d.file!.getLineAndCharacterOfPosition(d.start!).line;

test('event maps: the fixture compiles; without its @ts-expect-error lines each use it guards is an error', () => {
  const text = ts.sys.readFile(FIXTURE)!;
  assert.ok(text, 'fixture source found');
  const asIs = compile(text);
  assert.deepEqual(asIs.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')), [], 'the fixture compiles (each expected error occurs)');

  const lines = text.split('\n');
  const guarded = lines.flatMap((l, i) => (l.trim().startsWith('// @ts-expect-error') ? [i + 1] : []));
  assert.ok(guarded.length >= 10, `fixture has its checks (${guarded.length})`);
  const stripped = lines.map((l) => (l.trim().startsWith('// @ts-expect-error') ? '' : l)).join('\n');
  const errors = compile(stripped);
  const errorLines = [...new Set(errors.map(lineOf))].sort((a, b) => a - b);
  assert.deepEqual(errorLines, guarded, `errors exactly on the guarded lines:\n${errors.map((d) => `${lineOf(d) + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`).join('\n')}`);
});

test('events at run time: checkpoint payloads as typed, close', async () => {
  const dir = tmpDir('walstream-events-');
  try {
    const p = await Primary.open({ dataDir: path.join(dir, 'p') });
    const seen: CheckpointEvent[] = [];
    let closed = 0;
    p.on('checkpoint', (e) => seen.push(e));
    p.once('close', () => closed++);
    await p.transaction((tx) => tx.put('t', 'k', 1));
    await p.checkpoint();
    await p.close();
    assert.equal(seen.length, 2, 'one requested checkpoint, one shutdown checkpoint');
    assert.deepEqual(seen.map((e) => e.shutdown), [false, true]);
    // Nothing changed between the two: the shutdown checkpoint keeps the first one's snapshot.
    assert.deepEqual(seen.map((e) => e.snapshotWritten), [true, false]);
    for (const e of seen) {
      assert.deepEqual(Object.keys(e).sort(), ['lsn', 'redo', 'segmentsRecycled', 'segmentsRemoved', 'shutdown', 'snapshotWritten']);
      assert.ok(e.redo <= e.lsn);
    }
    assert.ok(seen[1]!.lsn > seen[0]!.lsn);
    assert.equal(closed, 1);
  } finally {
    rmrf(dir);
  }
});
