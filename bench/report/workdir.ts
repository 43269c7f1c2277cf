// The directory a bench run works in: a new directory made for this run (mkdtemp) inside `--dir`
// (created if missing) or the system temp directory. Removed at the end of the run, whatever
// happened, unless `keep`; a `--dir` the run had to create is removed with it. SIGINT/SIGTERM while
// a run is going remove it too (then the process exits with 130/143).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface WorkDir {
  /** The run's own directory. */
  root: string;
  /** Remove it (and a --dir the run created), unless kept. Idempotent. */
  cleanup(): void;
}

/** Attempts of a removal that meets ENOTEMPTY/EBUSY (a thread still writing), and the first wait between them, ms. */
const RM_RETRIES = 10;
const RM_RETRY_DELAY_MS = 20;

const live = new Set<WorkDir>();
let signalsHooked = false;

function hookSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(sig, () => {
      // The run's threads (a walwriter preparing segments, say) may still be creating files in
      // it while this removes it: rmSync retries ENOTEMPTY (RM_RETRIES); what still cannot be
      // removed is named in one line, and the process exits with the signal's code either way.
      for (const w of live) {
        try {
          w.cleanup();
        } catch (e) {
          process.stderr.write(`walstream bench: could not remove ${w.root}: ${(e as Error).message}\n`);
        }
      }
      process.exit(code);
    });
  }
}

export function benchWorkDir(name: string, o: { dir?: string | undefined; keep?: boolean | undefined }): WorkDir {
  let createdParent: string | null = null;
  if (o.dir !== undefined && !fs.existsSync(o.dir)) {
    fs.mkdirSync(o.dir, { recursive: true });
    createdParent = path.resolve(o.dir);
  }
  const root = fs.mkdtempSync(path.join(o.dir ?? os.tmpdir(), `walstream-bench-${name}-`));
  let done = false;
  const w: WorkDir = {
    root,
    cleanup() {
      if (done) return;
      done = true;
      live.delete(w);
      if (o.keep) {
        process.stderr.write(`walstream bench ${name}: data kept in ${root}\n`);
        return;
      }
      // Renamed first: a thread of the run still creating files under the old path (a walwriter
      // preparing a segment, after SIGINT) then gets ENOENT instead of refilling what is removed.
      const doomed = `${root}.removing`;
      let gone = root;
      try {
        fs.renameSync(root, doomed);
        gone = doomed;
      } catch {
        // already gone, or not renamable: remove it where it is
      }
      fs.rmSync(gone, { recursive: true, force: true, maxRetries: RM_RETRIES, retryDelay: RM_RETRY_DELAY_MS });
      if (createdParent !== null) fs.rmSync(createdParent, { recursive: true, force: true, maxRetries: RM_RETRIES, retryDelay: RM_RETRY_DELAY_MS });
    },
  };
  live.add(w);
  hookSignals();
  return w;
}
