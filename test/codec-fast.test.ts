// The value codec's fast path (writeValue: Uint8Array, Buffer, ASCII strings) and the WAL record
// builder (TxnRecordBuilder): byte-identical to msgpackr and to buildTxnRecord, decodable by the
// same decoders. Pure: no files, no threads.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeValue, encodeValue, fastValueBound, writeValue } from '../src/util/codec.js';
import { buildTxnRecord, decodeTxnMainData, OP_DELETE, OP_PUT, TxnRecordBuilder, type TxnOp } from '../src/wal/record.js';
import { SharedStore } from '../src/storage/store.js';
import { prng } from './helpers/prng.js';

function fast(v: unknown): Uint8Array | null {
  const bound = fastValueBound(v);
  if (bound < 0) return null;
  const out = new Uint8Array(bound + 3).fill(0xee);
  const end = writeValue(v, out, 3);
  return end < 0 ? null : out.subarray(3, end);
}

test('writeValue is byte-identical to msgpackr for Uint8Array, Buffer and ASCII strings at every header boundary', () => {
  const sizes = [0, 1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 254, 255, 256, 257, 984, 4096, 65534, 65535, 65536, 65537, 200_000];
  for (const n of sizes) {
    const u = new Uint8Array(n);
    for (let i = 0; i < n; i++) u[i] = (i * 31 + 7) & 0xff;
    const cases: unknown[] = [u, Buffer.from(u), 'a'.repeat(n), String.fromCharCode(...Array.from({ length: Math.min(n, 5000) }, (_, i) => 32 + (i % 95)))];
    for (const v of cases) {
      const f = fast(v);
      assert.ok(f !== null, `fast path taken for ${typeof v} ${n}`);
      assert.deepEqual(Buffer.from(f), Buffer.from(encodeValue(v)), `bytes for ${Object.prototype.toString.call(v)} of ${n}`);
      const back = decodeValue(f);
      if (typeof v === 'string') assert.equal(back, v);
      else assert.deepEqual(Buffer.from(back as Uint8Array), Buffer.from(v as Uint8Array));
    }
  }
  // a view at an offset into a larger buffer
  const big = new Uint8Array(1000).map((_, i) => i & 0xff);
  const view = big.subarray(13, 500);
  assert.deepEqual(Buffer.from(fast(view)!), Buffer.from(encodeValue(view)));
});

test('writeValue declines what it does not encode exactly (non-ASCII strings, other types)', () => {
  for (const v of ['é', 'abc\u00ff', 'x'.repeat(100) + '€', '\ud800', 1, 1.5, null, undefined, true, { a: 1 }, [1, 2], new Uint16Array(3), new Uint8ClampedArray(2), new Date(0)]) {
    assert.equal(fast(v), null, `declined ${String(v)}`);
  }
  class Sub extends Uint8Array {}
  assert.equal(fast(new Sub(4)), null);
});

test('TxnRecordBuilder makes the same record as buildTxnRecord, and is the store batch of its own bytes', () => {
  const rnd = prng(7);
  for (let round = 0; round < 200; round++) {
    const b = new TxnRecordBuilder(rnd() < 0.5 ? 256 : 64 * 1024);
    b.reset();
    const ops: TxnOp[] = [];
    const nops = 1 + Math.floor(rnd() * 6);
    for (let i = 0; i < nops; i++) {
      const table = ['t', 'wal', 'accounts_2024'][Math.floor(rnd() * 3)]!;
      const strKey = rnd() < 0.7;
      const key = strKey ? (rnd() < 0.2 ? `ключ${i}` : `k${Math.floor(rnd() * 1e6)}`) : new Uint8Array(1 + Math.floor(rnd() * 40)).map(() => Math.floor(rnd() * 256));
      const tb = new TextEncoder().encode(table);
      const keyBytes = typeof key === 'string' ? new TextEncoder().encode(key) : key;
      if (rnd() < 0.2) {
        b.openOp(OP_DELETE, table, tb, key);
        b.closeOp();
        ops.push({ kind: 'delete', table, key: keyBytes, keyIsString: strKey });
      } else {
        const r = rnd();
        const vlen = Math.floor(rnd() * (rnd() < 0.1 ? 70_000 : 1500));
        const value = r < 0.4 ? new Uint8Array(vlen).fill(0x61) : r < 0.6 ? 'v'.repeat(vlen) : r < 0.8 ? { n: vlen, s: 'é' } : Buffer.alloc(vlen, 1);
        b.openOp(OP_PUT, table, tb, key);
        b.writeValue(value);
        b.closeOp();
        ops.push({ kind: 'put', table, key: keyBytes, keyIsString: strKey, value: encodeValue(value).slice() });
      }
      if (rnd() < 0.1) {
        // an op refused half-way leaves nothing behind
        b.openOp(OP_PUT, 'x', new Uint8Array([0x78]), 'refused');
        b.writeValue(new Uint8Array(100));
      }
    }
    const prev = Math.floor(rnd() * 2 ** 40);
    const rec = b.finish(1234, prev, 5678);
    const want = buildTxnRecord(1234, prev, 5678, ops);
    assert.deepEqual(Buffer.from(rec), Buffer.from(want), `round ${round}`);
    // the builder as a batch holds exactly the decoded ops
    b.seal();
    const s1 = SharedStore.create({ initialBytes: 1 << 20, maxStoreBytes: 1 << 26 });
    const s2 = SharedStore.create({ initialBytes: 1 << 20, maxStoreBytes: 1 << 26 });
    s1.applyBatch(b);
    s2.applyTransaction(ops);
    assert.equal(s1.digest(), s2.digest());
  }
});

test('key refusals: empty and oversized keys throw and write nothing', () => {
  const b = new TxnRecordBuilder();
  b.reset();
  assert.throws(() => b.openOp(OP_PUT, 't', new Uint8Array([0x74]), ''), /must not be empty/);
  assert.throws(() => b.openOp(OP_PUT, 't', new Uint8Array([0x74]), 'k'.repeat(5000)), /longer than 4096 bytes/);
  assert.throws(() => b.openOp(OP_PUT, 't', new Uint8Array([0x74]), 5 as unknown as string), /must be a string or Uint8Array/);
  assert.equal(b.n, 0);
  const rec = b.finish(1, 0, 0);
  const d = decodeTxnMainData(rec.subarray(26), false);
  assert.equal(d.ops.length, 0);
});
