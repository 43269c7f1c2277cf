// `walstream demo` (the README's main command): a primary on an embedded default, listening on
// 127.0.0.1, with two in-process standbys (walreceiver + startup worker threads each), under a
// pgbench-like load (load.ts: concurrent committers, optionally rate-limited with --load). Prints
// status lines once a second (status-lines.ts: a header, then per standby an ISO timestamp,
// positions, byte and time lag per level), checks read-your-writes on a standby (waitForReplay of
// a commit's LSN), and at the end compares the standbys' store digests with the primary's. Owns
// everything it opens and closes it before returning.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Primary } from '../primary/primary.js';
import { Standby } from '../standby/standby.js';
import { commitRateMeter, startLoad } from './load.js';
import { PRIMARY_COLUMNS, primaryStatusLines, statusHeader } from './status-lines.js';

export interface DemoOptions {
  seconds: number;
  dir?: string;
  standbys?: number;
  /** Commits/s of the load (default: as fast as the clients commit). */
  load?: number;
  loadClients?: number;
}

/** Status lines every this many ms. */
const DEMO_STATUS_EVERY_MS = 1000;
/** Client 0 checks read-your-writes on a standby every this many of its commits. */
const RYW_EVERY_COMMITS = 200;
/** Bound on a read-your-writes wait, and on the standbys' final catch-up, ms (hang bounds). */
const RYW_TIMEOUT_MS = 10_000;
const FINAL_REPLAY_TIMEOUT_MS = 30_000;

export async function runDemo(o: DemoOptions): Promise<void> {
  const base = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'walstream-demo-'));
  const nStandbys = o.standbys ?? 2;
  const p = await Primary.open({ dataDir: path.join(base, 'primary'), port: 0 });
  console.log(`walstream demo: primary ${path.join(base, 'primary')} listening on 127.0.0.1:${p.port} (system ${p.systemIdentifier}, timeline ${p.timeline})`);
  const standbys: Standby[] = [];
  for (let i = 1; i <= nStandbys; i++) {
    standbys.push(
      await Standby.open({
        dataDir: path.join(base, `standby${i}`),
        primaryConninfo: { host: '127.0.0.1', port: p.port!, user: 'walstream', applicationName: `standby${i}` },
        readerThreads: 1,
      }),
    );
    console.log(`standby${i}: base backup done, streaming`);
  }
  let rywChecks = 0;
  let rywMaxMs = 0;
  const load = startLoad(p, {
    rate: o.load ?? null,
    clients: o.loadClients ?? 32,
    valueBytes: 0,
    body: (tx, w, i) => {
      tx.put('accounts', `acct-${w}-${i % 1000}`, { balance: i, at: Date.now() });
      tx.put('events', `${w}-${i}`, { kind: 'deposit', amount: i % 100 });
    },
    onCommit: async (lsn, w, i) => {
      if (w !== 0 || i % RYW_EVERY_COMMITS !== 0 || standbys.length === 0) return;
      // read-your-writes on a standby: wait until it has replayed this commit, then read it
      const t0 = performance.now();
      const s = standbys[(i / RYW_EVERY_COMMITS) % standbys.length]!;
      await s.waitForReplay(lsn, RYW_TIMEOUT_MS);
      const v = s.get('events', `${w}-${i}`) as { amount: number } | undefined;
      if (v?.amount !== i % 100) throw new Error(`read-your-writes failed on a standby for ${w}-${i}`);
      rywChecks++;
      rywMaxMs = Math.max(rywMaxMs, performance.now() - t0);
    },
  });
  const rate = commitRateMeter(() => load.commits);
  console.log(statusHeader(PRIMARY_COLUMNS));
  const timer = setInterval(() => {
    for (const line of primaryStatusLines(new Date(), rate(), p.stats().flushLsn, p.replicationStatus())) console.log(line);
  }, DEMO_STATUS_EVERY_MS);
  await new Promise((r) => setTimeout(r, o.seconds * 1000));
  await load.stop();
  clearInterval(timer);
  if (load.error) {
    for (const s of standbys) await s.close();
    await p.close();
    throw load.error;
  }
  const end = await p.flush();
  for (const s of standbys) await s.waitForReplay(end, FINAL_REPLAY_TIMEOUT_MS);
  const digest = p.store.digest();
  const same = standbys.map((s) => s.store?.digest() === digest);
  const st = p.stats();
  console.log(`done: ${load.commits} commits, ${st.walFsyncs} WAL fsyncs, ${st.store.entries} rows; ${rywChecks} read-your-writes checks on standbys (worst wait ${rywMaxMs.toFixed(1)} ms); standby digests equal the primary's: ${same.join(', ')}`);
  for (const s of standbys) await s.close();
  await p.close();
  if (o.dir === undefined) fs.rmSync(base, { recursive: true, force: true });
  if (same.includes(false)) process.exitCode = 1;
}
