// Child process for the standby tests: runs one Standby so the parent can SIGKILL, SIGSTOP and
// SIGCONT it. argv: dataDir host port user password [checkpointTimeoutMs [servePort [applicationName]]].
// With servePort it serves replication itself (cascading walsenders, trust). Prints
// "ready <replayLsn> <redoLsn> <servePort|->" once open() resolved (consistent), with its redo
// point (replayLsn a number, redoLsn X/X), then answers stdin lines:
//   digest <lsn>   → waits until replay passed lsn, prints "digest <lsn> <hex>"
//   status         → prints "status <json of receiverStatus()>"
// Events: "restartpoint <redo>" for each restartpoint, "error <message>" for failures. SIGTERM closes
// the standby cleanly and exits 0.
import readline from 'node:readline';
import { Standby } from '../../src/standby/standby.js';
import { lsnToString } from '../../src/wal/lsn.js';

const [dataDir, host, port, user, password, ckptArg, serveArg, appName] = process.argv.slice(2);
const s = await Standby.open({
  dataDir: dataDir!,
  primaryConninfo: { host: host!, port: Number(port), user: user!, password: password!, applicationName: appName ?? 'child' },
  ...(serveArg !== undefined ? { port: Number(serveArg) } : {}),
  checkpointTimeoutMs: Number(ckptArg ?? '0'),
  walRetrieveRetryIntervalMs: 100,
  readerThreads: 1,
});
s.on('restartpoint', (i: { redoLsn: number }) => process.stdout.write(`restartpoint ${lsnToString(i.redoLsn)}\n`));
s.on('error', (e: Error) => process.stdout.write(`error ${e.message}\n`));
process.stdout.write(`ready ${s.replayLsn} ${lsnToString(s.stats().redoLsn)} ${s.replication?.port ?? '-'}\n`);

let closing = false;
process.on('SIGTERM', () => {
  if (closing) return;
  closing = true;
  void s.close().then(() => process.exit(0));
});

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === 'digest') {
    const lsn = Number(arg);
    s.waitForReplay(lsn, 60_000).then(
      () => process.stdout.write(`digest ${lsn} ${s.store!.digest()}\n`),
      (e: Error) => process.stdout.write(`error ${e.message}\n`),
    );
  } else if (cmd === 'status') {
    process.stdout.write(`status ${JSON.stringify(s.receiverStatus())}\n`);
  }
});
