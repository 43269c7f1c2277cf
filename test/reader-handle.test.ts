// Reads of a standby's shared store from the application's own threads: standby.readerHandle()
// posted to 4 worker threads that openReader(handle) while replay runs (an in-process standby of a
// primary committing transfers between accounts, whose sum is constant, and a version written to
// every key of a second table). Checked: every read in every thread sees whole transactions (sum
// constant, versions uniform and never going back), waitForReplay(lsn of a commit) in a thread
// then get sees that commit (also while the main thread waits on the same word), a thread whose
// only work is a wait stays alive until replay comes, a primary's handle reads its store the same
// way, and misuse gives typed errors: a bad handle (WS_INVALID_OPTION), a wait that times out
// (WS_WAIT_TIMEOUT), a closed standby or primary (WS_CLOSED for handles, reads and pending waits);
// after a promotion or a replay failure (a system identifier mismatch) reads go on and pending
// waits reject with the reason (55000 recovery is not in progress, WS_SYSID_MISMATCH).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { openReader, Primary, Standby, type ReaderHandle } from '../src/index.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;
const ACCOUNTS = 10;
const START_BALANCE = 1000;
const TOTAL = ACCOUNTS * START_BALANCE;
const VERSION_KEYS = 8;
const THREADS = 4;
/** Transactions the writer commits at least, and reads each thread does at least meanwhile. */
const MIN_TXNS = 3000;
const MIN_READS = 200;
/** Hang bound for the writer's run, in ms (not a timing assertion: it ends when both minimums are met). */
const MAX_WRITER_MS = 60_000;
const MARKER_EVERY = 100;
const THREAD_URL = new URL('./helpers/reader-thread.js', import.meta.url);
const INDEX_URL = new URL('../src/index.js', import.meta.url).href;

const dirs: string[] = [];
after(() => dirs.forEach(rmrf));

const codeOf = (e: unknown) => (e as { code?: string }).code;

interface Msg {
  type: string;
  [k: string]: unknown;
}

/** A reader thread (test/helpers/reader-thread.ts) with its messages queued by type. */
class ReaderThread {
  readonly worker: Worker;
  private readonly queues = new Map<string, Msg[]>();
  private readonly wanted = new Map<string, Array<(m: Msg) => void>>();
  readonly exited: Promise<number>;
  error: Error | null = null;

  constructor(handle: ReaderHandle, ctl: SharedArrayBuffer, id: number) {
    this.worker = new Worker(THREAD_URL, { workerData: { handle, ctl, id, total: TOTAL, accounts: ACCOUNTS } });
    this.worker.on('message', (m: Msg) => {
      const w = this.wanted.get(m.type)?.shift();
      if (w) w(m);
      else (this.queues.get(m.type) ?? this.queues.set(m.type, []).get(m.type)!).push(m);
    });
    this.worker.on('error', (e) => (this.error = e));
    this.exited = new Promise((r) => this.worker.once('exit', r));
  }

  next(type: string): Promise<Msg> {
    const q = this.queues.get(type)?.shift();
    if (q) return Promise.resolve(q);
    return new Promise((resolve, reject) => {
      (this.wanted.get(type) ?? this.wanted.set(type, []).get(type)!).push(resolve);
      void this.exited.then(() => reject(new Error(`reader thread exited before a '${type}' message (${String(this.error)})`)));
    });
  }

  post(m: Msg): void {
    this.worker.postMessage(m);
  }
}

async function openPair(name: string): Promise<{ p: Primary; s: Standby; dir: string }> {
  const dir = tmpDir(`walstream-reader-${name}-`);
  dirs.push(dir);
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, port: 0, checkpointTimeoutMs: 0, maxWalSizeBytes: 64 * SEG });
  const lsn = await p.transaction((tx) => {
    for (let i = 0; i < ACCOUNTS; i++) tx.put('bank', `a${i}`, { balance: START_BALANCE });
    for (let k = 0; k < VERSION_KEYS; k++) tx.put('ver', `v${k}`, 0);
  });
  const s = await Standby.open({ dataDir: path.join(dir, 's'), primaryConninfo: { inProcess: p, applicationName: name }, readerThreads: 0 });
  await s.waitForReplay(lsn);
  return { p, s, dir };
}

