// One LSN representation at the API boundary, checked by the compiler: test/types/lsn-fixture.ts
// compiles as it is (a status row's flush_lsn is a number; transaction()'s LSN and a status
// row's compare with `<=` without conversion), and with its `@ts-expect-error` lines removed it
// fails on exactly those lines (text where an `Lsn` is, text passed to waitForReplay).

import { test } from 'node:test';
import { assertTypeFixture, typeFixture } from './helpers/type-fixture.js';

test('LSN types: every API LSN is an Lsn number; text is refused where an Lsn is expected', () => {
  assertTypeFixture(typeFixture('lsn-fixture.ts'), 9);
});
