// `walstream demo` (the README's main command): a primary on an embedded default under load,
// printing live status once a second. Standbys join the demo as streaming lands.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Primary } from '../primary/primary.js';

export async function runDemo(o: { seconds: number; dir?: string }): Promise<void> {
  const base = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'walstream-demo-'));
  const p = await Primary.open({ dataDir: path.join(base, 'primary') });
  console.log(`walstream demo: primary at ${path.join(base, 'primary')} (system ${p.systemIdentifier}, timeline ${p.timeline})`);
  let stop = false;
  let commits = 0;
  const load = Promise.all(
    Array.from({ length: 32 }, async (_, w) => {
      let i = 0;
      while (!stop) {
        await p.transaction((tx) => {
          tx.put('accounts', `acct-${w}-${i % 1000}`, { balance: i, at: Date.now() });
          tx.put('events', `${Date.now()}-${w}-${i}`, { kind: 'deposit', amount: i % 100 });
        });
        commits++;
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
      `insert ${s.insertLsn.padEnd(11)} flush ${s.flushLsn.padEnd(11)} | ${Math.round((commits - last.commits) / dt)} commits/s, ` +
        `${((p.insertLsn - last.wal) / dt / 1e6).toFixed(1)} MB/s WAL, ${s.walFsyncs} fsyncs, ${s.store.entries} rows, ${s.checkpoints} checkpoints`,
    );
    last = { commits, wal: p.insertLsn, t: now };
  }, 1000);
  await new Promise((r) => setTimeout(r, o.seconds * 1000));
  stop = true;
  await load;
  clearInterval(timer);
  await p.close();
  console.log(`done: ${commits} commits; clean shutdown checkpoint written`);
  if (o.dir === undefined) fs.rmSync(base, { recursive: true, force: true });
}
