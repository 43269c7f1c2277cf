// The promote signal (PostgreSQL's PROMOTE_SIGNAL_FILE "promote" in the data directory, written by
// `pg_ctl promote`, and promote_trigger_file): `walstream promote` writes the file and sends
// SIGUSR1 to the standby named by the pid file; a running standby watches for either file
// (watchPromoteSignal: SIGUSR1, and a poll as a fallback) and promotes once. Runs on the standby's
// main thread; owns a timer and the SIGUSR1 listener, both removed by the returned stop function or
// when a promotion starts. The files are removed when found (CheckPromoteSignal + RemovePromoteSignalFiles).

import fs from 'node:fs';
import path from 'node:path';
import { fsyncDir, fsyncSync } from '../util/fsync.js';

export const PROMOTE_SIGNAL_FILE = 'promote';
/** How often a standby looks for the signal files when no SIGUSR1 came (ms). */
export const PROMOTE_POLL_MS = 1000;

/** Write `<dataDir>/promote` durably (pg_ctl promote's first step). */
export function writePromoteSignal(dataDir: string): void {
  const file = path.join(dataDir, PROMOTE_SIGNAL_FILE);
  const fd = fs.openSync(file, 'w', 0o600);
  try {
    fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fsyncDir(dataDir);
}

/** Is promotion requested (the signal file, or the trigger file)? Removes what it found. */
export function checkPromoteSignal(dataDir: string, triggerFile: string | null): boolean {
  let found = false;
  for (const f of [path.join(dataDir, PROMOTE_SIGNAL_FILE), triggerFile]) {
    if (f === null) continue;
    if (fs.existsSync(f)) {
      found = true;
      fs.rmSync(f, { force: true });
    }
  }
  return found;
}

/**
 * Call `onPromote` once, when a signal file (or promoteTriggerFile) appears: checked on SIGUSR1
 * and every pollMs. Returns a function that stops watching.
 */
export function watchPromoteSignal(dataDir: string, triggerFile: string | null, onPromote: () => void, pollMs = PROMOTE_POLL_MS): () => void {
  let done = false;
  const check = () => {
    if (done || !checkPromoteSignal(dataDir, triggerFile)) return;
    stop();
    onPromote();
  };
  const timer = setInterval(check, pollMs);
  timer.unref();
  process.on('SIGUSR1', check);
  function stop(): void {
    done = true;
    clearInterval(timer);
    process.off('SIGUSR1', check);
  }
  setImmediate(check);
  return stop;
}
