// Store snapshots: round trip (digest equal), a fuzzy snapshot taken while the writer keeps going
// (repaired by replaying the later ops), and damaged files (flipped bytes, truncation, trailing
// bytes) reported as WS_CHECKPOINT_CORRUPT with the target store left empty.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Packr } from 'msgpackr';
import { SharedStore, type StoreOp } from '../src/storage/store.js';
import { readSnapshot, writeSnapshot, SNAPSHOT_HEADER_BYTES } from '../src/storage/snapshot.js';
import { WalstreamError } from '../src/errors.js';
import { tmpDir, rmrf } from './helpers/tmp.js';

const packr = new Packr({ useRecords: false });
const enc = new TextEncoder();
const dirs: string[] = [];
after(() => dirs.forEach(rmrf));
function newDir(): string {
  const d = tmpDir('walstream-snap-');
  dirs.push(d);
  return d;
}

function filled(): SharedStore {
  const s = SharedStore.create();
  const ops: StoreOp[] = [];
  for (let i = 0; i < 4000; i++) {
    ops.push({ kind: 'put', table: `t${i % 4}`, key: enc.encode(`key-${i}`), keyIsString: true, value: packr.pack({ i, s: 'x'.repeat(i % 200), b: new Uint8Array(i % 30) }) });
  }
  for (let i = 0; i < 300; i++) ops.push({ kind: 'put', table: 'bin', key: Uint8Array.of(i >> 8, i & 255, 0, 255), keyIsString: false, value: packr.pack(i) });
  ops.push({ kind: 'put', table: 'big', key: enc.encode('one'), keyIsString: true, value: packr.pack('m'.repeat(1 << 20)) });
  ops.push({ kind: 'put', table: 'big', key: enc.encode('two'), keyIsString: true, value: new Uint8Array(3 << 20).fill(7) });
  ops.push({ kind: 'put', table: 'ünï', key: new Uint8Array(0), keyIsString: false, value: new Uint8Array(0) });
  s.applyTransaction(ops);
  return s;
}

function isCorrupt(e: unknown): boolean {
  return e instanceof WalstreamError && e.code === 'WS_CHECKPOINT_CORRUPT' && e.sqlstate === 'XX001';
}

test('snapshot round trip keeps every entry, flag and the meta bytes', async () => {
  const dir = newDir();
  const file = path.join(dir, 'snap');
  const src = filled();
  const meta = Uint8Array.from([9, 8, 7, 6, 5]);
  const w = await writeSnapshot(src, file, meta);
  assert.equal(w.entries, src.count());
  assert.equal(w.bytes, fs.statSync(file).size);
  assert.equal(fs.existsSync(file + '.tmp'), false);
  const dst = SharedStore.create();
  const r = await readSnapshot(file, dst);
  assert.deepEqual(r, { meta, entries: src.count() });
  assert.equal(dst.digest(), src.digest());
  assert.deepEqual(dst.tables(), src.tables());
  assert.deepEqual(dst.scan('bin', { limit: 3 }), src.scan('bin', { limit: 3 }));
  assert.equal(dst.get('t1', 'key-1')?.constructor, Object);
  dst.checkInvariants();
  // an empty store round-trips too
  const e = path.join(dir, 'empty');
  await writeSnapshot(SharedStore.create(), e, new Uint8Array(0));
  const back = SharedStore.create();
  assert.deepEqual(await readSnapshot(e, back), { meta: new Uint8Array(0), entries: 0 });
  assert.equal(back.count(), 0);
  // only into an empty store; a missing file says so
  await assert.rejects(readSnapshot(file, dst), (x: unknown) => (x as WalstreamError).code === 'WS_INVALID_OPTION');
  await assert.rejects(readSnapshot(path.join(dir, 'nope'), SharedStore.create()), (x: unknown) => (x as WalstreamError).code === 'WS_UNDEFINED_FILE');
});

