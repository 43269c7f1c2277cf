// Hot-standby invariant: a writer thread applies multi-key transactions (transfers between 10
// accounts, sum constant, plus churn that splits and frees tree nodes and grows the buffer) while
// a ReaderPool, a raw reader worker and the main thread read with readConsistent/scan/multiGet.
// Every read must see the invariant: never half a transaction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { Packr } from 'msgpackr';
import { SharedStore, type StoreOp } from '../src/storage/store.js';
import { ReaderPool } from '../src/storage/reader-pool.js';

const STORE_URL = new URL('../src/storage/store.js', import.meta.url).href;
const MSGPACKR_URL = import.meta.resolve('msgpackr');
const ACCOUNTS = 10;
const START_BALANCE = 1000;
const TOTAL = ACCOUNTS * START_BALANCE;
const acct = (i: number) => `acct:${i}`;
const MIN_TXNS = 5000;
const MIN_READS = 2000;
const MAX_WRITER_MS = 30_000;

function spawn(body: string, workerData: unknown): { worker: Worker; done: Promise<unknown[]> } {
  const src = `
    const { parentPort, workerData: wd } = require('node:worker_threads');
    Promise.all([import(${JSON.stringify(STORE_URL)}), import(${JSON.stringify(MSGPACKR_URL)})])
      .then(async ([S, M]) => { ${body} })
      .catch((e) => { parentPort.postMessage({ error: String(e && e.stack || e) }); });
  `;
  const worker = new Worker(src, { eval: true, workerData });
  const msgs: unknown[] = [];
  worker.on('message', (m) => msgs.push(m));
  const done = new Promise<unknown[]>((resolve, reject) => {
    worker.on('error', reject);
    worker.on('exit', () => {
      for (const m of msgs) if (m !== null && typeof m === 'object' && 'error' in m) return reject(new Error((m as { error: string }).error));
      resolve(msgs);
    });
  });
  return { worker, done };
}

