// README.md's TypeScript blocks compile under `strict` against the package's published types
// (dist/src/index.d.ts, what `import ... from 'walstream'` gives a user). Every fenced block whose
// info string is `ts` or `typescript` is checked, except those marked `no-check` (```ts no-check),
// which must say why in the README. The blocks read as one story: each is checked in a scope
// nested in the previous ones', so a block may use what an earlier block declared (`primary`,
// `standby`, `lsn`) and may declare the same names again (shadowing); top-level `await` works;
// `import` lines are hoisted, and every export of 'walstream' is in scope. An error is reported
// at its README line. The TypeScript compiler API, in this process.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { ROOT } from './helpers/bench-report.js';

/** The package's types, as package.json's "types" names them. */
const PACKAGE_TYPES = path.join(ROOT, 'dist', 'src', 'index.d.ts');
/** Where the checked module pretends to live (beside the package, so node_modules and @types resolve). */
const VIRTUAL_FILE = path.join(ROOT, 'test', '__readme_blocks__.mts');

interface Block {
  /** README line of the block's first code line (1-based). */
  line: number;
  code: string[];
}

/** The fenced ts/typescript blocks of a Markdown text, without those marked no-check. */
export function tsBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)\s*(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, lang, rest] = open;
    let j = i + 1;
    const code: string[] = [];
    const closes = (l: string) => {
      const t = l.trim();
      return t.length >= fence!.length && t === fence!.charAt(0).repeat(t.length);
    };
    while (j < lines.length && !closes(lines[j]!)) {
      code.push(lines[j]!.startsWith(indent!) ? lines[j]!.slice(indent!.length) : lines[j]!);
      j++;
    }
    if (/^(ts|typescript)$/i.test(lang!) && !/\bno-check\b/.test(rest!)) out.push({ line: i + 2, code });
    i = j;
  }
  return out;
}

/** Names (values and types) the package exports. */
function packageExports(): string[] {
  const program = ts.createProgram([PACKAGE_TYPES], { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, noEmit: true, skipLibCheck: true });
  const checker = program.getTypeChecker();
  const sym = checker.getSymbolAtLocation(program.getSourceFile(PACKAGE_TYPES)!);
  assert.ok(sym, 'the package types have a module symbol');
  return checker.getExportsOfModule(sym).map((s) => s.getName());
}

/** One module holding every block, each nested in the previous one's scope; its README line per line. */
function assemble(blocks: Block[], exportsOfPackage: string[]): { text: string; origin: Array<number | null> } {
  const hoisted: string[] = [];
  const fromPackage = new Set<string>();
  const body: Array<{ text: string; origin: number | null }> = [];
  for (const b of blocks) {
    body.push({ text: '{', origin: null });
    for (let k = 0; k < b.code.length; k++) {
      const line = b.code[k]!;
      // Single-line imports are hoisted; imports from the package are merged into one.
      const imp = /^import\s+(type\s+)?\{([^}]*)\}\s+from\s+['"]([^'"]+)['"];?\s*$/.exec(line);
      if (imp && imp[3] === 'walstream') {
        for (const n of imp[2]!.split(',').map((x) => x.trim().replace(/^type\s+/, '')).filter(Boolean)) fromPackage.add(n);
        body.push({ text: '', origin: b.line + k });
      } else if (/^import\s/.test(line)) {
        if (!hoisted.includes(line)) hoisted.push(line);
        body.push({ text: '', origin: b.line + k });
      } else {
        body.push({ text: line, origin: b.line + k });
      }
    }
  }
  for (const n of exportsOfPackage) fromPackage.add(n);
  const head = [`import { ${[...fromPackage].sort().join(', ')} } from 'walstream';`, ...hoisted, 'export async function readme(): Promise<void> {'];
  const tail = [...blocks.map(() => '}'), '}'];
  const all = [...head.map((text) => ({ text, origin: null })), ...body, ...tail.map((text) => ({ text, origin: null }))];
  return { text: all.map((x) => x.text).join('\n'), origin: all.map((x) => x.origin) };
}

/** Type-check the blocks under strict; errors as `README.md:<line>: <message>`. */
export function checkBlocks(blocks: Block[], file = 'README.md'): string[] {
  const { text, origin } = assemble(blocks, packageExports());
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2022.d.ts', 'lib.es2024.sharedmemory.d.ts'],
    types: ['node'],
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    baseUrl: ROOT,
    paths: { walstream: [PACKAGE_TYPES] },
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) => (path.resolve(name) === VIRTUAL_FILE ? ts.createSourceFile(name, text, lang, true) : getSourceFile(name, lang, ...rest));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => path.resolve(name) === VIRTUAL_FILE || fileExists(name);
  const program = ts.createProgram([VIRTUAL_FILE], options, host);
  const diags = [...program.getSyntacticDiagnostics(), ...program.getSemanticDiagnostics(), ...program.getOptionsDiagnostics()];
  return diags.map((d) => {
    const msg = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    if (d.file === undefined || d.start === undefined || path.resolve(d.file.fileName) !== VIRTUAL_FILE) return `${d.file?.fileName ?? 'options'}: ${msg}`;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    return `${file}:${origin[line] ?? '?'}: ${msg}`;
  });
}

test("README.md's ts blocks compile under strict against the package's types", () => {
  assert.ok(fs.existsSync(PACKAGE_TYPES), `${PACKAGE_TYPES} is built`);
  const blocks = tsBlocks(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
  assert.ok(blocks.length >= 4, `found ${blocks.length} ts blocks`);
  assert.deepEqual(checkBlocks(blocks), []);
});

test('the checker reports a bad block at its line, sees earlier blocks, and skips no-check blocks', () => {
  const md = [
    '# x', // 1
    '```ts', // 2
    "import { Primary } from 'walstream';", // 3
    "const primary = await Primary.open({ dataDir: './d' });", // 4
    '```', // 5
    '```typescript', // 6
    'const n: number = primary.stats().systemIdentifier;', // 7: a string
    'await primary.nope();', // 8
    '```', // 9
    '```ts no-check', // 10
    'this is not TypeScript', // 11
    '```', // 12
    '```sh', // 13
    'echo not checked', // 14
    '```', // 15
  ].join('\n');
  const blocks = tsBlocks(md);
  assert.deepEqual(blocks.map((b) => b.line), [3, 7]);
  const errors = checkBlocks(blocks, 'x.md');
  assert.equal(errors.length, 2, errors.join('\n'));
  assert.match(errors[0]!, /^x\.md:7: Type 'string' is not assignable to type 'number'/);
  assert.match(errors[1]!, /^x\.md:8: Property 'nope' does not exist on type 'Primary'/);
});
