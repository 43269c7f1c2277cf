// walstream loads no native code: msgpackr's optional accelerator (msgpackr-extract, a .node addon
// that npm installs beside msgpackr where it can) stays unloaded in every thread. Checked through
// the process's memory map (/proc/self/maps lists every .node file dlopen()ed by any thread):
// - a process using walstream as a package user would (the package entry point): a primary with its
//   walwriter, an in-process standby (walsender, walreceiver, startup workers) and a piscina reader
//   thread, all having encoded or decoded values;
// - a worker thread started with an empty environment that imports the value codec;
// - and, as the control, a process importing msgpackr directly, which does load the addon when it is
//   installed (skipped otherwise: then nothing could load it anyway).
// Children are separate processes (scripts in a temp dir) so that nothing this test process loads can hide or fake a load;
// they remove their data directories, and the test removes its temp dir.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { rmrf, tmpDir } from './helpers/tmp.js';

const here = path.dirname(fileURLToPath(import.meta.url)); // dist/test
const root = path.resolve(here, '../..');
const entryUrl = pathToFileURL(path.join(root, 'dist/src/index.js')).href;
const msgpackrUrl = pathToFileURL(path.join(root, 'dist/src/util/msgpackr.js')).href;
/** The msgpackr module walstream's own modules load (same URL, so the same instance). */
const msgpackrPackageUrl = import.meta.resolve('msgpackr');
const hasMaps = fs.existsSync('/proc/self/maps');

const dirs: string[] = [];
after(() => dirs.forEach(rmrf));

/** JS source: the .node files mapped into this process, deduplicated. */
const NODE_FILES_SRC = `(await import('node:fs')).readFileSync('/proc/self/maps', 'utf8').split('\\n')
  .map((l) => l.trim().split(/\\s+/).slice(5).join(' ')).filter((f, i, a) => f.endsWith('.node') && a.indexOf(f) === i)`;

/** Run an ES module source as a script in `dir` in a child node process; its last stdout line is JSON. */
function runChild(dir: string, src: string, env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const script = path.join(dir, `child-${Date.now()}.mjs`);
  fs.writeFileSync(script, src);
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script], { cwd: dir, env, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`child failed: ${err.message}\n${stderr}`));
      const last = stdout.trim().split('\n').pop() ?? '';
      resolve(JSON.parse(last) as Record<string, unknown>);
    });
  });
}

/** Is msgpackr's accelerator installed for this platform (so that the control can see it load)? */
function acceleratorInstalled(): boolean {
  try {
    const req = createRequire(path.join(root, 'node_modules/msgpackr/package.json'));
    const extract = req.resolve('msgpackr-extract');
    const lib = createRequire(extract)('node-gyp-build-optional-packages') as { path(dir: string): string };
    return typeof lib.path(path.dirname(extract)) === 'string';
  } catch {
    return false;
  }
}

test('a primary, an in-process standby and a piscina reader thread load no .node file', { skip: !hasMaps && 'no /proc/self/maps' }, async () => {
  const dir = tmpDir('walstream-nonative-');
  dirs.push(dir);
  const env = { ...process.env };
  delete env.MSGPACKR_NATIVE_ACCELERATION_DISABLED;
  const r = await runChild(dir, `
    const { Primary, Standby } = await import(${JSON.stringify(entryUrl)});
    const dir = ${JSON.stringify(dir)};
    const p = await Primary.open({ dataDir: dir + '/p', port: 0, walSegmentSize: 1 << 20 });
    let s;
    try {
      await p.transaction((tx) => tx.put('t', 'a', { n: 1, list: [1, 2, 3], when: new Date(0) }));
      s = await Standby.open({ dataDir: dir + '/s', primaryConninfo: { inProcess: p, applicationName: 's1' }, readerThreads: 1 });
      const lsn = await p.transaction((tx) => tx.put('t', 'b', { n: 2, map: new Map([['k', 'v']]) }));
      await s.waitForReplay(lsn);
      const rows = await s.pool.scan('t');
      const { isNativeAccelerationEnabled } = await import(${JSON.stringify(msgpackrPackageUrl)});
      console.log(JSON.stringify({ rows: rows.length, b: s.get('t', 'b').n, native: isNativeAccelerationEnabled, nodeFiles: ${NODE_FILES_SRC} }));
    } finally {
      await s?.close();
      await p.close();
    }`, env);
  assert.equal(r.rows, 2, 'the reader thread decoded both rows');
  assert.equal(r.b, 2, 'the standby replayed the value');
  assert.equal(r.native, false, "msgpackr reports no native acceleration in the main thread");
  assert.deepEqual(r.nodeFiles, [], 'no .node file is mapped into the process');
});

test('a worker thread with an empty environment loads msgpackr without its accelerator', { skip: !hasMaps && 'no /proc/self/maps' }, async () => {
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     import(workerData.url).then(async (m) => {
       const { encodeValue, decodeValue } = await import(workerData.codec);
       const back = decodeValue(encodeValue({ x: [1, 'two'] }));
       const maps = require('node:fs').readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.trim().endsWith('.node'));
       parentPort.postMessage({ native: m.isNativeAccelerationEnabled, env: process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED, back, nodeFiles: maps.length });
     });`,
    { eval: true, env: {}, workerData: { url: msgpackrUrl, codec: pathToFileURL(path.join(root, 'dist/src/util/codec.js')).href } },
  );
  const msg = (await new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  })) as { native: boolean; env: string; back: unknown; nodeFiles: number };
  await w.terminate();
  assert.deepEqual(msg.back, { x: [1, 'two'] });
  assert.equal(msg.env, 'true', 'the worker set the variable itself');
  assert.equal(msg.native, false);
  assert.equal(msg.nodeFiles, 0);
});

test('control: msgpackr imported directly does load its accelerator when it is installed', { skip: (!hasMaps && 'no /proc/self/maps') || (!acceleratorInstalled() && "msgpackr's accelerator is not installed here") }, async () => {
  const dir = tmpDir('walstream-nonative-');
  dirs.push(dir);
  const env = { ...process.env };
  delete env.MSGPACKR_NATIVE_ACCELERATION_DISABLED;
  const r = await runChild(dir, `const { isNativeAccelerationEnabled } = await import(${JSON.stringify(msgpackrPackageUrl)}); console.log(JSON.stringify({ native: isNativeAccelerationEnabled, nodeFiles: ${NODE_FILES_SRC} }));`, env);
  assert.equal(r.native, true);
  assert.ok((r.nodeFiles as string[]).some((f) => f.includes('msgpackr-extract')), `the memory map shows the addon: ${JSON.stringify(r.nodeFiles)}`);
});