test('a fuzzy snapshot plus the ops applied meanwhile reproduces the store', async () => {
  const dir = newDir();
  const file = path.join(dir, 'fuzzy');
  const s = filled();
  const later: StoreOp[][] = [];
  let stop = false;
  let n = 0;
  // the writer keeps going on this thread while the snapshot is written
  const writer = (async () => {
    while (!stop) {
      const i = n++;
      const ops: StoreOp[] = [
        { kind: 'put', table: `t${i % 4}`, key: enc.encode(`key-${(i * 7919) % 5000}`), keyIsString: true, value: packr.pack({ later: i }) },
        { kind: 'delete', table: `t${(i + 1) % 4}`, key: enc.encode(`key-${(i * 104729) % 4000}`), keyIsString: true },
        { kind: 'put', table: 'new', key: enc.encode(`n${i}`), keyIsString: true, value: packr.pack(i) },
      ];
      s.applyTransaction(ops);
      later.push(ops);
      await new Promise((r) => setImmediate(r));
    }
  })();
  const res = await writeSnapshot(s, file, new Uint8Array(0));
  stop = true;
  await writer;
  assert.ok(later.length > 2, `the writer made progress during the snapshot (${later.length} txns)`);
  const dst = SharedStore.create();
  await readSnapshot(file, dst);
  assert.equal((await readSnapshot(file, SharedStore.create())).entries, res.entries);
  for (const ops of later) dst.applyTransaction(ops); // WAL replay from the redo point
  assert.equal(dst.digest(), s.digest());
});

test('damaged snapshots are refused with WS_CHECKPOINT_CORRUPT and leave the store empty', async () => {
  const dir = newDir();
  const file = path.join(dir, 'good');
  const src = SharedStore.create();
  const ops: StoreOp[] = [];
  for (let i = 0; i < 2500; i++) ops.push({ kind: 'put', table: `t${i % 2}`, key: enc.encode(`k${i}`), keyIsString: true, value: packr.pack({ i, pad: 'z'.repeat(100) }) });
  src.applyTransaction(ops);
  await writeSnapshot(src, file, Uint8Array.of(1, 2, 3));
  const good = fs.readFileSync(file);
  const cases: Array<[string, Buffer]> = [];
  const flip = (at: number) => {
    const b = Buffer.from(good);
    b[at]! ^= 0x10;
    return b;
  };
  cases.push(['magic', flip(0)]);
  cases.push(['version', flip(8)]);
  cases.push(['first record', flip(SNAPSHOT_HEADER_BYTES)]);
  cases.push(['a value byte', flip(Math.floor(good.length / 2))]);
  cases.push(['a length', flip(SNAPSHOT_HEADER_BYTES + 1 + 1 + 2 + 1 + 5)]);
  cases.push(['the entry count', flip(good.length - 6)]);
  cases.push(['the CRC', flip(good.length - 1)]);
  for (const cut of [0, 5, SNAPSHOT_HEADER_BYTES, 1000, Math.floor(good.length / 2), good.length - 4, good.length - 1]) cases.push([`truncated to ${cut}`, good.subarray(0, cut)]);
  cases.push(['trailing bytes', Buffer.concat([good, Buffer.from([0])])]);
  cases.push(['empty file', Buffer.alloc(0)]);
  const huge = Buffer.from(good);
  huge.writeUInt32LE(0x7ffffff0, SNAPSHOT_HEADER_BYTES + 1 + 1 + 2 + 1 + 4); // a value length far past the end
  cases.push(['huge length', huge]);
  for (const [what, bytes] of cases) {
    const f = path.join(dir, 'bad');
    fs.writeFileSync(f, bytes);
    const dst = SharedStore.create();
    await assert.rejects(readSnapshot(f, dst), (e: unknown) => {
      assert.ok(isCorrupt(e), `${what}: ${String(e)}`);
      assert.ok((e as Error).message.includes(f));
      return true;
    });
    assert.equal(dst.count(), 0, `${what}: store left empty`);
    assert.deepEqual(dst.tables(), []);
  }
  // the good file still loads
  const ok = SharedStore.create();
  await readSnapshot(file, ok);
  assert.equal(ok.digest(), src.digest());
});
