// `walstream promote --data DIR` (pg_ctl promote): checks that DIR is a standby's data directory
// and that a standby runs there (its pid file), writes the `promote` signal file, sends the
// standby SIGUSR1, and (unless --no-wait) waits until the control file says "in production".
// Runs in its own short-lived process; owns nothing.

import fs from 'node:fs';
import path from 'node:path';
import { Errors } from '../errors.js';
import { PID_FILE } from '../storage/datadir.js';
import { DbState, readControl } from '../storage/control.js';
import { writePromoteSignal } from '../standby/promote-signal.js';

export interface PromoteCliOptions {
  data: string;
  wait: boolean;
  timeoutSeconds: number;
}

function runningPid(dataDir: string): number | null {
  let pid: number;
  try {
    pid = parseInt(fs.readFileSync(path.join(dataDir, PID_FILE), 'utf8'), 10);
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
}

export async function runPromote(o: PromoteCliOptions): Promise<void> {
  const dataDir = path.resolve(o.data);
  if (!fs.existsSync(dataDir)) throw Errors.notADataDir(dataDir, 'it does not exist');
  const control = readControl(dataDir);
  if (control === null) throw Errors.notADataDir(dataDir, 'it has no control file');
  if (control.state !== DbState.InArchiveRecovery && control.state !== DbState.ShutDownInRecovery) throw Errors.promoteNotPossible('server is not in standby mode');
  const pid = runningPid(dataDir);
  if (pid === null) throw Errors.promoteNotPossible('server is not running');
  writePromoteSignal(dataDir);
  process.kill(pid, 'SIGUSR1');
  if (!o.wait) {
    console.log('server promoting');
    return;
  }
  const deadline = Date.now() + o.timeoutSeconds * 1000;
  for (;;) {
    const c = readControl(dataDir);
    if (c !== null && c.state === DbState.InProduction) break;
    if (Date.now() > deadline) throw Errors.promoteNotPossible(`server did not promote in time (${o.timeoutSeconds} s)`);
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log('server promoted');
}
