// The package entry point resolves as the README shows (`import { Primary } from 'walstream'`).
import { test } from 'node:test';
import assert from 'node:assert/strict';

test("the package entry point exports the public API", async () => {
  const m = await import('walstream');
  for (const name of ['Primary', 'Standby', 'Errors', 'WalstreamError', 'lsnToString', 'parseLsn', 'ReaderPool', 'openReader', 'SharedReader']) {
    assert.ok(name in m, `${name} is exported`);
  }
  assert.equal(m.lsnToString(m.parseLsn('1/7FD0FA98')), '1/7FD0FA98');
});
