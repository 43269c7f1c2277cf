// Child process for the crash tests: opens a Primary and commits transactions from several
// concurrent committers, printing "ack <i>" for each acknowledged commit, until it is killed.
// Transaction i puts three keys (k<i>-a/b/c) and overwrites "last"; atomicity is checked by the
// parent after recovery.
import { Primary } from '../../src/primary/primary.js';

const [dataDir, startArg, committersArg, levelArg, committerFlushArg] = process.argv.slice(2);
let next = parseInt(startArg ?? '0', 10);
const committers = parseInt(committersArg ?? '8', 10);
const level = (levelArg ?? 'on') as 'on' | 'local';

const p = await Primary.open({ dataDir: dataDir!, walSegmentSize: 1 << 20, checkpointTimeoutMs: 0, maxWalSizeBytes: 4 << 20, committerFlush: committerFlushArg === '1' });
process.stdout.write('ready\n');
const pad = 'x'.repeat(300);
async function worker(): Promise<void> {
  for (;;) {
    const i = next++;
    const big = i % 50 === 0 ? 'y'.repeat(20_000) : pad;
    await p.transaction((tx) => {
      tx.put('t', `k${i}-a`, { i, pad: big });
      tx.put('t', `k${i}-b`, { i });
      tx.put('t', `k${i}-c`, { i });
      tx.put('t', 'last', i);
      if (i > 10) tx.delete('t', `k${i - 10}-gone`);
    }, { synchronousCommit: level });
    process.stdout.write(`ack ${i}\n`);
  }
}
await Promise.all(Array.from({ length: committers }, worker));
