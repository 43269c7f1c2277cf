// A thread of a test application that reads a standby's (or primary's) store through
// openReader(handle) (test/reader-handle.test.ts). workerData: { handle, ctl, id }. It reads in a
// loop until ctl[0] is set, checking on every read the invariants the writer keeps: the `bank`
// balances sum to `total`, and every key of `ver` holds the same version, which never goes back
// in this thread. It counts its reads in ctl[1 + id] and answers messages:
//   { type: 'marker', lsn, n }   waitForReplay(lsn), then get('marker', 'm') → { type: 'marker', n, seen }
//   { type: 'wait', lsn, timeoutMs } → { type: 'armed' } at once, then { type: 'waited', lsn? | code }
//   { type: 'get', table, key }  → { type: 'got', value? | code }
// and at the end posts { type: 'done', reads, bad, endedBy } (endedBy: the code of a read error that
// ended the loop, e.g. WS_CLOSED once the standby closed).

import { parentPort, workerData } from 'node:worker_threads';
import { openReader, type ReaderHandle } from '../../src/index.js';

interface Data {
  handle: ReaderHandle;
  ctl: SharedArrayBuffer;
  id: number;
  total: number;
  accounts: number;
}

const wd = workerData as Data;
const ctl = new Int32Array(wd.ctl);
const port = parentPort!;
const reader = openReader(wd.handle);
const bad: string[] = [];
let reads = 0;
let lastVersion = -1;

function codeOf(e: unknown): string {
  return (e as { code?: string }).code ?? `no code: ${String(e)}`;
}

function checkOnce(): void {
  // one scan = one read latch
  const rows = reader.scan('bank');
  const sum = rows.reduce((s, r) => s + (r.value as { balance: number }).balance, 0);
  if (rows.length !== wd.accounts || sum !== wd.total) bad.push(`scan bank: ${rows.length} rows, sum ${sum}`);
  // several gets and a scan under one read latch
  reader.readConsistent((v) => {
    let s = 0;
    for (let i = 0; i < wd.accounts; i++) s += (v.get('bank', `a${i}`) as { balance: number }).balance;
    if (s !== wd.total) bad.push(`readConsistent bank sum ${s}`);
    const vers = v.scan('ver').map((r) => r.value as number);
    if (vers.length === 0 || vers.some((x) => x !== vers[0])) bad.push(`ver not uniform: ${vers.join(',')}`);
    else {
      if (vers[0]! < lastVersion) bad.push(`ver went back: ${vers[0]} < ${lastVersion}`);
      lastVersion = vers[0]!;
    }
  });
  // plain gets: each its own latch, so only each value's own shape is checked
  const g = reader.get('ver', 'v0');
  if (typeof g !== 'number') bad.push(`get ver/v0: ${String(g)}`);
  reads++;
}

port.on('message', (m: { type: string; lsn: number; n: number; timeoutMs: number; table: string; key: string }) => {
  if (m.type === 'marker') {
    void reader.waitForReplay(m.lsn).then(
      () => port.postMessage({ type: 'marker', n: m.n, seen: reader.get('marker', 'm') }),
      (e: unknown) => port.postMessage({ type: 'marker', n: m.n, code: codeOf(e) }),
    );
  } else if (m.type === 'wait') {
    const p = reader.waitForReplay(m.lsn, m.timeoutMs);
    port.postMessage({ type: 'armed' });
    p.then((lsn) => port.postMessage({ type: 'waited', lsn }), (e: unknown) => port.postMessage({ type: 'waited', code: codeOf(e) }));
  } else if (m.type === 'get') {
    try {
      port.postMessage({ type: 'got', value: reader.get(m.table, m.key) });
    } catch (e) {
      port.postMessage({ type: 'got', code: codeOf(e) });
    }
  }
});

// Read until told to stop (or the standby closes: WS_CLOSED ends the loop, messages are still
// answered), giving the event loop a turn every few reads (messages, waits).
let endedBy: string | null = null;
while (Atomics.load(ctl, 0) === 0 && bad.length < 5 && endedBy === null) {
  try {
    for (let i = 0; i < 32; i++) checkOnce();
  } catch (e) {
    endedBy = codeOf(e);
  }
  Atomics.store(ctl, 1 + wd.id, reads);
  await new Promise((r) => setImmediate(r));
}
port.postMessage({ type: 'done', reads, bad, endedBy });
