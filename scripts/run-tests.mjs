#!/usr/bin/env node
// `npm test`: runs every compiled test file (dist/test/**/*.test.js, sorted) with Node's built-in
// runner, one file at a time (--test-concurrency=1 where this Node supports it), each file limited
// to 10 minutes. Output is the readable `spec` reporter; a TAP copy goes to a temp file that is
// parsed for the final line `N passed, N failed` (failed includes cancelled, e.g. timed-out, tests)
// and then removed. Exit code: the runner's (1 if it was killed, or if a test source has no
// compiled file). Extra arguments select files whose path contains any of them:
// `npm test -- crc32c wal-format`.
// Compiled files whose test/*.ts source is gone (stale dist/) are skipped, with a note.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fileTimeoutMs = 10 * 60 * 1000;

/** Paths (relative to `dir`) of files under `dir` whose name ends with `suffix`. */
function walk(dir, suffix, rel = '') {
  const out = [];
  let entries;
  try {
    entries = fs.readdirSync(path.join(dir, rel), { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) out.push(...walk(dir, suffix, r));
    else if (e.name.endsWith(suffix)) out.push(r);
  }
  return out;
}

const filters = process.argv.slice(2);
const selected = (p) => filters.length === 0 || filters.some((f) => p.includes(f));
const sources = new Set(walk(path.join(root, 'test'), '.test.ts').map((p) => p.replace(/\.ts$/, '.js')));
const compiled = walk(path.join(root, 'dist', 'test'), '.test.js');

let setupProblem = false;
for (const p of compiled) {
  if (!sources.has(p)) console.log(`run-tests: skipping dist/test/${p}: its source test/${p.replace(/\.js$/, '.ts')} no longer exists`);
}
for (const p of sources) {
  if (!compiled.includes(p) && selected(p)) {
    console.error(`run-tests: test/${p.replace(/\.js$/, '.ts')} has no compiled dist/test/${p}: run the build (npx tsc -p .)`);
    setupProblem = true;
  }
}
const files = compiled
  .filter((p) => sources.has(p) && selected(p))
  .sort()
  .map((p) => path.join('dist', 'test', p));
if (files.length === 0) {
  console.error(`run-tests: no test files${filters.length ? ` match ${filters.join(' ')}` : ''}`);
  console.log('0 passed, 0 failed');
  process.exit(1);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'walstream-run-tests-'));
const tapFile = path.join(tmp, 'report.tap');
const args = [
  '--test',
  ...(process.allowedNodeEnvironmentFlags.has('--test-concurrency') ? ['--test-concurrency=1'] : []),
  `--test-timeout=${fileTimeoutMs}`,
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=tap',
  `--test-reporter-destination=${tapFile}`,
  ...files,
];
const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit' });
const forward = (sig) => child.kill(sig);
process.on('SIGINT', forward);
process.on('SIGTERM', forward);

child.on('exit', (code, signal) => {
  let tap = '';
  try {
    tap = fs.readFileSync(tapFile, 'utf8');
  } catch {
    // the runner died before writing its report
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  const count = (name) => {
    const all = [...tap.matchAll(new RegExp(`^# ${name} (\\d+)$`, 'gm'))];
    return all.length ? Number(all[all.length - 1][1]) : 0;
  };
  const pass = count('pass');
  const fail = count('fail');
  const cancelled = count('cancelled');
  if (signal) console.error(`run-tests: the test runner was killed by ${signal}`);
  if (cancelled) console.log(`(${cancelled} cancelled, e.g. timed out after ${fileTimeoutMs / 60000} min per file, counted as failed)`);
  console.log(`${pass} passed, ${fail + cancelled} failed`);
  process.exit(signal ? 1 : code || (setupProblem ? 1 : 0));
});
