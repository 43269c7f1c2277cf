// WalSndCtl: slot claims are exclusive across threads, max_wal_senders gives 53300, standby
// reports are sanitised (0 = unknown, no going backwards, clamped to what was sent), min sent
// counts only streaming walsenders, fixed-size text fields truncate on a character boundary.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { WalSndCtl, WalSndState, WS_APPNAME_MAX } from '../src/replication/walsndctl.js';
import { WalstreamError } from '../src/errors.js';

const info = { applicationName: 'a', clientAddr: '127.0.0.1', clientPort: 1, backendStartMs: 0 };

test('claims up to max, then FATAL 53300; release frees the slot', () => {
  const w = WalSndCtl.create(2);
  const a = w.claim(info);
  const b = w.claim(info);
  assert.notEqual(a.slot, b.slot);
  assert.throws(() => w.claim(info), (e: unknown) => e instanceof WalstreamError && e.sqlstate === '53300' && e.message === 'number of requested standby connections exceeds max_wal_senders (currently 2)');
  assert.equal(w.release(a.slot, b.id), false, 'another id cannot release it');
  assert.equal(w.release(a.slot, a.id), true);
  assert.equal(w.count(), 1);
  assert.equal(w.claim(info).slot, a.slot);
});

test('status updates are sanitised and keep apply <= flush <= write <= sent', () => {
  const w = WalSndCtl.create(1);
  const { slot } = w.claim({ ...info, applicationName: 'é'.repeat(WS_APPNAME_MAX) });
  assert.equal(Buffer.byteLength(w.read(slot)!.applicationName), WS_APPNAME_MAX);
  assert.equal(w.minSent(), null, 'not streaming: pins nothing');
  w.startStreaming(slot, 1000, WalSndState.CATCHUP);
  assert.equal(w.minSent(), 1000);
  w.setSent(slot, 5000);
  assert.throws(() => w.setSent(slot, 4000), /backwards/);
  assert.deepEqual(w.reportReply(slot, { write: 9000, flush: 0, apply: 0, replyTime: 1 }), { write: 5000, flush: 0, apply: 0 });
  assert.deepEqual(w.reportReply(slot, { write: 3000, flush: 6000, apply: 7000, replyTime: 2 }), { write: 5000, flush: 5000, apply: 5000 });
  assert.deepEqual(w.reportReply(slot, { write: 0, flush: 0, apply: 0, replyTime: 3 }), { write: 5000, flush: 5000, apply: 5000 });
  const r = w.read(slot)!;
  assert.equal(r.replyTime, 3);
  assert.equal(r.stateName, 'catchup');
  w.setState(slot, WalSndState.STARTUP);
  assert.equal(w.minSent(), null);
});

test('concurrent claims from several threads never share a slot', async () => {
  const w = WalSndCtl.create(3);
  const owners = new Int32Array(new SharedArrayBuffer(4 * 3));
  const src = `
    const { workerData } = require('node:worker_threads');
    const { sab, max, owners, url } = workerData;
    import(url).then(({ WalSndCtl }) => {
      const w = new WalSndCtl({ sab, maxWalSenders: max });
      let got = 0, full = 0;
      for (let i = 0; i < 3000; i++) {
        let c;
        try { c = w.claim({ applicationName: 'x', clientAddr: 'y', clientPort: 0, backendStartMs: 0 }); } catch { full++; continue; }
        if (Atomics.add(owners, c.slot, 1) !== 0) throw new Error('slot ' + c.slot + ' shared');
        got++;
        Atomics.sub(owners, c.slot, 1);
        if (!w.release(c.slot, c.id)) throw new Error('release failed');
      }
      require('node:worker_threads').parentPort.postMessage({ got, full });
    });
  `;
  const url = new URL('../src/replication/walsndctl.js', import.meta.url).href;
  const results = await Promise.all(
    Array.from({ length: 4 }, () => new Promise<{ got: number; full: number }>((resolve, reject) => {
      const wk = new Worker(src, { eval: true, workerData: { sab: w.handle.sab, max: 3, owners, url } });
      wk.once('message', resolve);
      wk.once('error', reject);
    })),
  );
  assert.equal(results.reduce((a, r) => a + r.got + r.full, 0), 12_000);
  assert.ok(results.reduce((a, r) => a + r.got, 0) > 0);
  assert.equal(w.count(), 0);
});
