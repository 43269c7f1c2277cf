// Sync-rep wait queues in shared memory, across threads: worker threads release (as walsenders
// do after a standby reply), the main thread waits (as Primary.transaction does), and the other
// way round. Bounded waits: block, fail, degrade; config cleared; full queue; shutdown.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { SyncRepQueue, SyncWaiter, syncNotConfirmedError, type SyncWaitEvent, type SyncWaitResult } from '../src/replication/syncrep-queue.js';
import { WalSndCtl } from '../src/replication/walsndctl.js';

const QUEUE_URL = new URL('../src/replication/syncrep-queue.js', import.meta.url).href;
const WALSND_URL = new URL('../src/replication/walsndctl.js', import.meta.url).href;

/** A worker running `body` (an async function of (q, data, port)) over the queue's handle. */
function startWorker(handle: unknown, body: string, data: unknown = null): Worker {
  const src = `
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      const { SyncRepQueue, SyncWaiter } = await import(${JSON.stringify(QUEUE_URL)});
      const { WalSndCtl, WalSndState } = await import(${JSON.stringify(WALSND_URL)});
      const q = new SyncRepQueue(workerData.handle);
      const data = workerData.data;
      const next = () => new Promise((r) => parentPort.once('message', r));
      await (async () => { ${body} })();
    })().catch((e) => { parentPort.postMessage({ error: String(e && e.stack || e) }); });
  `;
  return new Worker(src, { eval: true, workerData: { handle, data } });
}

function message(w: Worker): Promise<any> {
  return new Promise((resolve, reject) => {
    w.once('message', (m) => (m && m.error ? reject(new Error(m.error)) : resolve(m)));
    w.once('error', reject);
  });
}

const pos = (receive: number, write: number, flush: number, apply: number) => ({ receive, write, flush, apply });

