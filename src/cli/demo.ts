// `walstream demo` (the README's main command): a primary on an embedded default, listening on
// 127.0.0.1, with two in-process standbys (walreceiver + startup worker threads each), under a
// load of concurrent committers. Prints pg_stat_replication-style rows once a second, checks
// read-your-writes on a standby (waitForReplay of a commit's LSN), and at the end compares the
// standbys' store digests with the primary's.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Primary } from '../primary/primary.js';
import { Standby } from '../standby/standby.js';

export async function runDemo(o: { seconds: number; dir?: string; standbys?: number }): Promise<void> {
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
  let stop = false;
  let commits = 0;
  let rywChecks = 0;
  let rywMaxMs = 0;
  const load = Promise.all(
    Array.from({ length: 32 }, async (_, w) => {
      let i = 0;
      while (!stop) {
        const lsn = await p.transaction((tx) => {
          tx.put('accounts', `acct-${w}-${i % 1000}`, { balance: i, at: Date.now() });
          tx.put('events', `${w}-${i}`, { kind: 'deposit', amount: i % 100 });
        });
        commits++;
        if (w === 0 && i % 200 === 0 && standbys.length > 0) {
          // read-your-writes on a standby: wait until it has replayed this commit, then read it
          const t0 = performance.now();
          const s = standbys[(i / 200) % standbys.length]!;
          await s.waitForReplay(lsn, 10_000);
          const v = s.get('events', `${w}-${i}`) as { amount: number } | undefined;
          if (v?.amount !== i % 100) throw new Error(`read-your-writes failed on a standby for ${w}-${i}`);
          rywChecks++;
          rywMaxMs = Math.max(rywMaxMs, performance.now() - t0);
        }
        i++;
      }
    }),
  );
  let last = { commits: 0, wal: p.insertLsn, t: performance.now() };
  const timer = setInterval(() => {
    const s = p.stats();
    const now = performance.now();
    const dt = (now - last.t) / 1000;
    console.log(
      `primary insert ${s.insertLsn} flush ${s.flushLsn} | ${Math.round((commits - last.commits) / dt)} commits/s, ` +
        `${((p.insertLsn - last.wal) / dt / 1e6).toFixed(1)} MB/s WAL, ${s.walFsyncs} fsyncs, ${s.store.entries} rows`,
    );
    for (const r of p.replicationStatus()) {
      console.log(
        `  ${r.application_name.padEnd(9)} ${r.state.padEnd(9)} sent ${String(r.sent_lsn).padEnd(11)} write ${String(r.write_lsn).padEnd(11)} ` +
          `flush ${String(r.flush_lsn).padEnd(11)} replay ${String(r.replay_lsn).padEnd(11)} lag ${r.replay_lag_bytes ?? '?'} B`,
      );
    }
    last = { commits, wal: p.insertLsn, t: now };
  }, 1000);
  await new Promise((r) => setTimeout(r, o.seconds * 1000));
  stop = true;
  await load;
  clearInterval(timer);
  const end = await p.flush();
  for (const s of standbys) await s.waitForReplay(end, 30_000);
  const digest = p.store.digest();
  const same = standbys.map((s) => s.store?.digest() === digest);
  console.log(`done: ${commits} commits; ${rywChecks} read-your-writes checks on standbys (worst wait ${rywMaxMs.toFixed(1)} ms); standby digests equal the primary's: ${same.join(', ')}`);
  for (const s of standbys) await s.close();
  await p.close();
  if (o.dir === undefined) fs.rmSync(base, { recursive: true, force: true });
  if (same.includes(false)) process.exitCode = 1;
}
