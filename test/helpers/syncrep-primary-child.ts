// Child process for the synchronous-replication no-loss test: a Primary listening on a fixed
// port with synchronous_standby_names 'FIRST 1 (s1)', committing from several concurrent
// committers at synchronous_commit=on and printing "ack <key>" once each commit is confirmed by
// the synchronous standby. argv: dataDir port round committers. Runs until killed (SIGKILL).
import { Primary } from '../../src/primary/primary.js';

const [dataDir, portArg, roundArg, committersArg] = process.argv.slice(2);
const round = roundArg ?? '0';
const committers = parseInt(committersArg ?? '8', 10);
const p = await Primary.open({
  dataDir: dataDir!,
  port: Number(portArg),
  walSegmentSize: 1 << 20,
  checkpointTimeoutMs: 0,
  synchronousStandbyNames: 'FIRST 1 (s1)',
});
process.stdout.write('ready\n');
async function worker(c: number): Promise<void> {
  for (let n = 0; ; n++) {
    const key = `r${round}-c${c}-${n}`;
    await p.transaction((tx) => tx.put('t', key, n), { synchronousCommit: 'on' });
    process.stdout.write(`ack ${key} ${n}\n`);
  }
}
await Promise.all(Array.from({ length: committers }, (_, c) => worker(c)));