test('reader threads: whole transactions only while replay runs; waitForReplay then get sees the commit', async () => {
  const { p, s } = await openPair('rh1');
  const ctl = new SharedArrayBuffer(4 * (2 + THREADS));
  const stop = new Int32Array(ctl);
  const threads: ReaderThread[] = [];
  try {
    const handle = s.readerHandle();
    assert.equal(s.readerHandle(), handle, 'one handle per standby');
    for (let i = 0; i < THREADS; i++) threads.push(new ReaderThread(handle, ctl, i));
    // a reader on the primary too (its own handle), checking the same invariants
    const primaryThread = new ReaderThread(p.readerHandle(), ctl, THREADS);
    threads.push(primaryThread);

    const balances = new Array<number>(ACCOUNTS).fill(START_BALANCE);
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296;
    const markers: Array<Promise<void>> = [];
    const markerResults: Array<{ n: number; seen: unknown[] }> = [];
    const mainWaits: Array<Promise<number>> = [];
    const enoughReads = () => threads.every((_, i) => Atomics.load(stop, 1 + i) >= MIN_READS);
    const t0 = performance.now();
    let n = 0;
    const pending: Array<Promise<number>> = [];
    while ((n < MIN_TXNS || !enoughReads()) && performance.now() - t0 < MAX_WRITER_MS) {
      n++;
      const a = Math.floor(rnd() * ACCOUNTS);
      const b = (a + 1 + Math.floor(rnd() * (ACCOUNTS - 1))) % ACCOUNTS;
      const x = Math.floor(rnd() * 50);
      balances[a]! -= x;
      balances[b]! += x;
      const version = n;
      const isMarker = n % MARKER_EVERY === 0;
      const lsnP = p.transaction((tx) => {
        tx.put('bank', `a${a}`, { balance: balances[a] });
        // the version keys between the two halves of the transfer
        for (let k = 0; k < VERSION_KEYS; k++) tx.put('ver', `v${k}`, version);
        tx.put('bank', `a${b}`, { balance: balances[b] });
        if (isMarker) tx.put('marker', 'm', version);
      }, { synchronousCommit: isMarker ? 'on' : 'off' });
      if (isMarker) {
        const lsn = await lsnP;
        // every thread waits for this commit and must then see it (or a later marker)
        markers.push(
          Promise.all(threads.slice(0, THREADS).map(async (t) => {
            t.post({ type: 'marker', lsn, n: version });
            return (await t.next('marker')).seen;
          })).then((seen) => void markerResults.push({ n: version, seen })),
        );
        mainWaits.push(s.waitForReplay(lsn));
      } else {
        pending.push(lsnP);
        if (pending.length >= 32) await Promise.all(pending.splice(0));
      }
    }
    await Promise.all(pending);
    await Promise.all(markers);
    await Promise.all(mainWaits);
    Atomics.store(stop, 0, 1);
    const done = await Promise.all(threads.map((t) => t.next('done')));
    for (const [i, d] of done.entries()) {
      assert.deepEqual(d.bad, [], `thread ${i}: every read saw whole transactions`);
      assert.equal(d.endedBy, null);
      assert.ok((d.reads as number) >= MIN_READS, `thread ${i} read ${String(d.reads)} times`);
    }
    assert.ok(n >= MIN_TXNS, `the writer committed ${n} transactions`);
    assert.equal(markerResults.length, Math.floor(n / MARKER_EVERY));
    for (const m of markerResults) {
      for (const seen of m.seen) assert.ok(typeof seen === 'number' && seen >= m.n, `marker ${m.n}: a thread saw ${String(seen)} after waitForReplay`);
    }
    // after the end, every thread's store is the primary's
    const end = await p.flush();
    await s.waitForReplay(end);
    assert.equal(s.store!.digest(), p.store.digest());
  } finally {
    Atomics.store(stop, 0, 1);
    await Promise.all(threads.map((t) => t.worker.terminate()));
    await s.close();
    await p.close();
  }
});

