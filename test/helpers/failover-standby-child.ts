// Child process for the failover crash test: one replica Standby of 127.0.0.1:<port> (user rep),
// so the parent can SIGKILL it while it follows a timeline switch. argv: dataDir port. Prints
// "ready <timeline>" once open() resolved (consistent), "timeline <tli>" when replay moves to a
// newer timeline, "error <message>" on failures; stdin lines:
//   repoint <port>   → setPrimaryConninfo to 127.0.0.1:<port>
//   digest <lsn>     → waits until replay passed lsn, prints "digest <lsn> <hex> <timeline>"
// SIGTERM closes the standby cleanly and exits 0.
import readline from 'node:readline';
import { Standby } from '../../src/standby/standby.js';

const [dataDir, port] = process.argv.slice(2);
const conninfo = (p: number) => ({ host: '127.0.0.1', port: p, user: 'rep', applicationName: 's2' });
const s = await Standby.open({ dataDir: dataDir!, primaryConninfo: conninfo(Number(port)), readerThreads: 0, walRetrieveRetryIntervalMs: 50, checkpointTimeoutMs: 0 });
s.on('error', (e: Error) => process.stdout.write(`error ${e.message}\n`));
s.on('warning', (e: Error) => process.stdout.write(`warning ${e.message}\n`));
s.on('replayTimeline', (m: { tli: number }) => process.stdout.write(`timeline ${m.tli}\n`));
process.stdout.write(`ready ${s.timeline}\n`);

let closing = false;
process.on('SIGTERM', () => {
  if (closing) return;
  closing = true;
  void s.close().then(() => process.exit(0));
});

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === 'repoint') {
    s.setPrimaryConninfo(conninfo(Number(arg)));
  } else if (cmd === 'digest') {
    const lsn = Number(arg);
    s.waitForReplay(lsn, 60_000).then(
      () => process.stdout.write(`digest ${lsn} ${s.store!.digest()} ${s.timeline}\n`),
      (e: Error) => process.stdout.write(`error ${e.message}\n`),
    );
  }
});
