// Data directory ownership: the postmaster.pid of walstream. One process (and within it one
// Primary or Standby) owns a data directory at a time; a pid file left by a process that is gone
// (kill -9) is taken over.

import fs from 'node:fs';
import path from 'node:path';
import { Errors } from '../errors.js';

export const PID_FILE = 'walstream.pid';

/** Directories owned by this process (a second owner in the same process is refused too). */
const openDirs = new Set<string>();

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function acquirePidFile(dataDir: string): void {
  const file = path.join(dataDir, PID_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      openDirs.add(dataDir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = parseInt(fs.readFileSync(file, 'utf8'), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) throw Errors.dataDirInUse(dataDir, pid);
      if (pid === process.pid && openDirs.has(dataDir)) throw Errors.dataDirInUse(dataDir, pid);
      fs.rmSync(file, { force: true });
    }
  }
  throw Errors.dataDirInUse(dataDir, -1);
}

export function releasePidFile(dataDir: string): void {
  openDirs.delete(dataDir);
  fs.rmSync(path.join(dataDir, PID_FILE), { force: true });
}
