// bench/tail-shape.ts: the slowest 1 % of a live run grouped by 5 ms windows of acknowledgement
// time — one stall that holds a whole batch is one window, slow commits spread over the run are
// many; bad input is refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tailShape } from '../bench/tail-shape.js';

test('tailShape: a stall is one window, a spread tail is many, ties at p99 count, mismatched input is refused', () => {
  // 1000 commits every 0.1 ms at 0.2 ms; the 10 slowest (5 ms) all acknowledged within 1 ms: one stall.
  const at = Array.from({ length: 1000 }, (_, i) => i * 0.1);
  const lat = at.map(() => 0.2);
  for (let i = 500; i < 510; i++) lat[i] = 5;
  assert.deepEqual(tailShape(at, lat), { windowMs: 5, slowCommits: 10, windows: 1, mostInOneWindow: 10 });
  // The same 10 slow commits, one every 10 ms: ten windows of one.
  const spread = at.map(() => 0.2);
  for (let k = 0; k < 10; k++) spread[k * 100] = 5;
  assert.deepEqual(tailShape(at, spread), { windowMs: 5, slowCommits: 10, windows: 10, mostInOneWindow: 1 });
  // All equal: every commit is at p99.
  assert.equal(tailShape(at, at.map(() => 1)).slowCommits, 1000);
  assert.deepEqual(tailShape([], []), { windowMs: 5, slowCommits: 0, windows: 0, mostInOneWindow: 0 });
  assert.throws(() => tailShape([1, 2], [1]), RangeError);
});