test('readers on other threads always see whole transactions', async () => {
  const packr = new Packr({ useRecords: false });
  const enc = new TextEncoder();
  // small initial buffer so the writer grows it while readers read
  const store = SharedStore.create({ initialBytes: 64 * 1024, maxStoreBytes: 256 << 20 });
  const init: StoreOp[] = [];
  for (let i = 0; i < ACCOUNTS; i++) init.push({ kind: 'put', table: 'bank', key: enc.encode(acct(i)), keyIsString: true, value: packr.pack({ balance: START_BALANCE, seq: 0 }) });
  store.applyTransaction(init);
  // [0] = stop readers, [1] = raw reader's reads, [2] = pool reads: the writer runs until both
  // kinds of reader have done MIN_READS reads during its run (or a hard cap on time)
  const ctl = new Int32Array(new SharedArrayBuffer(16));

  const writer = spawn(
    `
    const store = S.SharedStore.attach(wd.handle);
    const packr = new M.Packr({ useRecords: false });
    const enc = new TextEncoder();
    let seed = 42; const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296);
    const t0 = performance.now();
    let n = 0;
    const ctl = new Int32Array(wd.ctl);
    while ((n < ${MIN_TXNS} || Atomics.load(ctl, 1) < ${MIN_READS} || Atomics.load(ctl, 2) < ${MIN_READS}) && performance.now() - t0 < ${MAX_WRITER_MS}) {
      n++;
      const a = Math.floor(rnd() * ${ACCOUNTS}); let b = Math.floor(rnd() * ${ACCOUNTS}); if (b === a) b = (a + 1) % ${ACCOUNTS};
      const ka = 'acct:' + a, kb = 'acct:' + b;
      const va = store.get('bank', ka), vb = store.get('bank', kb);
      const x = Math.floor(rnd() * 100);
      const ops = [
        { kind: 'put', table: 'bank', key: enc.encode(ka), keyIsString: true, value: packr.pack({ balance: va.balance - x, seq: n }) },
      ];
      // churn in the same table, between the two account updates: node splits, frees, growth
      for (let j = 0; j < 4; j++) {
        const k = enc.encode('churn:' + Math.floor(rnd() * 3000));
        if (rnd() < 0.6) ops.push({ kind: 'put', table: 'bank', key: k, keyIsString: true, value: packr.pack({ pad: 'p'.repeat(Math.floor(rnd() * (n % 500 === 0 ? 200000 : 600))) }) });
        else ops.push({ kind: 'delete', table: 'bank', key: k, keyIsString: true });
      }
      ops.push({ kind: 'put', table: 'bank', key: enc.encode(kb), keyIsString: true, value: packr.pack({ balance: vb.balance + x, seq: n }) });
      // a second table that exists only in some transactions
      if (n % 50 === 0) ops.push({ kind: 'put', table: 'blink', key: enc.encode('x'), keyIsString: true, value: packr.pack(n) });
      if (n % 50 === 25) ops.push({ kind: 'delete', table: 'blink', key: enc.encode('x'), keyIsString: true });
      store.applyTransaction(ops);
    }
    parentPort.postMessage({ txns: n, bytesReserved: store.stats().bytesReserved });
  `,
    { handle: store.handle, ctl: ctl.buffer },
  );

  const rawReader = spawn(
    `
    const store = S.SharedStore.attach(wd.handle);
    const ctl = new Int32Array(wd.ctl);
    let reads = 0, bad = [], lastSeq = 0;
    const keys = Array.from({ length: ${ACCOUNTS} }, (_, i) => 'acct:' + i);
    while (Atomics.load(ctl, 0) === 0) {
      // 1) several gets and a scan under one read latch
      store.readConsistent((v) => {
        let sum = 0, seq = 0;
        for (const k of keys) { const a = v.get('bank', k); sum += a.balance; seq = Math.max(seq, a.seq); }
        if (sum !== ${TOTAL}) bad.push('readConsistent sum ' + sum);
        if (seq < lastSeq) bad.push('seq went back ' + seq + ' < ' + lastSeq);
        lastSeq = seq;
        const rows = v.scan('bank', { gte: 'acct:', lt: 'acct;' });
        const s2 = rows.reduce((s, r) => s + r.value.balance, 0);
        if (rows.length !== ${ACCOUNTS} || s2 !== ${TOTAL}) bad.push('scan in view: ' + rows.length + ' rows, sum ' + s2);
      });
      // 2) a plain scan (its own latch), forward and reverse
      const rev = (reads & 1) === 1;
      const rows = store.scan('bank', { gte: 'acct:', lt: 'acct;', reverse: rev });
      const s3 = rows.reduce((s, r) => s + r.value.balance, 0);
      if (rows.length !== ${ACCOUNTS} || s3 !== ${TOTAL}) bad.push('scan: ' + rows.length + ' rows, sum ' + s3);
      // 3) a full-table scan must be ordered and complete for the accounts
      if (reads % 20 === 0) {
        const all = store.scan('bank');
        for (let i = 1; i < all.length; i++) if (!(all[i - 1].key < all[i].key)) { bad.push('order'); break; }
        const s4 = all.filter((r) => r.key.startsWith('acct:')).reduce((s, r) => s + r.value.balance, 0);
        if (s4 !== ${TOTAL}) bad.push('full scan sum ' + s4);
      }
      reads++;
      Atomics.store(ctl, 1, reads);
      if (bad.length > 5) break;
    }
    parentPort.postMessage({ reads, bad });
  `,
    { handle: store.handle, ctl: ctl.buffer },
  );

  const pool = new ReaderPool(store.handle, { threads: 2 });
  const keys = Array.from({ length: ACCOUNTS }, (_, i) => acct(i));
  let writerDone = false;
  const writerResult = writer.done.finally(() => {
    writerDone = true;
  });
  const poolBad: string[] = [];
  let poolReads = 0;
  let mainReads = 0;
  const poolLoop = async () => {
    while (!writerDone && poolBad.length < 5) {
      const [vals, rows] = await Promise.all([pool.multiGet('bank', keys), pool.scan('bank', { gte: 'acct:', lt: 'acct;', reverse: poolReads % 2 === 1 })]);
      const s1 = (vals as Array<{ balance: number }>).reduce((s, v) => s + v.balance, 0);
      const s2 = rows.reduce((s, r) => s + (r.value as { balance: number }).balance, 0);
      if (s1 !== TOTAL) poolBad.push(`multiGet sum ${s1}`);
      if (rows.length !== ACCOUNTS || s2 !== TOTAL) poolBad.push(`pool scan ${rows.length} rows sum ${s2}`);
      poolReads += 2;
      Atomics.store(ctl, 2, poolReads);
      // the main thread reads too, between its awaits
      store.readConsistent((v) => {
        const s = keys.reduce((acc, k) => acc + (v.get('bank', k) as { balance: number }).balance, 0);
        if (s !== TOTAL) poolBad.push(`main readConsistent sum ${s}`);
      });
      mainReads++;
    }
  };
  try {
    await Promise.all([poolLoop(), poolLoop(), poolLoop()]);
    const [wres] = (await writerResult) as [{ txns: number; bytesReserved: number }];
    Atomics.store(ctl, 0, 1);
    const [rres] = (await rawReader.done) as [{ reads: number; bad: string[] }];
    assert.deepEqual(rres.bad, []);
    assert.deepEqual(poolBad, []);
    assert.ok(wres.txns >= MIN_TXNS, `writer applied only ${wres.txns} transactions`);
    assert.ok(wres.bytesReserved > 64 * 1024, 'the buffer grew while readers read');
    assert.ok(rres.reads >= MIN_READS, `raw reader did only ${rres.reads} reads`);
    assert.ok(poolReads >= MIN_READS, `pool did only ${poolReads} reads`);
    assert.ok(mainReads > 100);
    console.log(JSON.stringify({ txns: wres.txns, reserved: wres.bytesReserved, raw: rres.reads, pool: poolReads, main: mainReads }));
    const final = store.scan('bank', { gte: 'acct:', lt: 'acct;' });
    assert.equal(final.reduce((s, r) => s + (r.value as { balance: number }).balance, 0), TOTAL);
    store.checkInvariants();
    // every reader thread agrees with the writer's view of the final state
    assert.deepEqual(await pool.multiGet('bank', keys), keys.map((k) => store.get('bank', k)));
    assert.equal(await pool.count('bank'), store.count('bank'));
  } finally {
    Atomics.store(ctl, 0, 1);
    await pool.close();
  }
});

test('ReaderPool reports store errors with their codes and refuses work after close', async () => {
  const store = SharedStore.create();
  const pool = new ReaderPool(store.handle, { threads: 1 });
  try {
    await assert.rejects(pool.get('', 'k'), (e: unknown) => (e as { code?: string }).code === 'WS_INVALID_TABLE');
    await assert.rejects(pool.scan('t', { limit: -1 }), (e: unknown) => (e as { code?: string }).code === 'WS_INVALID_OPTION');
    assert.equal(await pool.get('t', 'missing'), undefined);
    assert.deepEqual(await pool.multiGet('t', ['a', new Uint8Array([1])]), [undefined, undefined]);
  } finally {
    await pool.close();
  }
  await assert.rejects(pool.get('t', 'k'), (e: unknown) => (e as { code?: string }).code === 'WS_CLOSED');
  assert.throws(() => new ReaderPool(store.handle, { threads: 0 }), (e: unknown) => (e as { code?: string }).code === 'WS_INVALID_OPTION');
});