test('main thread waits, a worker releases: each wait resolves exactly when its mode is covered', async (t) => {
  const q = SyncRepQueue.create({ maxSyncWaiters: 64 });
  q.setConfig('FIRST 1 (s1)');
  const waiter = new SyncWaiter(q);
  const done = new Map<string, SyncWaitResult>();
  const track = (name: string, p: Promise<SyncWaitResult>) => p.then((r) => done.set(name, r));
  const all = [
    track('f100', waiter.wait(100, 'remote_flush')),
    track('f300', waiter.wait(300, 'remote_flush')),
    track('f200', waiter.wait(200, 'remote_flush')), // out of order: the queue keeps LSN order
    track('w250', waiter.wait(250, 'remote_write')),
    track('a150', waiter.wait(150, 'remote_apply')),
    track('r400', waiter.wait(400, 'remote_receive')),
  ];
  assert.equal(q.queued, 6);
  const w = startWorker(q.handle, `
    for (;;) {
      const m = await next();
      if (m === 'exit') break;
      parentPort.postMessage({ released: q.releaseUpTo(m) });
    }`);
  t.after(() => w.terminate());
  const release = async (p: ReturnType<typeof pos>, expect: string[]) => {
    const before = done.size;
    const ack = message(w);
    w.postMessage(p);
    const { released } = await ack;
    assert.equal(released, expect.length - before, 'released count');
    const deadline = Date.now() + 2000;
    while (done.size < expect.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([...done.keys()].sort(), [...expect].sort());
  };
  await release(pos(0, 0, 150, 0), ['f100']);
  await release(pos(0, 260, 250, 100), ['f100', 'f200', 'w250']);
  await release(pos(500, 260, 250, 200), ['f100', 'f200', 'w250', 'a150', 'r400']);
  // A position that goes backwards releases nothing (released positions are monotonic).
  await release(pos(0, 0, 100, 0), ['f100', 'f200', 'w250', 'a150', 'r400']);
  await release(pos(0, 0, 300, 0), ['f100', 'f200', 'w250', 'a150', 'r400', 'f300']);
  await Promise.all(all);
  for (const r of done.values()) {
    assert.equal(r.outcome, 'confirmed');
    assert.equal(r.confirmed, true);
  }
  // Already covered: resolves without queueing.
  const r = await waiter.wait(250, 'remote_flush');
  assert.equal(r.outcome, 'confirmed');
  assert.equal(q.queued, 0);
  assert.equal(q.freeSlots(), 64);
  assert.deepEqual(q.releasedPositions(), { remote_receive: 500, remote_write: 260, remote_flush: 300, remote_apply: 200 });
  w.postMessage('exit');
  await new Promise((res) => w.once('exit', res));
  waiter.close();
});

test('walsender workers release from WalSndCtl replies (FIRST 1, then the potential standby takes over)', async (t) => {
  const q = SyncRepQueue.create({ maxSyncWaiters: 64 });
  const walsnd = WalSndCtl.create(4);
  q.setConfig('FIRST 1 (s1, s2)');
  // Two walsender workers, each owning one WalSndCtl slot; on command they record a standby reply
  // and call releaseWaiters as a walsender does.
  const body = `
    const ctl = new WalSndCtl(data.walsnd);
    const { slot, id } = ctl.claim({ applicationName: data.name, clientAddr: '127.0.0.1', clientPort: 1, backendStartMs: 0 });
    ctl.startStreaming(slot, 0, WalSndState.STREAMING);
    ctl.setSent(slot, 1 << 30);
    parentPort.postMessage({ slot });
    for (;;) {
      const m = await next();
      if (m === 'exit') { ctl.release(slot, id); break; }
      ctl.reportReply(slot, { write: m, flush: m, apply: m, replyTime: 1 });
      parentPort.postMessage({ released: q.releaseWaiters(ctl.all(), slot) });
    }`;
  const w1 = startWorker(q.handle, body, { walsnd: walsnd.handle, name: 's1' });
  await message(w1);
  const w2 = startWorker(q.handle, body, { walsnd: walsnd.handle, name: 's2' });
  await message(w2);
  const reply = async (w: Worker, lsn: number) => {
    const ack = message(w);
    w.postMessage(lsn);
    return (await ack).released as number;
  };
  const waiter = new SyncWaiter(q);
  t.after(() => Promise.all([w1.terminate(), w2.terminate()]));
  const p1 = waiter.wait(1000, 'remote_flush');
  // s1 has not reported a flush position yet, so s2 is the synchronous one for now; once s1
  // reports, s2 is only potential and its replies release nothing.
  assert.equal(await reply(w1, 500), 0);
  assert.equal(await reply(w2, 5000), 0);
  assert.equal(await reply(w1, 1000), 1);
  assert.equal((await p1).outcome, 'confirmed');
  const p2 = waiter.wait(2000, 'remote_apply');
  // The synchronous standby fails: s2 becomes synchronous and its next reply releases.
  const gone = new Promise((r) => w1.once('exit', r));
  w1.postMessage('exit');
  await gone;
  assert.equal(await reply(w2, 6000), 1);
  const r2 = await p2;
  assert.equal(r2.outcome, 'confirmed');
  w2.postMessage('exit');
  await new Promise((r) => w2.once('exit', r));
  waiter.close();
});

test('a worker waits, the main thread releases (latch wake-up, no polling)', async (t) => {
  const q = SyncRepQueue.create({ maxSyncWaiters: 8 });
  q.setConfig('ANY 1 (*)');
  const w = startWorker(q.handle, `
    const waiter = new SyncWaiter(q);
    const t0 = performance.now();
    const rs = await Promise.all([waiter.wait(10, 'remote_write'), waiter.wait(20, 'remote_flush')]);
    parentPort.postMessage({ outcomes: rs.map((r) => r.outcome), ms: performance.now() - t0 });
    waiter.close();`);
  t.after(() => w.terminate());
  // Listen for the exit now: a worker that ends right after its message can have its 'exit'
  // emitted in the same turn as that message, before an await on the message resumes.
  const exited = new Promise((r) => w.once('exit', r));
  const result = message(w);
  while (q.queued < 2) await new Promise((r) => setTimeout(r, 2));
  const t0 = performance.now();
  q.releaseUpTo(pos(20, 20, 20, 20));
  const m = await result;
  assert.deepEqual(m.outcomes, ['confirmed', 'confirmed']);
  t.diagnostic(`released after ${(performance.now() - t0).toFixed(2)} ms`);
  await exited;
  assert.equal(q.freeSlots(), 8);
});

test('bounded waits: fail reports committed-locally-not-confirmed; block keeps waiting and reports slowness', async () => {
  const q = SyncRepQueue.create({ maxSyncWaiters: 8 });
  q.setConfig('s1');
  const events: SyncWaitEvent[] = [];
  const fail = new SyncWaiter(q, { syncTimeoutMs: 30, policy: 'fail', onEvent: (e) => events.push(e) });
  const r = await fail.wait(100, 'remote_flush');
  assert.equal(r.outcome, 'timeout');
  assert.equal(r.confirmed, false);
  assert.ok(r.waitedMs >= 25);
  assert.equal(events[0]?.type, 'syncWaitTimeout');
  assert.equal(fail.counts.timeout, 1);
  const err = syncNotConfirmedError(r, '0/64');
  assert.equal(err.code, 'WS_SYNC_NOT_CONFIRMED');
  assert.match(err.detail ?? '', /already committed locally at 0\/64/);
  assert.equal(q.queued, 0);
  fail.close();

  events.length = 0;
  const block = new SyncWaiter(q, { syncTimeoutMs: 20, policy: 'block', onEvent: (e) => events.push(e) });
  const p = block.wait(200, 'remote_write');
  await new Promise((res) => setTimeout(res, 60));
  assert.deepEqual(events.map((e) => e.type), ['syncWaitSlow']);
  assert.equal(q.queued, 1, 'still waiting');
  q.releaseUpTo(pos(200, 200, 0, 0));
  assert.equal((await p).outcome, 'confirmed');
  assert.equal(block.counts.slow, 1);
  assert.equal(block.counts.confirmed, 1);
  block.close();
});

test('degrade: a timeout releases every waiter as degraded, later commits do not wait, a catching-up standby restores', async () => {
  const q = SyncRepQueue.create({ maxSyncWaiters: 8 });
  q.setConfig('FIRST 1 (s1)');
  const events: SyncWaitEvent[] = [];
  const waiter = new SyncWaiter(q, { syncTimeoutMs: 40, policy: 'degrade', onEvent: (e) => events.push(e) });
  const early = waiter.wait(100, 'remote_flush');
  await new Promise((res) => setTimeout(res, 15));
  const later = waiter.wait(150, 'remote_apply'); // its own timeout is later: released by the degradation
  const [a, b] = await Promise.all([early, later]);
  assert.equal(a.outcome, 'degraded');
  assert.equal(b.outcome, 'degraded');
  assert.ok(q.degraded);
  assert.deepEqual(events.map((e) => e.type), ['syncDegraded']);
  // While degraded, commits resolve at once (local durability only).
  const pc = waiter.wait(300, 'remote_flush');
  assert.equal(q.queued, 0, 'finished without being queued');
  const c = await pc;
  assert.equal(c.outcome, 'degraded');
  // The standby confirms up to the LSN that timed out: synchronous again.
  q.releaseUpTo(pos(120, 120, 120, 120));
  assert.equal(q.degraded, false);
  const d = waiter.wait(400, 'remote_flush');
  assert.deepEqual(events.map((e) => e.type), ['syncDegraded', 'syncRestored']);
  assert.equal(q.queued, 1, 'waits again');
  q.releaseUpTo(pos(400, 400, 400, 400));
  assert.equal((await d).outcome, 'confirmed');
  assert.deepEqual(waiter.counts, { confirmed: 1, notRequired: 0, timeout: 0, degraded: 3, cancelled: 0, slow: 0 });
  waiter.close();
});

test('clearing synchronous_standby_names releases waiters; a bad value changes nothing; shutdown cancels', async () => {
  const q = SyncRepQueue.create({ maxSyncWaiters: 8 });
  const waiter = new SyncWaiter(q);
  assert.equal((await waiter.wait(10, 'remote_flush')).outcome, 'notRequired');
  q.setConfig('ANY 2 (a, b)');
  const p = waiter.wait(50, 'remote_flush');
  assert.throws(() => q.setConfig('ANY 2 (a, b'), { code: 'WS_INVALID_SYNC_STANDBY_NAMES', sqlstate: '42601' });
  assert.equal(q.configText(), 'ANY 2 (a, b)');
  assert.equal(q.queued, 1);
  q.setConfig('');
  assert.equal((await p).outcome, 'notRequired');
  q.setConfig('a');
  const events: SyncWaitEvent[] = [];
  const w2 = new SyncWaiter(q, { onEvent: (e) => events.push(e) });
  const p2 = w2.wait(70, 'remote_apply');
  w2.close('shutdown');
  const r2 = await p2;
  assert.equal(r2.outcome, 'cancelled');
  assert.equal(events[0]?.type, 'syncWaitCancelled');
  assert.equal(q.freeSlots(), 8);
  waiter.close();
});

test('a full queue parks waits locally and still releases every one of them', async () => {
  const q = SyncRepQueue.create({ maxSyncWaiters: 4 });
  q.setConfig('*');
  const waiter = new SyncWaiter(q);
  const ps = Array.from({ length: 12 }, (_, i) => waiter.wait(100 + i * 10, 'remote_flush'));
  assert.equal(q.queued, 4);
  assert.equal(waiter.waiting, 12);
  for (let lsn = 100; lsn <= 220; lsn += 10) {
    q.releaseUpTo(pos(0, 0, lsn, 0));
    await new Promise((r) => setImmediate(r));
  }
  const rs = await Promise.all(ps);
  assert.ok(rs.every((r) => r.outcome === 'confirmed'));
  assert.equal(q.freeSlots(), 4);
  waiter.close();
});

test('two releasing workers and one waiting thread under load: every commit confirmed once, nothing leaks', async (t) => {
  const q = SyncRepQueue.create({ maxSyncWaiters: 256 });
  q.setConfig('ANY 1 (*)');
  const N = 3000;
  const body = `
    let p = 0;
    while (p < data.n) {
      p = Math.min(data.n, p + 1 + Math.floor(Math.random() * 7));
      q.releaseUpTo({ receive: p, write: p, flush: p, apply: p });
      if (Math.random() < 0.1) await new Promise((r) => setTimeout(r, 0));
    }
    parentPort.postMessage({ done: true });`;
  const waiter = new SyncWaiter(q);
  const ps: Promise<SyncWaitResult>[] = [];
  for (let i = 1; i <= N; i++) ps.push(waiter.wait(i, i % 2 === 0 ? 'remote_flush' : 'remote_write'));
  const w1 = startWorker(q.handle, body, { n: N });
  const w2 = startWorker(q.handle, body, { n: N });
  t.after(() => Promise.all([w1.terminate(), w2.terminate()]));
  const finished = Promise.all([message(w1), message(w2)]);
  const rs = await Promise.all(ps);
  await finished;
  assert.equal(rs.length, N);
  assert.ok(rs.every((r) => r.outcome === 'confirmed'));
  assert.equal(waiter.counts.confirmed, N);
  assert.equal(q.queued, 0);
  assert.equal(q.freeSlots(), 256);
  await Promise.all([w1.terminate(), w2.terminate()]);
  waiter.close();
});
