// Typed events: test/types/events-fixture.ts compiles as it is (every `@ts-expect-error` there is
// met), and with those directives removed it fails on exactly the lines they stood before — so
// misspelt event names, misspelt or mistyped payload fields and wrong emits do not compile
// (`primary.on('checkpoint', (e) => e.lsnn)`). Also checks at run time that the events arrive
// with their typed payloads from a real primary.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import type { CheckpointEvent } from '../src/primary/primary-events.js';
import { assertTypeFixture, typeFixture } from './helpers/type-fixture.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

test('event maps: the fixture compiles; without its @ts-expect-error lines each use it guards is an error', () => {
  assertTypeFixture(typeFixture('events-fixture.ts'), 10);
});

test('events at run time: checkpoint payloads as typed, close', async () => {
  const dir = tmpDir('walstream-events-');
  try {
    const p = await Primary.open({ dataDir: path.join(dir, 'p') });
    const seen: CheckpointEvent[] = [];
    let closed = 0;
    p.on('checkpoint', (e) => seen.push(e));
    p.once('close', () => closed++);
    await p.transaction((tx) => tx.put('t', 'k', 1));
    await p.checkpoint();
    await p.close();
    assert.equal(seen.length, 2, 'one requested checkpoint, one shutdown checkpoint');
    assert.deepEqual(seen.map((e) => e.shutdown), [false, true]);
    // Nothing changed between the two: the shutdown checkpoint keeps the first one's snapshot.
    assert.deepEqual(seen.map((e) => e.snapshotWritten), [true, false]);
    for (const e of seen) {
      assert.deepEqual(Object.keys(e).sort(), ['lsn', 'redo', 'segmentsRecycled', 'segmentsRemoved', 'shutdown', 'snapshotWritten']);
      assert.ok(e.redo <= e.lsn);
    }
    assert.ok(seen[1]!.lsn > seen[0]!.lsn);
    assert.equal(closed, 1);
  } finally {
    rmrf(dir);
  }
});
