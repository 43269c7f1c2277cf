// Loads the benchmark harness (bench/harness.ts, compiled to dist/bench/harness.js) for `walstream
// bench`, only when a bench sub-command runs. When a package it imports is missing (a development
// dependency), or the harness itself is not installed, the command fails with one line saying
// which, instead of a stack trace. (Its `--html` reports need chart.js, a development dependency:
// bench/report/html.ts says so in one line.)

import { Errors } from '../errors.js';

export type BenchHarness = typeof import('../../bench/harness.js');

/** What to tell the user when importing the harness failed with `e`; null if it is another error. */
function benchLoadFailure(e: unknown): string | null {
  const err = e as { code?: unknown; message?: unknown } | null;
  if (err === null || typeof err !== 'object' || err.code !== 'ERR_MODULE_NOT_FOUND' || typeof err.message !== 'string') return null;
  const pkg = /Cannot find package '([^']+)'/.exec(err.message)?.[1];
  if (pkg !== undefined) {
    return `walstream bench needs the package "${pkg}", which is a development dependency and is not installed (npm install ${pkg})`;
  }
  return 'walstream bench: the benchmark harness (dist/bench) is not installed here; build it from a source checkout (npm ci && npm run build)';
}

/** Import the harness, or throw a one-line error naming what is missing. */
export async function loadBench(): Promise<BenchHarness> {
  try {
    return await import('../../bench/harness.js');
  } catch (e) {
    const why = benchLoadFailure(e);
    if (why === null) throw e;
    throw Errors.featureNotSupported(why);
  }
}
