// The read-your-writes example (examples/read-your-writes/): an HTTP service whose writes go to an
// embedded primary and whose reads go to a standby's reader threads. Checked: concurrent clients,
// each writing a new value then reading it back with the LSN the write returned (in the header or
// in the cookie), always read their own write, and the standby's replay position the read reports
// is at or past that LSN; bad input gets the documented status and error code.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { LSN_COOKIE, LSN_HEADER, REPLAY_HEADER, startService, WAIT_HEADER } from '../examples/read-your-writes/service.js';
import { parseLsn } from '../src/wal/lsn.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const CLIENTS = 8;
const ROUNDS = 40;

const dirs: string[] = [];
after(() => dirs.forEach(rmrf));

test('read-your-writes service: every client reads its own write through the standby, by header or cookie', async () => {
  const dir = tmpDir('walstream-example-http-');
  dirs.push(dir);
  const svc = await startService({ dataDir: dir, port: 0, readerThreads: 2, readWaitMs: 60_000 });
  const base = `http://127.0.0.1:${svc.port}`;
  try {
    let stale = 0;
    const client = async (c: number) => {
      for (let n = 1; n <= ROUNDS; n++) {
        const key = `client${c}`;
        const w = await fetch(`${base}/kv/${key}`, { method: 'PUT', body: JSON.stringify({ c, n, pad: 'x'.repeat((n * 37) % 500) }) });
        assert.equal(w.status, 200);
        const lsn = w.headers.get(LSN_HEADER)!;
        assert.equal(((await w.json()) as { lsn: string }).lsn, lsn);
        const cookie = w.headers.get('set-cookie')!;
        assert.match(cookie, new RegExp(`^${LSN_COOKIE}=${lsn.replace('/', '\\/')};`));
        // half the reads send the LSN back in the header, half in the cookie (as a browser would)
        const headers: Record<string, string> = n % 2 === 0 ? { [LSN_HEADER]: lsn } : { cookie: cookie.split(';')[0]! };
        const r = await fetch(`${base}/kv/${key}`, { headers });
        assert.equal(r.status, 200);
        const v = (await r.json()) as { c: number; n: number };
        if (v.c !== c || v.n !== n) stale++;
        assert.deepEqual([v.c, v.n], [c, n], `client ${c} round ${n} reads its own write`);
        assert.ok(parseLsn(r.headers.get(REPLAY_HEADER)!) >= parseLsn(lsn), 'the read ran at or past the write');
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
    assert.equal(stale, 0);
    assert.equal(svc.standby.store!.count('kv'), CLIENTS);

    // documented errors
    const bad = await fetch(`${base}/kv/client0`, { headers: { [LSN_HEADER]: 'not-an-lsn' } });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: string }).error, 'WS_SYNTAX_ERROR');
    assert.equal((await fetch(`${base}/kv/client0`, { headers: { [WAIT_HEADER]: 'soon' } })).status, 400);
    assert.equal((await fetch(`${base}/nowhere`)).status, 404);
    assert.equal((await fetch(`${base}/kv/x`, { method: 'POST', body: '{}' })).status, 405);
    const notJson = await fetch(`${base}/kv/x`, { method: 'PUT', body: '{' });
    assert.equal(notJson.status, 400);
    assert.equal(((await notJson.json()) as { error: string }).error, 'WS_INVALID_JSON');
    const missing = await fetch(`${base}/kv/never-written`);
    assert.equal(missing.status, 404);
    // an LSN the standby will not reach in time: 504 with the wait's code
    const far = await fetch(`${base}/kv/client0`, { headers: { [LSN_HEADER]: 'FF/0', [WAIT_HEADER]: '50' } });
    assert.equal(far.status, 504);
    assert.equal(((await far.json()) as { error: string }).error, 'WS_WAIT_TIMEOUT');
  } finally {
    await svc.close();
  }
});
