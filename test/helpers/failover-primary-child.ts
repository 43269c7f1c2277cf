// Child process for the failover tests: a Primary on a free port with synchronous_standby_names
// 'FIRST 1 (s1)'. Prints "ready <port>"; on the stdin line "go" it starts `committers` concurrent
// committers at synchronous_commit=on and prints "ack <key> <n> <lsn>" once each commit is
// confirmed by the synchronous standby (key r<round>-c<c>-<n>, value n). On "async <count>" it
// commits `count` transactions at synchronous_commit=local (flushed here only, not waiting for a
// standby) and prints "local <lsn>" after the last. On "stop" it stops committing and prints
// "idle <flushLsn>" once every commit in flight has finished. Runs until killed (SIGKILL).
import readline from 'node:readline';
import { Primary } from '../../src/primary/primary.js';

const [dataDir, roundArg, committersArg] = process.argv.slice(2);
const round = roundArg ?? '0';
const committers = parseInt(committersArg ?? '4', 10);
const p = await Primary.open({
  dataDir: dataDir!,
  port: 0,
  walSegmentSize: 1 << 20,
  checkpointTimeoutMs: 0,
  synchronousStandbyNames: 'FIRST 1 (s1)',
});
process.stdout.write(`ready ${p.port}\n`);

let running = false;
const workers: Array<Promise<void>> = [];

async function worker(c: number): Promise<void> {
  for (let n = 0; running; n++) {
    const key = `r${round}-c${c}-${n}`;
    const lsn = await p.transaction((tx) => tx.put('t', key, { n, pad: 'f'.repeat(n % 5 === 0 ? 900 : 60) }), { synchronousCommit: 'on' });
    process.stdout.write(`ack ${key} ${n} ${lsn}\n`);
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === 'go' && !running) {
    running = true;
    for (let c = 0; c < committers; c++) workers.push(worker(c));
  } else if (cmd === 'stop') {
    running = false;
    void Promise.all(workers.splice(0)).then(async () => {
      await p.flush();
      process.stdout.write(`idle ${p.flushLsn}\n`);
    });
  } else if (cmd === 'async') {
    void (async () => {
      let lsn = 0;
      for (let i = 0; i < Number(arg); i++) lsn = await p.transaction((tx) => tx.put('t', `local-${i}`, i), { synchronousCommit: 'local' });
      process.stdout.write(`local ${lsn}\n`);
    })();
  }
});
