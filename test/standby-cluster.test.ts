// Three standbys of one walstream primary under a random workload of multi-key transactions:
// A runs in this process from the start (hot-standby readers on its main thread and its piscina
// pool check an invariant across keys on every read), B runs as a child process and is killed
// with SIGKILL in the middle (after restartpoints) and restarted, C takes its base backup at the
// start but only streams after the workload (catch-up from the primary's segment files: the
// primary's wal_buffers ring is far smaller than the WAL written). All reach the primary's flush
// position and their store digests equal the primary's: no gap, no transaction applied twice
// with a visible effect, none half applied.
// Then: a standby paused with SIGSTOP for seconds does not slow the primary's commits beyond
// noise (replication is asynchronous) and catches up after SIGCONT.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { Standby } from '../src/standby/standby.js';
import { type Lsn, parseLsn } from '../src/wal/lsn.js';
import { waitFor } from './helpers/rawpg.js';
import { killStandbyChildren, StandbyChild } from './helpers/standby-proc.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;
const ACCOUNTS = 40;
const START_BALANCE = 1000;
const TOTAL = ACCOUNTS * START_BALANCE;

const dirs: string[] = [];
after(() => {
  killStandbyChildren();
  dirs.forEach(rmrf);
});

/** Deterministic pseudo-random numbers (the workload is reproducible from its seed). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

/** Random transactions: transfers between accounts (sum constant), puts and deletes of other keys. */
async function workload(p: Primary, rand: () => number, txns: number, balances: number[]): Promise<void> {
  const pending: Promise<Lsn>[] = [];
  for (let i = 0; i < txns; i++) {
    const r = rand();
    if (r < 0.6) {
      const a = Math.floor(rand() * ACCOUNTS);
      let b = Math.floor(rand() * ACCOUNTS);
      if (b === a) b = (a + 1) % ACCOUNTS;
      const amount = Math.floor(rand() * 50);
      balances[a]! -= amount;
      balances[b]! += amount;
      const ba = balances[a]!;
      const bb = balances[b]!;
      pending.push(p.transaction((tx) => tx.put('accounts', `a${a}`, ba).put('accounts', `a${b}`, bb), { synchronousCommit: rand() < 0.2 ? 'on' : 'off' }));
    } else if (r < 0.9) {
      const k = Math.floor(rand() * 500);
      const size = rand() < 0.05 ? 20_000 + Math.floor(rand() * 30_000) : Math.floor(rand() * 400);
      pending.push(p.transaction((tx) => tx.put('kv', `k${k}`, { i, pad: 'p'.repeat(size) }), { synchronousCommit: 'off' }));
    } else {
      const k = Math.floor(rand() * 500);
      pending.push(p.transaction((tx) => tx.delete('kv', `k${k}`), { synchronousCommit: 'off' }));
    }
    if (pending.length >= 32) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
}

function sumAccounts(entries: Array<{ value: unknown }>): number {
  return entries.reduce((s, e) => s + (e.value as number), 0);
}

test('three standbys (one late, one SIGKILLed and restarted) reach the primary and match its digest; hot-standby reads see whole transactions', async () => {
  const dir = tmpDir('walstream-sbc-');
  dirs.push(dir);
  const p = await Primary.open({
    dataDir: path.join(dir, 'p'), walSegmentSize: SEG, walBuffersBytes: 256 * 1024, checkpointTimeoutMs: 0, maxWalSizeBytes: 64 * SEG,
    port: 0, users: { rep: 'pw' },
  });
  const conninfo = { host: '127.0.0.1', port: p.port!, user: 'rep', password: 'pw' };
  let a: Standby | null = null;
  let c: Standby | null = null;
  let b: StandbyChild | null = null;
  // Hot-standby readers run until stopReaders; a failing assertion must stop them before the
  // standbys close under them (else their rejections would hide the assertion).
  let stopReaders = false;
  const readers: Promise<void>[] = [];
  try {
    const balances = new Array<number>(ACCOUNTS).fill(START_BALANCE);
    await p.transaction((tx) => {
      for (let i = 0; i < ACCOUNTS; i++) tx.put('accounts', `a${i}`, START_BALANCE);
    });
    // C: base backup now, streaming only at the end. Keep the primary's WAL from C's redo point
    // (what wal_keep_size would do), so its catch-up comes from the primary's segment files.
    c = await Standby.open({ dataDir: path.join(dir, 'c'), primaryConninfo: conninfo, readerThreads: 0 });
    await c.close();
    const cRedo = p.stats().redoLsn;
    const unpin = p.pinWal(() => cRedo);
    c = null;

    a = await Standby.open({ dataDir: path.join(dir, 'a'), primaryConninfo: conninfo, readerThreads: 2, checkpointTimeoutMs: 0 });
    b = new StandbyChild(path.join(dir, 'b'), p.port!);
    const firstRedo = parseLsn((await b.line('ready')).split(' ')[2]!);

    // Hot-standby readers on A: main thread (readConsistent) and the piscina pool (scan), all the time.
    let reads = 0;
    const readerErrors: string[] = [];
    const standbyA = a;
    const mainReader = (async () => {
      while (!stopReaders) {
        const sum = standbyA.readConsistent((v) => sumAccounts(v.scan('accounts')));
        if (sum !== TOTAL) readerErrors.push(`main thread saw sum ${sum}`);
        reads++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    const poolReaders = [0, 1].map(async () => {
      while (!stopReaders) {
        const rows = await standbyA.pool!.scan('accounts');
        const sum = sumAccounts(rows);
        if (rows.length === ACCOUNTS && sum !== TOTAL) readerErrors.push(`pool saw sum ${sum}`);
        reads++;
      }
    });
    readers.push(mainReader, ...poolReaders);

    const rand = rng(0xc0ffee);
    await workload(p, rand, 1500, balances);
    await p.checkpoint();
    await workload(p, rand, 1500, balances);
    await p.checkpoint();
    await workload(p, rand, 500, balances);
    // B has made restartpoints; kill it without warning while it streams and replays.
    await b.line('restartpoint');
    const running = workload(p, rand, 1500, balances);
    await new Promise((r) => setTimeout(r, 30));
    const killedAt = p.flushLsn;
    b.proc.kill('SIGKILL');
    await b.exited;
    await running;
    b = new StandbyChild(path.join(dir, 'b'), p.port!);
    const restartRedo = parseLsn((await b.line('ready')).split(' ')[2]!);
    assert.ok(restartRedo > firstRedo, 'after SIGKILL, B resumed from its latest restartpoint, not its base backup');
    await workload(p, rand, 1500, balances);
    await p.checkpoint();
    await workload(p, rand, 1000, balances);
    const final = await p.flush();

    c = await Standby.open({ dataDir: path.join(dir, 'c'), primaryConninfo: conninfo, readerThreads: 0 });
    const primaryDigest = p.store.digest();
    await a.waitForReplay(final, 60_000);
    await c.waitForReplay(final, 60_000);
    stopReaders = true;
    await mainReader;
    await Promise.all(poolReaders);
    assert.deepEqual(readerErrors, [], 'no reader saw half a transfer');
    assert.ok(reads > 20, `hot-standby reads ran concurrently with replay (${reads})`);
    assert.equal(a.store!.digest(), primaryDigest, 'A matches the primary');
    assert.equal(c.store!.digest(), primaryDigest, 'C (late) matches the primary');
    assert.equal(await b.digest(final), primaryDigest, 'B (SIGKILLed, restarted) matches the primary');
    assert.ok(killedAt < final);
    for (const s of [a, c]) {
      const st = s.receiverStatus();
      assert.equal(st.status, 'streaming');
      assert.ok(s.flushLsn >= final && s.replayLsn >= final);
      assert.equal(st.replay_lag_bytes, 0);
    }
    assert.ok(a.stats().restartpoints >= 2, `A made restartpoints (${a.stats().restartpoints})`);
    // C caught up over a stream that started far behind the primary's ring
    assert.ok(c.receiverStatus().bytes_received > 3 * SEG, `C received ${c.receiverStatus().bytes_received} bytes`);
    const acct = a.scan('accounts');
    assert.deepEqual(acct.map((e) => e.value as number).sort(), [...balances].sort());
    const rows = p.replicationStatus();
    assert.ok(rows.length >= 3, `the primary sees three walsenders (${rows.length})`);
    unpin();
  } finally {
    stopReaders = true;
    await Promise.allSettled(readers);
    if (b) await b.stop();
    if (a) await a.close();
    if (c) await c.close();
    await p.close();
  }
});

test('a standby stopped with SIGSTOP does not slow the primary; it catches up after SIGCONT', async () => {
  const dir = tmpDir('walstream-sbs-');
  dirs.push(dir);
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0, users: { rep: 'pw' } });
  let b: StandbyChild | null = null;
  try {
    b = new StandbyChild(path.join(dir, 'b'), p.port!);
    await b.line('ready');
    const pad = 'x'.repeat(1000);
    /** 8 committers at synchronous_commit 'on' (local flush) until `bytes` more WAL is flushed. */
    const commitWal = async (bytes: number): Promise<number> => {
      const until = p.flushLsn + bytes;
      let n = 0;
      await Promise.all(
        Array.from({ length: 8 }, async (_, w) => {
          while (p.flushLsn < until) {
            await p.transaction((tx) => tx.put('t', `w${w}-${n % 100}`, { n, pad }));
            n++;
          }
        }),
      );
      return n;
    };
    await commitWal(1 << 20); // warm-up: the standby streams
    await waitFor(() => p.replicationStatus().find((r) => r.application_name === 'child')?.state === 'streaming', 10_000, 'the child streams');
    const ackedBefore = p.replicationStatus().find((r) => r.application_name === 'child')!;
    b.proc.kill('SIGSTOP');
    // While the standby cannot read, commits go on: far more WAL than the socket buffers hold. If
    // any commit waited for the standby, this would never finish while it is stopped: the watchdog
    // turns that into a failure (a hang bound, not a measure of speed).
    const WAL_WHILE_STOPPED = 16 << 20;
    const HANG_MS = 120_000;
    let watchdog: NodeJS.Timeout | undefined;
    const n = await Promise.race([
      commitWal(WAL_WHILE_STOPPED),
      new Promise<never>((_, reject) => {
        watchdog = setTimeout(() => reject(new Error(`commits did not finish within ${HANG_MS} ms while the standby was stopped`)), HANG_MS);
      }),
    ]).finally(() => clearTimeout(watchdog));
    const lsnWhileStopped = p.flushLsn;
    const row = p.replicationStatus().find((r) => r.application_name === 'child')!;
    b.proc.kill('SIGCONT');
    const final = await p.flush();
    console.log(`${n} commits (${WAL_WHILE_STOPPED >> 20} MiB of WAL) while the standby was stopped`);
    // The standby acknowledged nothing near the end while stopped, yet every commit completed.
    assert.ok(row.flush_lsn !== null && row.flush_lsn < lsnWhileStopped, 'the stopped standby lags behind');
    assert.ok(row.flush_lsn! - (ackedBefore.flush_lsn ?? 0) < lsnWhileStopped - (ackedBefore.flush_lsn ?? 0));
    assert.equal(await b.digest(final), p.store.digest(), 'the standby caught up after SIGCONT');
  } finally {
    if (b) {
      b.proc.kill('SIGCONT');
      await b.stop();
    }
    await p.close();
  }
});
