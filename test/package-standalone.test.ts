// The npm package on its own: exactly the files `npm pack` would ship (package.json "files"),
// copied into a temp dir beside the runtime dependencies only (no devDependencies), work:
// `walstream --help`, the library entry point, and `walstream profile replay` of WAL the packaged
// library wrote (the profiler's histograms and tables are runtime dependencies), whose `--html`
// fails with one line naming the missing development package (chart.js) instead of a stack
// trace. Also: the package ships no TypeScript sources, no tests (only the PostgreSQL helpers the
// benchmarks use) and no
// native code. The temp dir is removed at the end.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { rmrf, tmpDir } from './helpers/tmp.js';

/** The PostgreSQL helpers the benchmarks use (bench/sync.ts, bench/failover-pg.ts): shipped with them. */
const BENCH_PG_HELPERS = ['dist/test/helpers/pgcluster.js', 'dist/test/helpers/pgnode.js'];
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dirs: string[] = [];
after(() => dirs.forEach(rmrf));

function run(cwd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('the packed files work on their own with the runtime dependencies only', async () => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const files = (JSON.parse(out) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
  for (const f of ['package.json', 'README.md', 'native-free.md', 'bin/walstream.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'dist/bench/harness.js']) {
    assert.ok(files.includes(f), `the package ships ${f}`);
  }
  assert.deepEqual(files.filter((f) => /\.(ts|cts|mts)$/.test(f) && !f.endsWith('.d.ts')), [], 'no TypeScript sources');
  assert.deepEqual(files.filter((f) => f.startsWith('test/') || (f.startsWith('dist/test/') && !BENCH_PG_HELPERS.includes(f))), [], 'no tests');
  assert.deepEqual(files.filter((f) => /\.(node|wasm)$/.test(f) || f.endsWith('.map')), [], 'no binaries, no source maps');

  const pkgDir = tmpDir('walstream-pack-');
  dirs.push(pkgDir);
  for (const f of files) {
    fs.mkdirSync(path.dirname(path.join(pkgDir, f)), { recursive: true });
    fs.copyFileSync(path.join(root, f), path.join(pkgDir, f));
  }
  // Runtime dependencies only, as links (their own dependencies resolve beside their real paths).
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
  assert.ok(!('tinybench' in pkg.dependencies) && !('chart.js' in pkg.dependencies), 'benchmark-only packages and the HTML reports\' chart.js are devDependencies');
  for (const dep of Object.keys(pkg.dependencies)) {
    const link = path.join(pkgDir, 'node_modules', dep);
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(path.join(root, 'node_modules', dep), link, 'dir');
  }

  const help = await run(pkgDir, ['bin/walstream.js', '--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /bench/);

  const lib = await run(pkgDir, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(pathToFileURL(path.join(pkgDir, 'dist/src/index.js')).href)}); console.log(typeof m.Primary, typeof m.Standby)`]);
  assert.equal(lib.code, 0, lib.stderr);
  assert.equal(lib.stdout.trim(), 'function function');

  const data = path.join(pkgDir, 'data');
  // (A script file: the primary's worker threads inherit --input-type, which they cannot use.)
  fs.writeFileSync(path.join(pkgDir, 'write-wal.mjs'), `const { Primary } = await import(${JSON.stringify(pathToFileURL(path.join(pkgDir, 'dist/src/index.js')).href)});
    const p = await Primary.open({ dataDir: ${JSON.stringify(data)} });
    for (let i = 0; i < 20; i++) await p.transaction((tx) => tx.put('t', 'k' + i, { i }));
    await p.close();`);
  const write = await run(pkgDir, ['write-wal.mjs']);
  assert.equal(write.code, 0, write.stderr);
  const profile = await run(pkgDir, ['bin/walstream.js', 'profile', 'replay', data]);
  assert.equal(profile.code, 0, profile.stderr);
  assert.match(profile.stdout, /^walstream profile replay: /);
  assert.match(profile.stdout, /│ walstream\/TXN\s+│ ≤ 128 B\s+│\s+20 │/, 'the 20 transactions in the per-kind table');

  const html = await run(pkgDir, ['bin/walstream.js', 'profile', 'replay', data, '--html', path.join(pkgDir, 'r.html')]);
  assert.equal(html.code, 1);
  assert.equal(html.stdout, '');
  const lines = html.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${html.stderr}`);
  assert.match(lines[0]!, /^walstream: .*"chart.js".*npm install chart.js/);
});