test('reader handles: typed errors for bad handles, timeouts and closed standbys and primaries; a waiting thread stays alive', async () => {
  const { p, s } = await openPair('rh2');
  const ctl = new SharedArrayBuffer(4 * 4);
  let t: ReaderThread | null = null;
  let keeper: Worker | null = null;
  try {
    const handle = s.readerHandle();
    // bad handles: one typed error naming the handle
    for (const bad of [null, undefined, 42, {}, { ...handle, kind: 'other' }, { ...handle, version: 99 }, { ...handle, role: 'witness' },
      { ...handle, control: new SharedArrayBuffer(8) }, { ...handle, positions: new ArrayBuffer(4096) },
      { ...handle, store: { buffer: new SharedArrayBuffer(64 * 1024), id: handle.store.id, layoutVersion: handle.store.layoutVersion } }]) {
      assert.throws(() => openReader(bad as ReaderHandle), (e: unknown) => codeOf(e) === 'WS_INVALID_OPTION' && /handle/.test((e as Error).message), JSON.stringify(bad));
    }

    // A thread whose only pending work is a wait stays alive until replay passes it.
    keeper = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       import(${JSON.stringify(INDEX_URL)}).then((W) => {
         W.openReader(workerData.handle).waitForReplay(workerData.lsn, Infinity).then((lsn) => parentPort.postMessage({ lsn }));
       });`,
      { eval: true, workerData: { handle, lsn: s.replayLsn + 1 } },
    );
    const kept = new Promise<{ lsn: number } | 'exited'>((resolve) => {
      keeper!.once('message', resolve);
      keeper!.once('exit', () => resolve('exited'));
    });
    await new Promise((r) => setTimeout(r, 200));
    const lsn1 = await p.transaction((tx) => tx.put('marker', 'm', 1));
    const got = await kept;
    assert.ok(got !== 'exited' && got.lsn >= lsn1, `the waiting thread saw replay pass (${JSON.stringify(got)})`);

    t = new ReaderThread(handle, ctl, 0);
    // a wait that times out, in a thread
    t.post({ type: 'wait', lsn: s.replayLsn + 1e9, timeoutMs: 50 });
    await t.next('armed');
    assert.equal((await t.next('waited')).code, 'WS_WAIT_TIMEOUT');
    // bad arguments
    const r = openReader(handle);
    await assert.rejects(r.waitForReplay(-1), (e: unknown) => codeOf(e) === 'WS_INVALID_OPTION');
    await assert.rejects(r.waitForReplay(0, -5), (e: unknown) => codeOf(e) === 'WS_INVALID_OPTION');
    assert.ok((await r.waitForReplay(lsn1)) >= lsn1);
    assert.deepEqual(r.get('marker', 'm'), 1);
    // a reader closed by its thread
    const r2 = openReader(handle);
    const w2 = r2.waitForReplay(s.replayLsn + 1e9, Infinity);
    r2.close();
    await assert.rejects(w2, (e: unknown) => codeOf(e) === 'WS_CLOSED');
    assert.throws(() => r2.get('bank', 'a0'), (e: unknown) => codeOf(e) === 'WS_CLOSED');

    // The primary's handle: its commits are in the store when they return.
    const ph = p.readerHandle();
    const pr = openReader(ph);
    const lsn2 = await p.transaction((tx) => tx.put('marker', 'm', 2), { synchronousCommit: 'off' });
    assert.equal(pr.get('marker', 'm'), 2);
    assert.ok((await pr.waitForReplay(lsn2)) >= lsn2);
    await assert.rejects(pr.waitForReplay(p.insertLsn + 1e6), (e: unknown) => codeOf(e) === 'WS_INVALID_OPTION');

    // A wait pending in a thread when the standby closes rejects with WS_CLOSED; so do reads and new handles.
    t.post({ type: 'wait', lsn: s.replayLsn + 1e9, timeoutMs: Infinity });
    await t.next('armed');
    await s.close();
    assert.equal((await t.next('waited')).code, 'WS_CLOSED');
    t.post({ type: 'get', table: 'bank', key: 'a0' });
    assert.equal((await t.next('got')).code, 'WS_CLOSED');
    assert.equal((await t.next('done')).endedBy, 'WS_CLOSED', "the thread's read loop ended on WS_CLOSED");
    assert.throws(() => r.get('bank', 'a0'), (e: unknown) => codeOf(e) === 'WS_CLOSED');
    await assert.rejects(r.waitForReplay(0), (e: unknown) => codeOf(e) === 'WS_CLOSED');
    assert.throws(() => openReader(handle), (e: unknown) => codeOf(e) === 'WS_CLOSED');
    assert.throws(() => s.readerHandle(), (e: unknown) => codeOf(e) === 'WS_CLOSED');

    await p.close();
    assert.throws(() => pr.get('marker', 'm'), (e: unknown) => codeOf(e) === 'WS_CLOSED');
    assert.throws(() => openReader(ph), (e: unknown) => codeOf(e) === 'WS_CLOSED');
    assert.throws(() => p.readerHandle(), (e: unknown) => codeOf(e) === 'WS_CLOSED');
  } finally {
    Atomics.store(new Int32Array(ctl), 0, 1);
    await t?.worker.terminate();
    await keeper?.terminate();
    await s.close();
    await p.close();
  }
});

test('reader threads across a replay failure and a promotion: reads go on, waits reject with the reason', async () => {
  const { p, s, dir } = await openPair('rh3');
  const ctl = new SharedArrayBuffer(4 * 4);
  const threads: ReaderThread[] = [];
  const others: Array<{ close(): Promise<void> }> = [];
  try {
    // Promotion: a wait past the last replayed LSN rejects (55000), reads go on and see the new primary's commits.
    const t = new ReaderThread(s.readerHandle(), ctl, 0);
    threads.push(t);
    t.post({ type: 'wait', lsn: s.replayLsn + 1e9, timeoutMs: Infinity });
    await t.next('armed');
    const promoted = await s.promote();
    others.push(promoted);
    const w = await t.next('waited');
    assert.equal(w.code, 'WS_OBJECT_NOT_IN_PREREQUISITE_STATE');
    await promoted.transaction((tx) => tx.put('marker', 'm', 'after promotion'));
    t.post({ type: 'get', table: 'marker', key: 'm' });
    assert.equal((await t.next('got')).value, 'after promotion');
    const r = openReader(s.readerHandle());
    assert.ok((await r.waitForReplay(0)) >= 0, 'a wait already met resolves');
    await assert.rejects(r.waitForReplay(s.replayLsn + 1), (e: unknown) => codeOf(e) === 'WS_OBJECT_NOT_IN_PREREQUISITE_STATE' && (e as { sqlstate?: string }).sqlstate === '55000');

    // Replay stopped for good (this standby's directory pointed at another primary: a system
    // identifier mismatch): waits reject with that error's code, reads go on.
    await p.close();
    const p2 = await Primary.open({ dataDir: path.join(dir, 'p2'), walSegmentSize: SEG, port: 0 });
    others.push(p2);
    const p1 = await Primary.open({ dataDir: path.join(dir, 'p1'), walSegmentSize: SEG, port: 0 });
    others.push(p1);
    const s1 = await Standby.open({ dataDir: path.join(dir, 's1'), primaryConninfo: { host: '127.0.0.1', port: p1.port!, user: 'u' }, readerThreads: 0 });
    await s1.close();
    const s2 = await Standby.open({ dataDir: path.join(dir, 's1'), primaryConninfo: { host: '127.0.0.1', port: p2.port!, user: 'u' }, readerThreads: 0 });
    others.push(s2);
    const t2 = new ReaderThread(s2.readerHandle(), ctl, 1);
    threads.push(t2);
    t2.post({ type: 'wait', lsn: s2.replayLsn + 1e9, timeoutMs: Infinity });
    await t2.next('armed');
    assert.equal((await t2.next('waited')).code, 'WS_SYSID_MISMATCH');
    assert.equal(s2.failed?.code, 'WS_SYSID_MISMATCH');
    t2.post({ type: 'get', table: 'bank', key: 'a0' });
    assert.equal((await t2.next('got')).value, undefined, 'reads go on (this store never had the key)');
  } finally {
    Atomics.store(new Int32Array(ctl), 0, 1);
    await Promise.all(threads.map((x) => x.worker.terminate()));
    for (const o of others.reverse()) await o.close();
    await s.close();
    await p.close();
  }
});
