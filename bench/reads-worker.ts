// One application thread of `walstream bench reads` (bench/reads.ts): openReader(handle), then
// point reads of random keys while the phase word says RUN; posts its read count when the phase
// becomes STOP, and exits. workerData: { handle, ctl, keys, seed }. Blocks its own event loop
// (Atomics.wait for RUN, a tight read loop): it holds nothing else.

import { workerData, parentPort } from 'node:worker_threads';
import { openReader, type ReaderHandle } from '../src/standby/open-reader.js';

// ctl words: the phase (written by the bench), and how many threads are ready (each adds 1)
export const W_PHASE = 0;
export const W_READY = 1;
export const CTL_WORDS = 2;
// phases
export const PHASE_WAIT = 0;
export const PHASE_RUN = 1;
export const PHASE_STOP = 2;
/** Reads between two looks at the phase word. */
const READS_PER_CHECK = 256;

if (parentPort !== null && (workerData as { readsBench?: boolean } | null)?.readsBench === true) {
  const wd = workerData as { handle: ReaderHandle; ctl: SharedArrayBuffer; keys: number; seed: number };
  const ctl = new Int32Array(wd.ctl);
  const reader = openReader(wd.handle);
  const keys = Array.from({ length: wd.keys }, (_, i) => `k${i}`);
  let seed = wd.seed >>> 0 || 1;
  Atomics.add(ctl, W_READY, 1);
  while (Atomics.load(ctl, W_PHASE) === PHASE_WAIT) Atomics.wait(ctl, W_PHASE, PHASE_WAIT, 100);
  let reads = 0;
  let found = 0;
  while (Atomics.load(ctl, W_PHASE) === PHASE_RUN) {
    for (let i = 0; i < READS_PER_CHECK; i++) {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      if (reader.get('r', keys[(seed >>> 0) % keys.length]!) !== undefined) found++;
    }
    reads += READS_PER_CHECK;
  }
  parentPort.postMessage({ reads, found });
}
