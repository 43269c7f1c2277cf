// The benchmark harness behind `walstream bench <scenario>`: src/cli/bench-loader.ts imports this
// module only when a bench sub-command runs, so the command's other sub-commands (and the library)
// never load it or its development-only packages (hdr-histogram-js, cli-progress, cli-table3,
// chart.js). Each runner returns a JSON-ready object; reportOf turns it into tables and charts,
// printed as text (renderText), written as one self-contained HTML file (renderHtml), or printed
// as JSON by the command.

export { runCommitBench } from './commit.js';
export { runStreamBench } from './stream.js';
export { runStandbyBench } from './standby.js';
export { runGcTailBench } from './gc-tail.js';
export { runCascadeBench } from './cascade.js';
export { runReadsBench } from './reads.js';
export { runSyncBench, BENCH_SYNC_LEVELS } from './sync.js';
export { runBaseBackupBench } from './basebackup.js';
export { runFailoverBench } from './failover.js';
export { reportOf, REPORTED_BENCHES, type BenchResult } from './report/reports.js';
export { renderText } from './report/text.js';
export { renderHtml } from './report/html.js';
export { progressReporter, type BenchProgress } from './report/progress.js';
