// Child process for the promotion crash test: opens a Standby of the primary at 127.0.0.1:port
// (user rep / password pw), waits until replay has passed `lsn`, prints "ready", promotes, prints
// "promoted <tli>", closes the new primary and exits 0. With WALSTREAM_TEST_PROMOTE_CRASH_AT set,
// the promotion kills this process (SIGKILL) at that step. argv: dataDir port lsn [commits]: with
// `commits`, the promoted primary commits that many transactions (synchronousCommit 'on', table
// 'after', keys a0, a1, …), printing "acked <i>" for each, and then the process kills itself
// (SIGKILL) without closing, printing first how many checkpoints the new primary completed.
import { Standby } from '../../src/standby/standby.js';

const [dataDir, port, lsn, commits] = process.argv.slice(2);
const s = await Standby.open({
  dataDir: dataDir!,
  primaryConninfo: { host: '127.0.0.1', port: Number(port), user: 'rep', password: 'pw', applicationName: 'promote-child' },
  walRetrieveRetryIntervalMs: 100,
  readerThreads: 0,
});
await s.waitForReplay(Number(lsn), 60_000);
process.stdout.write('ready\n');
const p = await s.promote({ checkpointTimeoutMs: 0 });
process.stdout.write(`promoted ${p.timeline}\n`);
if (commits !== undefined) {
  for (let i = 0; i < Number(commits); i++) {
    await p.transaction((tx) => tx.put('after', `a${i}`, i), { synchronousCommit: 'on' });
    process.stdout.write(`acked ${i}\n`);
  }
  process.stdout.write(`checkpoints ${p.stats().checkpoints}\n`);
  process.kill(process.pid, 'SIGKILL');
}
await p.close();
await s.close();
process.exit(0);
