// Preloaded with `node --require dist/bench/gc-observer.cjs` by `walstream bench gc-tail` (worker
// threads inherit --require, so every thread of the process loads it): records each garbage
// collection of its thread (absolute start time on the shared clock performance.timeOrigin +
// startTime, duration) and, when the thread exits, writes them to
// $WALSTREAM_GC_OBSERVER_DIR/<threadId>-<role>.json. A blocking thread (startup) gets its entries
// when its event loop runs again, at the latest at exit; their times are taken at the collection.
// Does nothing when the variable is unset. Owns one PerformanceObserver per thread.

const dir = process.env.WALSTREAM_GC_OBSERVER_DIR;
if (dir !== undefined && dir !== '') {
  const fs = require('node:fs') as typeof import('node:fs');
  const path = require('node:path') as typeof import('node:path');
  const { PerformanceObserver, performance } = require('node:perf_hooks') as typeof import('node:perf_hooks');
  const { threadId, workerData, isMainThread } = require('node:worker_threads') as typeof import('node:worker_threads');
  // The role, from what each walstream worker is started with (src/primary, src/replication, src/standby).
  const wd = workerData as Record<string, unknown> | null;
  const role = isMainThread ? 'main'
    : wd?.kind === 'walsender' || typeof wd?.fd === 'number' ? 'walsender'
    : wd?.startup !== undefined ? 'startup'
    : wd?.walreceiver !== undefined ? 'walreceiver'
    : wd?.walWriterDelayMs !== undefined ? 'walwriter'
    : 'other';
  const events: Array<[number, number]> = [];
  const take = (entries: ReadonlyArray<{ startTime: number; duration: number }>) => {
    for (const e of entries) events.push([performance.timeOrigin + e.startTime, e.duration]);
  };
  const obs = new PerformanceObserver((list) => take(list.getEntries()));
  obs.observe({ entryTypes: ['gc'] });
  process.on('exit', () => {
    take(obs.takeRecords());
    obs.disconnect();
    fs.writeFileSync(path.join(dir, `${threadId}-${role}.json`), JSON.stringify(events));
  });
}
