// tinybench: the pieces of a commit on the primary's thread, side by side with memcpy of the
// same bytes (the limit): building a 1 KiB TXN record (CRC included; buildTxnRecord from op
// objects, and TxnRecordBuilder as transactions do), inserting it into the wal_buffers ring,
// applying it to the store, and a whole synchronous_commit=off transaction.
import { Bench } from 'tinybench';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildTxnRecord, OP_PUT, TxnRecordBuilder, type TxnOp } from '../src/wal/record.js';
import { XLogCtl, XC_WRITTEN } from '../src/wal/xlogctl.js';
import { WalInserter } from '../src/wal/insert.js';
import { SharedStore } from '../src/storage/store.js';
import { Primary } from '../src/primary/primary.js';
import { encodeValue } from '../src/util/codec.js';

const value = encodeValue(new Uint8Array(1024 - 60).fill(0x61));
const ops: TxnOp[] = [{ kind: 'put', table: 'wal', key: new TextEncoder().encode('r1234'), keyIsString: true, value }];
const scratch = new Uint8Array(64 * 1024);
const rec = buildTxnRecord(1000, 0, 0, ops, scratch).slice();
const ctl = XLogCtl.create(64 << 20, 16 << 20, 1n, 1, 16 << 20);
const ins = new WalInserter(ctl, 16 << 20, 0);
const store = SharedStore.create({});
const src = Buffer.alloc(rec.length);
const dst = Buffer.alloc(rec.length);
let k = 0;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walstream-bench-'));
const primary = await Primary.open({ dataDir: path.join(dir, 'd'), checkpointTimeoutMs: 0, maxWalSizeBytes: 8 * 2 ** 30, walBuffersBytes: 64 << 20 });
const raw = new Uint8Array(1024 - 60).fill(0x62);
// the commit path's own pieces: the record built in place, and the store applying its bytes
const builder = new TxnRecordBuilder();
const walTable = new TextEncoder().encode('wal');
const keys = Array.from({ length: 10_000 }, (_, i) => `r${i}`);
const buildPut = (i: number) => {
  builder.reset();
  builder.openOp(OP_PUT, 'wal', walTable, keys[i % 10_000]!);
  builder.writeValue(raw);
  builder.closeOp();
};
const store2 = SharedStore.create({ maxStoreBytes: 256 << 20 });
for (let i = 0; i < 10_000; i++) {
  buildPut(i);
  builder.seal();
  store2.applyBatch(builder);
}
let j = 0;

const bench = new Bench({ time: 1000 });
bench
  .add('memcpy 1 KiB (limit)', () => {
    src.copy(dst);
  })
  .add('buildTxnRecord 1 KiB (incl. CRC-32C)', () => {
    buildTxnRecord(1000, 0, 0, ops, scratch);
  })
  .add('WalInserter.insert 1 KiB', () => {
    ins.insert(rec, rec.length);
    ctl.store(XC_WRITTEN, ins.insertPos); // pretend the walwriter keeps up
  })
  .add('store.applyTransaction 1 put 1 KiB', () => {
    store.applyTransaction([{ kind: 'put', table: 'wal', key: ops[0]!.key, keyIsString: true, value }]);
  })
  .add('TxnRecordBuilder 1 put 1 KiB + finish (incl. CRC-32C)', () => {
    buildPut(j++);
    builder.finish(1000, 0, 0);
  })
  .add('TxnRecordBuilder 1 put + store.applyBatch (10k keys)', () => {
    buildPut(j++);
    builder.seal();
    store2.applyBatch(builder);
  })
  .add('encodeValue 1 KiB Uint8Array', () => {
    encodeValue(raw);
  })
  .add('primary.transaction off, 1 KiB', async () => {
    await primary.transaction((tx) => tx.put('wal', `r${k++ % 10000}`, raw), { synchronousCommit: 'off' });
  });
await bench.run();
const rows = bench.tasks.map((t) => {
  const r = t.result as unknown as { throughput: { mean: number }; latency: { mean: number } };
  return { name: t.name, opsPerSec: Math.round(r.throughput.mean), meanNs: Math.round(r.latency.mean * 1e6) };
});
console.log(JSON.stringify({ bench: 'wal-insert', recordBytes: rec.length, rows }, null, 2));
await primary.close();
fs.rmSync(dir, { recursive: true, force: true });
