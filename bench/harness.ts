// The benchmark harness behind `walstream bench <scenario>`: src/cli/bench-loader.ts imports this
// module only when a bench sub-command runs, so the command's other sub-commands (and the library)
// never load it or its development-only packages (hdr-histogram-js). Each runner returns a
// JSON-ready object; the command prints it.

export { runCommitBench } from './commit.js';
export { runStreamBench } from './stream.js';
export { runStandbyBench } from './standby.js';
export { runGcTailBench } from './gc-tail.js';
export { runSyncBench, BENCH_SYNC_LEVELS } from './sync.js';
