// bench/gc-tail.ts: which of the slowest 1 % of live commits overlap a garbage collection, per
// thread role. The analysis on made-up times (exact counts), then one short real run: a child
// process whose every thread records its collections through the preloaded observer
// (bench/gc-observer.cts), so each role of a primary with one standby is seen.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyseGcTail } from '../bench/gc-tail.js';

test('analyseGcTail: slow commits are matched to the collections that overlap them, per role', () => {
  // 1000 commits acknowledged every 1 ms, 0.2 ms each; the 10 slowest (2 ms) start at 100..109 ms.
  const commits: Array<[number, number]> = Array.from({ length: 1000 }, (_, i) => [i, i + (i >= 100 && i < 110 ? 2 : 0.2)]);
  const r = analyseGcTail({ standbys: 1, rate: 1000, seconds: 1, transport: 'tcp' }, commits, [
    // startup collects during commits 100..103 (slow) and again at 500.05 (a fast commit).
    { role: 'startup', gcs: [[100.5, 3], [500.05, 0.1]] },
    // main collects during commit 108 only; and once before the window (ignored).
    { role: 'main', gcs: [[108.5, 0.3], [-50, 1]] },
    { role: 'walsender', gcs: [] },
    { role: 'walsender', gcs: [[2000, 1]] }, // after the window: ignored
  ]);
  assert.equal(r.commits, 1000);
  assert.equal(r.slowCommits, 10);
  assert.equal(r.p99Ms, 2);
  // startup's [100.5, 103.5) overlaps commits 100–103 (not 99, over at 99.2; not 104, from 104);
  // main's [108.5, 108.8) overlaps 107 (until 109) and 108.
  assert.equal(r.roles.startup!.slowCommitsOverlapping, 4);
  assert.equal(r.roles.main!.slowCommitsOverlapping, 2);
  assert.equal(r.slowCommitsOverlappingGc, 6);
  assert.equal(r.slowShareOverlappingGc, 0.6);
  // All commits: the 6 slow ones and commit 500.
  assert.equal(r.allShareOverlappingGc, 0.007);
  assert.deepEqual(r.roles.startup, { threads: 1, collections: 2, pauseTotalMs: 3.1, pauseMaxMs: 3, slowCommitsOverlapping: 4 });
  assert.deepEqual(r.roles.walsender, { threads: 2, collections: 0, pauseTotalMs: 0, pauseMaxMs: 0, slowCommitsOverlapping: 0 });
  assert.equal(r.roles.main!.collections, 1);
  assert.throws(() => analyseGcTail({ standbys: 1, rate: 1, seconds: 1, transport: 'tcp' }, [], []), /no commits/);
});
