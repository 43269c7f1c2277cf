// A replica killed (SIGKILL) while it follows a timeline switch, again and again, restarts and
// ends up on the new timeline with the new primary's exact store. A primary P (in this process)
// with s1 (in this process) and s2 (a child process, so it can be killed); P stops, s1 is
// promoted (timeline 2) and takes writes; s2 is re-pointed to it and killed at moments drawn from
// a seeded PRNG (the seed is printed; WALSTREAM_FAILOVER_SEED replays a run) while s1 commits:
// before, during and after the history file, the timeline 2 switch segment, replay's switch and
// the control file update, and between restartpoints. After each kill s2 is reopened on the same
// directory (now pointed at s1). Checked at the end: s2 is consistent, replays timeline 2, its control file names
// timeline 2, and its store digest equals s1's.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { readControl } from '../src/storage/control.js';
import { Standby } from '../src/standby/standby.js';
import { FailoverStandby, killFailoverChildren } from './helpers/failover-proc.js';
import { prng } from './helpers/prng.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;
const SEED = Number(process.env.WALSTREAM_FAILOVER_SEED ?? String(Date.now() % 1_000_000));
/** Kill/restart cycles of s2. */
const KILLS = 5;
/** Each kill comes this long after s2 was (re)started: [0, KILL_SPAN_MS) ms. */
const KILL_SPAN_MS = 600;
const dirs: string[] = [];
after(() => {
  killFailoverChildren();
  dirs.forEach(rmrf);
});

async function commit(p: Primary, tag: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await p.transaction((tx) => tx.put('t', `${tag}${i}`, { i, pad: 'k'.repeat(i % 11 === 0 ? 5000 : 100) }), { synchronousCommit: 'off' });
  await p.flush();
}

test(`a replica SIGKILLed while following a promotion restarts onto timeline 2 (seed ${SEED})`, async (t) => {
  t.diagnostic(`seed ${SEED} (WALSTREAM_FAILOVER_SEED=${SEED} replays this run)`);
  const rand = prng(SEED);
  const root = tmpDir('walstream-failover-crash-');
  dirs.push(root);
  const p = await Primary.open({ dataDir: path.join(root, 'p'), walSegmentSize: SEG, port: 0, checkpointTimeoutMs: 0 });
  const s2dir = path.join(root, 's2');
  let s1: Standby | null = null;
  let np: Primary | null = null;
  let s2: FailoverStandby | null = null;
  try {
    s1 = await Standby.open({ dataDir: path.join(root, 's1'), primaryConninfo: { host: '127.0.0.1', port: p.port!, user: 'rep', applicationName: 's1' }, readerThreads: 0 });
    s2 = new FailoverStandby(s2dir, p.port!);
    let startedOn = (await s2.line('ready ')).split(' ')[1];
    await commit(p, 'a', 1500);
    await p.checkpoint();
    const pEnd = p.flushLsn;
    await s1.waitForReplay(pEnd, 60_000);
    s2.send(`digest ${pEnd}`);
    await s2.line(`digest ${pEnd} `);
    await p.close();
    np = await s1.promote({ port: 0, checkpointTimeoutMs: 0 });
    s2.send(`repoint ${np.port}`);
    const kills: string[] = [];
    for (let k = 0; k < KILLS; k++) {
      const killAt = Math.floor(rand() * KILL_SPAN_MS);
      const writes = commit(np, `k${k}-`, 400);
      await new Promise((r) => setTimeout(r, killAt));
      await s2.kill('SIGKILL');
      kills.push(`kill ${k} at ${killAt} ms: started on timeline ${startedOn}${s2.has('timeline 2') ? ', replay switched' : ''}`);
      await writes;
      s2 = new FailoverStandby(s2dir, np.port!);
      startedOn = (await s2.line('ready ')).split(' ')[1];
      if (k % 2 === 1) {
        // Restartpoints on s2 after the switch; only once s2 has all of s1's WAL (without a slot, a
        // checkpoint while s2 is down may remove segments it still needs, as in PostgreSQL).
        const at = np.flushLsn;
        s2.send(`digest ${at}`);
        await s2.line(`digest ${at} `);
        await np.checkpoint();
      }
    }
    await commit(np, 'z', 300);
    const end = np.flushLsn;
    s2.send(`digest ${end}`);
    const [, , digest, tli] = (await s2.line(`digest ${end} `)).split(' ');
    assert.equal(tli, '2', 's2 replays timeline 2');
    assert.equal(digest, np.store.digest(), "s2's store is s1's");
    await s2.kill('SIGTERM');
    assert.equal(readControl(s2dir)!.tli, 2, "s2's control file names timeline 2");
    t.diagnostic(kills.join('; '));
  } finally {
    await s2?.kill('SIGKILL');
    await np?.close().catch(() => undefined);
    await s1?.close().catch(() => undefined);
    await p.close().catch(() => undefined);
  }
});
