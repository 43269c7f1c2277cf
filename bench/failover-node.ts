// Child process of `walstream bench failover` (bench/failover.ts): one walstream node per process,
// so that the bench can SIGKILL the primary as a crash would. argv: <role> <dataDir> <arg>; imported, it
// only gives its constants and runs nothing.
//  - `primary <dataDir> <committers>`: Primary.open (replication on an ephemeral 127.0.0.1 port,
//    synchronous_standby_names 's1'), prints `listening <port>`; once s1 is synchronous it runs
//    <committers> concurrent committers at synchronous_commit=on (committer c inserts keys
//    `c<c>-<n>`, n = 0, 1, …), prints `loading`, then every ACK_REPORT_MS `acked n0 n1 …` (per
//    committer, the last n acknowledged, -1 for none). Runs until it is SIGKILLed (its purpose).
//  - `standby <dataDir> <port>`: Standby.open (a base backup of the primary at 127.0.0.1:<port>,
//    application_name s1), prints `standby` once consistent; watches the promote signal as
//    `walstream standby` does (the `promote` file, SIGUSR1) and promotes (replication on an
//    ephemeral port), printing `promoted <tli>`. Stdin lines, answered on stdout:
//      `commit <id>` → a transaction at synchronous_commit=on: `ok <id>` once acknowledged, or
//        `err <id> standby` while not yet promoted (where PostgreSQL answers
//        read_only_sql_transaction);
//      `check n0 n1 …` → `missing <k>`: how many of the keys c<c>-0 … c<c>-<n_c> are absent.
//    SIGTERM closes the promoted primary and the standby, then exits.

import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Primary } from '../src/primary/primary.js';
import { watchPromoteSignal } from '../src/standby/promote-signal.js';
import { Standby } from '../src/standby/standby.js';

/** How often the primary reports its acknowledged commits, ms. */
const ACK_REPORT_MS = 20;
/** Upper bound on waiting for s1 to become synchronous, and how often it is looked at, ms. */
const SYNC_WAIT_MS = 60_000;
const SYNC_CHECK_MS = 10;
/** Bytes of filler per inserted value (the PostgreSQL side inserts the same). */
export const FAILOVER_PAD_BYTES = 100;
/** The table (walstream: key space) the load and the probes write. */
export const FAILOVER_TABLE = 'failover_load';

const SEG = 16 * 1024 * 1024;
const out = (line: string) => process.stdout.write(`${line}\n`);

async function runPrimary(dataDir: string, committers: number): Promise<void> {
  const p = await Primary.open({ dataDir, port: 0, host: '127.0.0.1', walSegmentSize: SEG, checkpointTimeoutMs: 0, synchronousStandbyNames: 's1' });
  out(`listening ${p.port}`);
  const deadline = Date.now() + SYNC_WAIT_MS;
  while (!p.replicationStatus().some((r) => r.sync_state === 'sync')) {
    if (Date.now() > deadline) throw new Error('s1 did not become synchronous');
    await new Promise((r) => setTimeout(r, SYNC_CHECK_MS));
  }
  const acked = new Array<number>(committers).fill(-1);
  const pad = 'x'.repeat(FAILOVER_PAD_BYTES);
  setInterval(() => out(`acked ${acked.join(' ')}`), ACK_REPORT_MS);
  out('loading');
  await Promise.all(acked.map(async (_, c) => {
    for (let n = 0; ; n++) {
      await p.transaction((tx) => tx.put(FAILOVER_TABLE, `c${c}-${n}`, { c, n, pad }), { synchronousCommit: 'on' });
      acked[c] = n;
    }
  }));
}

async function runStandby(dataDir: string, port: number): Promise<void> {
  const s = await Standby.open({ dataDir, primaryConninfo: { host: '127.0.0.1', port, user: 'bench', applicationName: 's1' }, readerThreads: 0, checkpointTimeoutMs: 0 });
  let primary: Primary | null = null;
  let promoting: Promise<unknown> | null = null;
  const stopWatching = watchPromoteSignal(s.dataDir, null, () => {
    promoting = s.promote({ port: 0, host: '127.0.0.1', checkpointTimeoutMs: 0 }).then((p) => {
      primary = p;
      out(`promoted ${p.timeline}`);
    }, (e: Error) => out(`failed ${e.message.split('\n')[0]}`));
  });
  process.once('SIGTERM', () => {
    stopWatching();
    void (async () => {
      if (promoting) await promoting;
      if (primary) await (primary as Primary).close();
      await s.close();
      process.exit(0);
    })();
  });
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const [cmd, ...args] = line.split(' ');
    if (cmd === 'commit') {
      const id = args[0]!;
      const p = primary as Primary | null;
      if (p === null) {
        out(`err ${id} standby`);
        return;
      }
      p.transaction((tx) => tx.put(FAILOVER_TABLE, `probe-${id}`, { id }), { synchronousCommit: 'on' }).then(() => out(`ok ${id}`), (e: Error) => out(`err ${id} ${e.message.split('\n')[0]}`));
    } else if (cmd === 'check') {
      let missing = 0;
      args.forEach((a, c) => {
        for (let n = 0; n <= Number(a); n++) if (s.get(FAILOVER_TABLE, `c${c}-${n}`) === undefined) missing++;
      });
      out(`missing ${missing}`);
    }
  });
  out('standby');
}

/** This module's file: the bench spawns it; importing it (for the constants) runs nothing. */
export const FAILOVER_NODE_SCRIPT = fileURLToPath(import.meta.url);

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === FAILOVER_NODE_SCRIPT) {
  const [role, dataDir, arg] = process.argv.slice(2);
  try {
    if (role === 'primary') await runPrimary(dataDir!, Number(arg));
    else if (role === 'standby') await runStandby(dataDir!, Number(arg));
    else throw new Error(`unknown role ${role}`);
  } catch (e) {
    process.stderr.write(`failover node (${role}): ${(e as Error).message}\n`);
    process.exit(1);
  }
}
